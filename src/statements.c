/*-------------------------------------------------------------------------
 *
 * statements.c
 *		The statements the connlog worker runs on its target: the upsert
 *		of a batch's rows, a rejected row, a step of retention, and
 *		connlog.durability's progress.
 *
 * Each public function here is one statement in a transaction of its own
 * (runner.c), on statements prepared for the target (plans.c, target.c),
 * with the batch's values built by rows.c.  What came of it is returned
 * as a ConnlogWriteStatus, with the error's message for
 * connlog_stats.last_error; what the worker is doing is the caller's to
 * publish.  After any error but the rows' own the statements are prepared
 * afresh next time, so a table that was altered or recreated is picked up.
 *
 * The upsert and the retention DELETE on connlog.target_table run as the
 * table's owner (connlog_as_owner_begin, runner.c); guard.c remembers the
 * rows each runs, should the table's code end the worker.
 *
 * See doc/internals.md, "Statements: the runner, the target, the plans".
 *
 * IDENTIFICATION
 *	  src/statements.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/uuid.h"

#include "guard.h"
#include "plans.h"
#include "rows.h"
#include "runner.h"
#include "statements.h"
#include "target.h"

static MemoryContext write_cxt = NULL;
static MemoryContext log_events_cxt = NULL;

/*
 * Run one statement (connlog_run_statement).  The plans may be what
 * failed: prepare them afresh next time.  Not after an error of the rows
 * (a duplicate id, say), which a split meets once per level: preparing
 * costs more than the statement.
 */
static ConnlogWriteStatus
run(ConnlogStatementFn fn, void *arg, const char *activity, char **error)
{
	ConnlogWriteStatus status = connlog_run_statement(fn, arg, activity,
													  error);

	if (*error != NULL && status != CL_WRITE_BAD_DATA)
		connlog_plans_forget();
	return status;
}

static bool
check_fn(void *arg)
{
	return connlog_plans_prepare(false);
}

/* Is the extension there?  Prepares the statements if it is. */
ConnlogWriteStatus
connlog_check_target(char **error)
{
	return run(check_fn, NULL, "connlog: looking for the extension", error);
}

/*
 * connlog.durability: store the progress in the transaction that makes it true
 * (doc/internals.md, "Order and progress").  NULL: nothing to store.  The
 * epoch is stored as the bigint with the same bits; pending_at_exit is NULL
 * unless an exiting worker stores it (a 1.1 plan has no fourth parameter and
 * ignores it).
 */
static void
store_progress(const ConnlogProgress *progress)
{
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	int			rc;

	if (progress == NULL || connlog_plan(PLAN_PROGRESS_WRITE) == NULL)
		return;

	/*
	 * The statement run before this one may have taken in invalidations. It
	 * has run, so a broken extension can no longer be reported as a missing
	 * one: fail the transaction, and let the retry find out.
	 */
	if (!connlog_plans_current(USES_PROGRESS) &&
		(!connlog_plans_use(USES_PROGRESS) ||
		 connlog_plan(PLAN_PROGRESS_WRITE) == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("connlog's tables changed while it was writing")));
	values[0] = Int64GetDatum((int64) progress->epoch);
	values[1] = Int64GetDatum((int64) progress->seq);
	values[2] = LSNGetDatum(progress->lsn);
	values[3] = Int64GetDatum((int64) progress->pending);
	if (!progress->at_exit)
		nulls[3] = 'n';
	rc = SPI_execute_plan(connlog_plan(PLAN_PROGRESS_WRITE), values, nulls,
						  false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "connlog progress update failed: %s",
			 SPI_result_code_string(rc));
}

/* ---------------------------------------------------------------------
 * The upsert
 * ---------------------------------------------------------------------
 */

typedef struct UpsertArgs
{
	const ClBatch *batch;
	int			start;
	int			n;
	bool		rewrite;		/* skip web events whose row exists */
	const ConnlogProgress *progress;
	List	   *groups;			/* of UpsertGroup (rows.c) */
	bool	   *skip;			/* entries left out, NULL: none */
} UpsertArgs;

/*
 * Run one upsert of n rows (args, prepared as plan), adding to *stored
 * what it stored and to *expected what it should have.
 */
static void
run_upsert(SPIPlanPtr plan, Datum *args, int n, uint64 *stored,
		   uint64 *expected)
{
	int			rc;

	rc = SPI_execute_plan(plan, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "connlog upsert failed: %s", SPI_result_code_string(rc));
	*stored += SPI_processed;
	*expected += n;
}

/* a web event of the batch, by id, for skip_written_web() */
typedef struct WebRef
{
	pg_uuid_t	id;
	int			i;				/* its index in the range written */
} WebRef;

static int
webref_cmp(const void *a, const void *b)
{
	return memcmp(((const WebRef *) a)->id.data, ((const WebRef *) b)->id.data,
				  UUID_LEN);
}

/*
 * Events written again (a->rewrite): set a->skip for the web events
 * of the range whose row the table has already (see replay_find_sql in
 * plans.c).
 * Runs as the table's owner, like the upsert.
 */
static void
skip_written_web(UpsertArgs *a)
{
	WebRef	   *refs = palloc(sizeof(WebRef) * a->n);
	Datum	   *ids = palloc(sizeof(Datum) * a->n);
	Datum	   *workspaces = palloc(sizeof(Datum) * a->n);
	Datum		values[2];
	int			nweb = 0;
	int			rc;

	a->skip = palloc0(sizeof(bool) * a->n);
	for (int i = 0; i < a->n; i++)
	{
		const ClEntry *e = &a->batch->entries[a->start + i];
		ClEvent		ev;

		if (e->flags & CL_HAS_CONNECTION_ID)
			continue;
		cl_batch_entry_event(a->batch, e, &ev);
		memcpy(refs[nweb].id.data, ev.id, UUID_LEN);
		refs[nweb].i = i;
		ids[nweb] = connlog_uuid_datum(ev.id);
		workspaces[nweb] = connlog_uuid_datum(ev.workspace_id);
		nweb++;
	}
	if (nweb == 0)
		return;
	values[0] = PointerGetDatum(construct_array(ids, nweb, UUIDOID, UUID_LEN,
												false, TYPALIGN_CHAR));
	values[1] = PointerGetDatum(construct_array(workspaces, nweb, UUIDOID,
												UUID_LEN, false,
												TYPALIGN_CHAR));
	rc = SPI_execute_plan(connlog_plan(PLAN_REPLAY_FIND), values, NULL, false,
						  0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "connlog lookup of written rows failed: %s",
			 SPI_result_code_string(rc));
	qsort(refs, nweb, sizeof(WebRef), webref_cmp);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull[3];
		pg_uuid_t  *id;
		TimestampTz time;
		pg_uuid_t  *ws;
		WebRef		key;
		int			lo = 0;
		int			hi = nweb;

		id = DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull[0]));
		time = DatumGetTimestampTz(SPI_getbinval(tup, desc, 2, &isnull[1]));
		ws = DatumGetUUIDP(SPI_getbinval(tup, desc, 3, &isnull[2]));
		if (isnull[0] || isnull[1] || isnull[2])
			continue;
		/* the first of refs with this id, then each with it */
		memcpy(key.id.data, id->data, UUID_LEN);
		while (lo < hi)
		{
			int			mid = (lo + hi) / 2;

			if (webref_cmp(&refs[mid], &key) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < nweb && webref_cmp(&refs[lo], &key) == 0; lo++)
		{
			const ClEntry *e = &a->batch->entries[a->start + refs[lo].i];
			ClEvent		ev;

			cl_batch_entry_event(a->batch, e, &ev);
			if (e->connect_time == time &&
				memcmp(ev.workspace_id, ws->data, UUID_LEN) == 0)
				a->skip[refs[lo].i] = true;
		}
	}
}

static bool
upsert_fn(void *arg)
{
	UpsertArgs *a = arg;
	MemoryContext old;
	ConnlogAsOwner owner;
	uint64		stored = 0;
	uint64		expected = 0;
	ListCell   *lc;

	/*
	 * The arrays outlive SPI's memory: they are freed with write_cxt.
	 * Building them may prepare the statement of a new set of extra's
	 * columns, and the input functions run the table owner's code (a domain's
	 * CHECK): either may invalidate the statements, which are then prepared
	 * afresh, maybe with other columns converted, and the arguments built
	 * again for them.
	 */
	for (int attempt = 0;; attempt++)
	{
		if (!connlog_plans_use(USES_LOGS | USES_PROGRESS))
			return false;
		/* should the table's code end the worker: see guard.c */
		connlog_guard_rows_begin(a->batch, a->start, a->n);
		old = MemoryContextSwitchTo(write_cxt);
		connlog_as_owner_begin(connlog_target->rows_owner, &owner);
		a->skip = NULL;
		if (a->rewrite)
			skip_written_web(a);
		connlog_as_owner_end(&owner);
		a->groups = connlog_rows_groups(a->batch, a->start, a->n, a->skip);
		connlog_as_owner_begin(connlog_target->rows_owner, &owner);
		connlog_rows_convert(a->groups);
		connlog_as_owner_end(&owner);
		MemoryContextSwitchTo(old);
		if (connlog_plans_current(USES_LOGS | USES_PROGRESS))
			break;
		if (attempt == 2)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("connlog's tables kept changing while its statements were prepared")));
	}
	connlog_as_owner_begin(connlog_target->rows_owner, &owner);
	foreach(lc, a->groups)
	{
		UpsertGroup *g = lfirst(lc);

		run_upsert(g->extra == NULL ? connlog_plan(PLAN_UPSERT) : g->extra->plan,
				   g->args, list_length(g->entries), &stored, &expected);
	}
	connlog_as_owner_end(&owner);

	/*
	 * Every row the statement was given must have been inserted or updated: a
	 * BEFORE trigger that returns NULL stores nothing, without an error. Such
	 * rows are not written, so the statement is not committed as if they
	 * were: it fails, and the worker's split finds the rows the table takes
	 * nothing for, which go to connection_logs_rejected.
	 */
	if (stored < expected)
		ereport(ERROR,
				(errcode(ERRCODE_TRIGGERED_ACTION_EXCEPTION),
				 errmsg("table %s stored nothing for %llu of the %llu rows connlog wrote",
						connlog_target->rows_table,
						(unsigned long long) (expected - stored),
						(unsigned long long) expected),
				 errdetail("A trigger of the table returned NULL for them, so they were neither inserted nor updated.")));
	store_progress(a->progress);
	return true;
}

/*
 * An upsert failed with SQLSTATE 42501.  connlog.role lacks a privilege
 * only if the target's check says so (connlog_check_target() prepares the
 * statements afresh, which checks them): otherwise it was the rows' error,
 * raised by a row-level security policy (FORCE ROW LEVEL SECURITY makes
 * the table's policies apply to its owner, as whom the upsert runs on
 * connlog.target_table) or by a trigger, and is a failure like any other
 * (CL_WRITE_FAILED, *error kept), whose rows the worker may reject.  A
 * missing privilege is CL_WRITE_DENIED, with *error naming it.
 */
static ConnlogWriteStatus
recheck_denied(char **error)
{
	char	   *check_error;

	switch (connlog_check_target(&check_error))
	{
		case CL_WRITE_OK:
			return CL_WRITE_FAILED;
		case CL_WRITE_DENIED:
			*error = check_error;
			return CL_WRITE_DENIED;
		case CL_WRITE_MISSING:
			return CL_WRITE_MISSING;
		default:
			/* whatever it is, the next statement meets it again */
			return CL_WRITE_FAILED;
	}
}

/*
 * Upsert entries [start, start + n) of b.  rewrite: some of b's rows may be
 * in the table already (events read back from WAL, or read by a
 * predecessor), so a web event whose row exists is skipped.  On failure
 * *error says why.
 */
ConnlogWriteStatus
connlog_write_upsert(const ClBatch *b, int start, int n, bool rewrite,
					 const ConnlogProgress *progress, char **error)
{
	UpsertArgs	a;
	ConnlogWriteStatus status;
	char		activity[64];

	if (write_cxt == NULL)
		write_cxt = AllocSetContextCreate(TopMemoryContext, "connlog write",
										  ALLOCSET_DEFAULT_SIZES);
	a.batch = b;
	a.start = start;
	a.n = n;
	a.rewrite = rewrite;
	a.progress = progress;
	snprintf(activity, sizeof(activity), "connlog: writing %d rows", n);
	status = run(upsert_fn, &a, activity, error);
	MemoryContextReset(write_cxt);
	if (status == CL_WRITE_DENIED)
		status = recheck_denied(error);
	return status;
}

/* ---------------------------------------------------------------------
 * The other statements, and the log_events line
 * ---------------------------------------------------------------------
 */

/*
 * connlog.log_events: one structured line per event, like coder's slog.
 * Building the line leaves pieces behind (each field's text, the datums
 * they are made from), and the worker logs events by the batch, so each
 * line is built in a context of its own, emptied once it is logged.
 */
void
connlog_log_event(const ClEvent *ev)
{
	MemoryContext old;

	if (log_events_cxt == NULL)
		log_events_cxt = AllocSetContextCreate(TopMemoryContext,
											   "connlog log_events",
											   ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(log_events_cxt);
	ereport(LOG,
			(errmsg("connection_log %s", connlog_event_json(ev, NULL)),
			 errhidestmt(true)));
	MemoryContextSwitchTo(old);
	MemoryContextReset(log_events_cxt);
}

typedef struct RejectArgs
{
	const ClBatch *batch;
	int			i;
	const char *reason;
	const ConnlogProgress *progress;
} RejectArgs;

static bool
reject_fn(void *arg)
{
	RejectArgs *a = arg;
	const ClEntry *e = &a->batch->entries[a->i];
	ClEvent		ev;
	Datum		values[2];
	int			rc;

	if (!connlog_plans_use(USES_REJECTED | USES_PROGRESS))
		return false;
	cl_batch_entry_event(a->batch, e, &ev);
	values[0] = CStringGetTextDatum(a->reason);
	values[1] = CStringGetTextDatum(connlog_event_json(&ev, e));
	rc = SPI_execute_plan(connlog_plan(PLAN_REJECT), values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "connlog insert into connection_logs_rejected failed: %s",
			 SPI_result_code_string(rc));
	store_progress(a->progress);
	return true;
}

/* Store entry i of b in connection_logs_rejected with the reason it failed */
ConnlogWriteStatus
connlog_write_rejected(const ClBatch *b, int i, const char *reason,
					   const ConnlogProgress *progress, char **error)
{
	RejectArgs	a = {b, i, reason, progress};

	return run(reject_fn, &a, "connlog: storing a rejected event", error);
}

typedef struct PurgeArgs
{
	TimestampTz cutoff;
	int			limit;
	uint64		deleted;
} PurgeArgs;

static bool
purge_fn(void *arg)
{
	PurgeArgs  *a = arg;
	Datum		values[2];
	ConnlogAsOwner owner;
	int			rc;

	if (!connlog_plans_use(USES_LOGS))
		return false;
	/* the owner deletes, as it writes; connlog.role needs DELETE all the same */
	connlog_target_check_delete();
	values[0] = TimestampTzGetDatum(a->cutoff);
	values[1] = Int32GetDatum(a->limit);
	connlog_guard_purge_begin();
	connlog_as_owner_begin(connlog_target->rows_owner, &owner);
	rc = SPI_execute_plan(connlog_plan(PLAN_PURGE), values, NULL, false, 0);
	connlog_as_owner_end(&owner);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "connlog purge failed: %s", SPI_result_code_string(rc));
	a->deleted = SPI_processed;
	return true;
}

/*
 * connlog.retention: delete up to limit rows of connection_logs whose
 * connect_time is before cutoff, in a transaction of its own.
 */
ConnlogWriteStatus
connlog_write_purge(TimestampTz cutoff, int limit, uint64 *deleted,
					char **error)
{
	PurgeArgs	a = {cutoff, limit, 0};
	ConnlogWriteStatus status;

	status = run(purge_fn, &a, "connlog: deleting rows past connlog.retention",
				 error);
	*deleted = a.deleted;
	return status;
}

/* ---------------------------------------------------------------------
 * connlog.durability's progress (progress.c)
 * ---------------------------------------------------------------------
 */

typedef struct ProgressArgs
{
	ConnlogProgress progress;
} ProgressArgs;

static bool
progress_read_fn(void *arg)
{
	ProgressArgs *a = arg;
	int			rc;

	if (!connlog_plans_use(USES_PROGRESS))
		return false;
	memset(&a->progress, 0, sizeof(a->progress));
	if (connlog_plan(PLAN_PROGRESS_READ) == NULL)
		return true;
	rc = SPI_execute_plan(connlog_plan(PLAN_PROGRESS_READ), NULL, NULL, true,
						  0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "connlog progress read failed: %s",
			 SPI_result_code_string(rc));
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull[4];
		Datum		d[4];

		for (int i = 0; i < 4; i++)
			d[i] = SPI_getbinval(tup, desc, i + 1, &isnull[i]);
		if (!isnull[0] && !isnull[1] && !isnull[2])
		{
			a->progress.epoch = (uint64) DatumGetInt64(d[0]);
			a->progress.seq = (uint64) DatumGetInt64(d[1]);
			a->progress.lsn = DatumGetLSN(d[2]);
			/* a negative count is not one connlog stored */
			if (!isnull[3] && DatumGetInt64(d[3]) >= 0)
			{
				a->progress.at_exit = true;
				a->progress.pending = (uint64) DatumGetInt64(d[3]);
			}
		}
	}
	return true;
}

/* The progress the last committed write stored; lsn 0/0 if none */
ConnlogWriteStatus
connlog_read_progress(ConnlogProgress *done, char **error)
{
	ProgressArgs a;
	ConnlogWriteStatus st;

	memset(&a, 0, sizeof(a));
	st = run(progress_read_fn, &a, "connlog: reading connlog_wal_progress",
			 error);
	*done = a.progress;
	return st;
}

static bool
progress_write_fn(void *arg)
{
	ProgressArgs *a = arg;

	if (!connlog_plans_use(USES_PROGRESS))
		return false;
	store_progress(&a->progress);
	return true;
}

/* Store the progress in a transaction of its own */
ConnlogWriteStatus
connlog_write_progress(const ConnlogProgress *done, char **error)
{
	ProgressArgs a = {*done};

	return run(progress_write_fn, &a, "connlog: updating connlog_wal_progress",
			   error);
}
