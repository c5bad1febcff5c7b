/*-------------------------------------------------------------------------
 *
 * worker.h
 *		The connlog background worker (worker.c).
 *
 * IDENTIFICATION
 *	  src/worker.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_WORKER_H
#define CONNLOG_WORKER_H

extern PGDLLEXPORT void connlog_worker_main(Datum main_arg);

#endif							/* CONNLOG_WORKER_H */
