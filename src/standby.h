/*-------------------------------------------------------------------------
 *
 * standby.h
 *		The standby's keeper of the WAL the primary's worker still needs.
 *
 * IDENTIFICATION
 *	  src/standby.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_STANDBY_H
#define CONNLOG_STANDBY_H

extern PGDLLEXPORT void connlog_standby_main(Datum main_arg);

#endif							/* CONNLOG_STANDBY_H */
