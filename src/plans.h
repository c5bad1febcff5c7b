/*-------------------------------------------------------------------------
 *
 * plans.h
 *		The statements the worker runs, prepared once and kept (plans.c).
 *
 * IDENTIFICATION
 *	  src/plans.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_PLANS_H
#define CONNLOG_PLANS_H

#include "executor/spi.h"

#include "convert.h"

/* The statements, each prepared for the target (target.c) */
typedef enum ConnlogPlan
{
	PLAN_UPSERT,				/* the rows with no application columns */
	PLAN_REPLAY_FIND,			/* the rows of web events written before */
	PLAN_PROGRESS_READ,			/* NULL: no connlog_wal_progress (1.0) */
	PLAN_PROGRESS_WRITE,
	PLAN_REJECT,				/* into connection_logs_rejected */
	PLAN_PURGE,					/* one step of connlog.retention */
	NUM_PLANS
} ConnlogPlan;

/*
 * connlog.target_table: the upsert of the rows whose extra names the same
 * set of the table's columns (see plans.c, "Application columns").
 */
typedef struct ExtraPlan
{
	MemoryContext cxt;			/* holds it all, the input functions' caches
								 * too */
	char	   *sig;			/* the keys as in a record: length, bytes */
	int			sig_len;
	int			ncols;
	InputConversion *conv;		/* each column's */
	bool		in_use;			/* by the batch being written */
	SPIPlanPtr	plan;
} ExtraPlan;

extern bool connlog_plans_prepare(bool hold_if_broken);
extern bool connlog_plans_use(int uses);
extern bool connlog_plans_current(int uses);
extern void connlog_plans_forget(void);
extern SPIPlanPtr connlog_plan(ConnlogPlan p);
extern void connlog_extra_plans_unmark(void);
extern ExtraPlan *connlog_extra_plan(const char *sig, int sig_len);

#endif							/* CONNLOG_PLANS_H */
