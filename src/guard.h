/*-------------------------------------------------------------------------
 *
 * guard.h
 *		What the code of the table the worker writes to cannot do to the
 *		worker: outlive its cancel, or make it exit again and again
 *		(guard.c).
 *
 * IDENTIFICATION
 *	  src/guard.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_GUARD_H
#define CONNLOG_GUARD_H

#include <signal.h>

#include "batch.h"

/*
 * true while a statement of the worker runs (set by runner.c): the
 * worker's SIGTERM and SIGINT cancel it, and its escalation ends it
 */
extern volatile sig_atomic_t connlog_in_statement;

/* shared memory (connlog.c's hooks) */
extern Size connlog_guard_shmem_size(void);
extern void connlog_guard_shmem_init(void);

/* the worker, once connected */
extern void connlog_guard_init_worker(void);

/* every statement the worker runs (runner.c, statements.c) */
extern void connlog_guard_statement_start(int exit_budget_ms);
extern void connlog_guard_statement_end(void);
extern void connlog_guard_rows_begin(const ClBatch *b, int start, int n);
extern void connlog_guard_purge_begin(void);

/* the worker's signal handlers: a cancel that must not be ignored */
extern void connlog_guard_cancel_sent(void);

/* what a predecessor that exited inside a statement left */
extern bool connlog_guard_died_purging(void);
extern bool connlog_guard_have_suspects(void);
extern bool connlog_guard_is_suspect(const ClBatch *b, int i);
extern bool connlog_guard_died_alone(void);
extern char *connlog_guard_death_error(void);

#endif							/* CONNLOG_GUARD_H */
