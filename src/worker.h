/*-------------------------------------------------------------------------
 *
 * worker.h
 *		The connlog background worker (worker.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_WORKER_H
#define CONNLOG_WORKER_H

extern PGDLLEXPORT void connlog_worker_main(Datum main_arg);

#endif							/* CONNLOG_WORKER_H */
