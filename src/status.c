/*-------------------------------------------------------------------------
 *
 * status.c
 *		What SQL sees of the worker: connlog_stats(), connlog_flush(), and
 *		why the worker is not keeping up, which the errors of
 *		connlog_flush() and of a full ring report.
 *
 * Everything here reads shared memory through ring.c's functions; only
 * connlog_flush() asks anything of the worker (a flush, which it then
 * waits for).
 *
 * IDENTIFICATION
 *	  src/status.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "common/int.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "connlog.h"
#include "progress.h"
#include "ring.h"
#include "status.h"

/* how long connlog_flush() waits for the first worker to start */
#define FLUSH_WORKER_GRACE_MS	3000

static uint32 wait_event_flush;

PG_FUNCTION_INFO_V1(connlog_flush);
PG_FUNCTION_INFO_V1(connlog_stats);
PG_FUNCTION_INFO_V1(connlog_stats_1_1);
PG_FUNCTION_INFO_V1(connlog_stats_1_2);

void
connlog_require_shared_memory(void)
{
	if (connlog_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		   errmsg("connlog must be loaded via \"shared_preload_libraries\""),
				 errhint("Add connlog to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/* Refuse to accept work for a worker that was never registered. */
void
connlog_require_worker(void)
{
	connlog_require_shared_memory();
	if (IsBinaryUpgrade)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		   errmsg("connlog does not accept events in binary-upgrade mode")));
	if (!connlog_ring_worker_registered())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("connlog worker is not registered"),
				 errdetail("The server could not register the connlog background worker at startup, so no event would be written."),
		errhint("Raise max_worker_processes (now %d) and restart the server.",
				max_worker_processes)));
}

/*
 * Why the worker is not keeping up, for the ring-full and flush-timeout
 * errors: its published state, or what its process is waiting for.  The
 * errdetail_ and errhint_ functions below write each case's sentences out
 * in full, as the message style guide asks.
 */
/* the class part of a wait_event_info (PG_WAIT_LOCK, ...: wait_event.h) */
#define CL_WAIT_CLASS_MASK	0xFF000000U

typedef enum WorkerTrouble
{
	TROUBLE_NONE,				/* nothing known stops it */
	TROUBLE_NOT_RUNNING,
	TROUBLE_NOT_WRITING,		/* waiting for a database, role, extension,
								 * privilege, or statements it can prepare */
	TROUBLE_RETRY_QUEUE_FULL,
	TROUBLE_LOCK				/* its write waits for a lock */
} WorkerTrouble;

typedef struct WorkerStatus
{
	WorkerTrouble trouble;
	ConnlogStats st;
	const char *lock;			/* TROUBLE_LOCK: the lock's wait event */
} WorkerStatus;

static void
worker_status(WorkerStatus *w)
{
	connlog_ring_stats(&w->st);
	w->trouble = TROUBLE_NONE;
	w->lock = NULL;
	switch (w->st.worker_pid == 0 ? CL_STATE_NOT_RUNNING : w->st.worker_state)
	{
		case CL_STATE_NOT_RUNNING:
			w->trouble = TROUBLE_NOT_RUNNING;
			break;
		case CL_STATE_NO_DATABASE:
		case CL_STATE_NO_ROLE:
		case CL_STATE_ROLE_NOLOGIN:
		case CL_STATE_NO_EXTENSION:
		case CL_STATE_NO_PRIVILEGE:
		case CL_STATE_BROKEN:
			w->trouble = TROUBLE_NOT_WRITING;
			break;
		case CL_STATE_RETRY_QUEUE_FULL:
			w->trouble = TROUBLE_RETRY_QUEUE_FULL;
			break;
		case CL_STATE_WRITING:
		case CL_STATE_PURGING:
			{
				PGPROC	   *proc = BackendPidGetProc(w->st.worker_pid);
				uint32		wait = proc != NULL ? proc->wait_event_info : 0;

				if ((wait & CL_WAIT_CLASS_MASK) == PG_WAIT_LOCK)
				{
					w->trouble = TROUBLE_LOCK;
					w->lock = pgstat_get_wait_event(wait);
				}
			}
			break;
		default:
			break;
	}
}

/* The ring-full error's detail: why, then why the call gave up. */
static int
errdetail_ring_full(const WorkerStatus *w)
{
	const char *state = connlog_worker_state_label(w->st.worker_state);
	int			ms = connlog_enqueue_timeout_ms;

	if (connlog_overflow == CL_PUT_WAIT)
		switch (w->trouble)
		{
			case TROUBLE_NOT_RUNNING:
				return errdetail("The connlog worker is not running. No space came free within connlog.enqueue_timeout (%d ms).",
								 ms);
			case TROUBLE_NOT_WRITING:
				return errdetail("The connlog worker is not writing (%s): %s. No space came free within connlog.enqueue_timeout (%d ms).",
								 state, w->st.last_error, ms);
			case TROUBLE_RETRY_QUEUE_FULL:
				return errdetail("Writes keep failing and the worker's retry queue is full (connlog.retry_queue_size batches); the last error was: %s. No space came free within connlog.enqueue_timeout (%d ms).",
								 w->st.last_error, ms);
			case TROUBLE_LOCK:
				return errdetail("The connlog worker's write is waiting for a %s lock. No space came free within connlog.enqueue_timeout (%d ms).",
								 w->lock, ms);
			case TROUBLE_NONE:
				break;
		}
	else
		switch (w->trouble)
		{
			case TROUBLE_NOT_RUNNING:
				return errdetail("The connlog worker is not running. connlog.overflow is \"error\".");
			case TROUBLE_NOT_WRITING:
				return errdetail("The connlog worker is not writing (%s): %s. connlog.overflow is \"error\".",
								 state, w->st.last_error);
			case TROUBLE_RETRY_QUEUE_FULL:
				return errdetail("Writes keep failing and the worker's retry queue is full (connlog.retry_queue_size batches); the last error was: %s. connlog.overflow is \"error\".",
								 w->st.last_error);
			case TROUBLE_LOCK:
				return errdetail("The connlog worker's write is waiting for a %s lock. connlog.overflow is \"error\".",
								 w->lock);
			case TROUBLE_NONE:
				break;
		}
	return connlog_overflow == CL_PUT_WAIT ?
		errdetail("Events are enqueued faster than the connlog worker writes them. No space came free within connlog.enqueue_timeout (%d ms).",
				  ms) :
		errdetail("Events are enqueued faster than the connlog worker writes them. connlog.overflow is \"error\".");
}

/* The flush-timeout error's detail: what is left, then why. */
static int
errdetail_flush_timeout(const WorkerStatus *w, uint64 left)
{
	unsigned long long n = (unsigned long long) left;

	switch (w->trouble)
	{
		case TROUBLE_NOT_RUNNING:
			return errdetail("%llu events enqueued before the call are not written yet. The connlog worker is not running.",
							 n);
		case TROUBLE_NOT_WRITING:
			return errdetail("%llu events enqueued before the call are not written yet. The connlog worker is not writing (%s): %s.",
						   n, connlog_worker_state_label(w->st.worker_state),
							 w->st.last_error);
		case TROUBLE_RETRY_QUEUE_FULL:
			return errdetail("%llu events enqueued before the call are not written yet. Writes keep failing and the worker's retry queue is full (connlog.retry_queue_size batches); the last error was: %s.",
							 n, w->st.last_error);
		case TROUBLE_LOCK:
			return errdetail("%llu events enqueued before the call are not written yet. The connlog worker's write is waiting for a %s lock.",
							 n, w->lock);
		case TROUBLE_NONE:
			break;
	}
	return errdetail("%llu events enqueued before the call are not written yet.",
					 n);
}

/*
 * What to do about it.  When nothing is known to stop the worker, a full
 * ring asks for room or speed, a flush timeout for a look at the log.
 */
static int
errhint_worker_trouble(const WorkerStatus *w, bool ring_full)
{
	switch (w->trouble)
	{
		case TROUBLE_NOT_RUNNING:
			return errhint("The server log says why the worker exited; the postmaster starts it again.");
		case TROUBLE_NOT_WRITING:
			return errhint("Correct what connlog_stats.last_error names. The worker looks again every connlog.flush_interval.");
		case TROUBLE_RETRY_QUEUE_FULL:
			return errhint("Correct what makes the writes fail; connlog_stats.last_error and the server log name it.");
		case TROUBLE_LOCK:
			return errhint("A session holds a lock on the table connlog writes to; pg_locks shows which.");
		case TROUBLE_NONE:
			break;
	}
	return ring_full ?
		errhint("Raise connlog.ring_size to absorb bursts, or connlog.batch_size to write faster.") :
		errhint("See connlog_stats.last_error and the server log.");
}

/*
 * The ring is full (connlog.overflow is "wait" and no room came, or
 * "error"): say why the worker is not keeping up, and what to do.
 */
void
connlog_ring_full_error(void)
{
	WorkerStatus w;

	worker_status(&w);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
			 errmsg("connlog ring is full"),
			 errdetail_ring_full(&w),
			 errhint_worker_trouble(&w, true)));
	pg_unreachable();
}

/*
 * connlog_flush(timeout interval) returns void
 *
 * Wake the worker and wait until every event enqueued before the call has
 * been accounted for (done_seq has passed the ring's head as it was).
 */
Datum
connlog_flush(PG_FUNCTION_ARGS)
{
	Interval   *timeout;
	int64		timeout_us;
	TimestampTz start;
	uint64		target;
	ConnlogFlushView view;

	/* the worker would wait for itself: see guard.c */
	if (connlog_is_worker)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		  errmsg("connlog_flush cannot be called from connlog's own worker"),
				 errdetail("Code of the table connlog writes to, such as a trigger, called it while the worker wrote rows there.")));
	connlog_require_worker();
	/* version 1.0 declared the function STRICT; 1.1 lets NULL reach here */
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			errmsg("argument \"timeout\" of connlog_flush must not be null"),
				 errhint("Omit the argument to wait up to 30 seconds.")));
	timeout = PG_GETARG_INTERVAL_P(0);
	/* a timeout too long to count in microseconds is a mistake, not forever */
	if (INTERVAL_NOT_FINITE(timeout) ||
		pg_mul_s64_overflow((int64) timeout->month * DAYS_PER_MONTH + timeout->day,
							USECS_PER_DAY, &timeout_us) ||
		pg_add_s64_overflow(timeout_us, timeout->time, &timeout_us))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("connlog_flush timeout is out of range")));
	if (timeout_us < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("connlog_flush timeout must not be negative")));

	connlog_ring_flush_view(&view);
	target = view.head_seq;

	start = GetCurrentTimestamp();
	ConditionVariablePrepareToSleep(connlog_ring_flush_cv());
	for (;;)
	{
		int64		waited_us = GetCurrentTimestamp() - start;

		connlog_ring_flush_view(&view);

		/*
		 * No worker.  One that ran before is being restarted by the
		 * postmaster, so wait for it like for a busy one.  If none has run
		 * since startup, allow a moment for the first to start before saying
		 * it is not running (on a standby it never will).
		 */
		if (view.worker_pid == 0 && !view.worker_seen &&
			waited_us >= Min(timeout_us, FLUSH_WORKER_GRACE_MS * INT64CONST(1000)))
		{
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("connlog worker is not running"),
					 errhint("The worker starts with the server once recovery has finished; see the server log.")));
		}
		if (view.worker_pid != 0 && connlog_ring_done_seq() >= target &&
			!connlog_wal_replaying())
			break;
		if (waited_us >= timeout_us)
		{
			WorkerStatus w;

			ConditionVariableCancelSleep();
			worker_status(&w);
			if (view.worker_pid == 0)
				ereport(ERROR,
						(errcode(ERRCODE_QUERY_CANCELED),
						 errmsg("connlog_flush timed out"),
						 errdetail("The connlog worker is restarting."),
				errhint("See connlog_stats.last_error and the server log.")));
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("connlog_flush timed out"),
					 errdetail_flush_timeout(&w,
										   target - connlog_ring_done_seq()),
					 errhint_worker_trouble(&w, false)));
		}
		if (view.worker_pid != 0)
			connlog_ring_request_flush();
		(void) ConditionVariableTimedSleep(connlog_ring_flush_cv(), 100,
										 CONNLOG_WAIT_EVENT(wait_event_flush,
															"ConnlogFlush"));
	}
	ConditionVariableCancelSleep();
	PG_RETURN_VOID();
}

/*
 * connlog_stats(): the one row behind the connlog_stats view.  A library
 * newer than the installed SQL (before ALTER EXTENSION UPDATE) must still
 * return the columns that version declares, so the columns follow the
 * definition's: 1.0 declares 14, 1.1 adds purged and worker_state, 1.2
 * adds lag.
 */
typedef enum ConnlogStatsVersion
{
	CONNLOG_STATS_V1_0 = 14,
	CONNLOG_STATS_V1_1 = 16,
	CONNLOG_STATS_V1_2 = 17
} ConnlogStatsVersion;

/*
 * connlog_stats.lag: how long ago the oldest event not accounted for was
 * stored (see ring.c), the way clock_timestamp() minus a timestamptz would
 * say it.  Never negative, should the clock have gone back since.
 */
static Datum
lag_interval(TimestampTz stored)
{
	TimestampTz now = GetCurrentTimestamp();

	return DirectFunctionCall2(timestamp_mi, TimestampTzGetDatum(now),
							   TimestampTzGetDatum(Min(stored, now)));
}

Datum
connlog_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	ConnlogStatsVersion version;
	ConnlogStats st;
	Datum		values[CONNLOG_STATS_V1_2];
	bool		nulls[CONNLOG_STATS_V1_2] = {0};
	int			i = 0;

	connlog_require_shared_memory();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	version = (ConnlogStatsVersion) tupdesc->natts;
	if (version != CONNLOG_STATS_V1_0 && version != CONNLOG_STATS_V1_1 &&
		version != CONNLOG_STATS_V1_2)
		elog(ERROR, "connlog_stats: the function's definition has %d columns, expected %d, %d or %d",
			 tupdesc->natts, CONNLOG_STATS_V1_0, CONNLOG_STATS_V1_1,
			 CONNLOG_STATS_V1_2);
	connlog_ring_stats(&st);

	values[i++] = Int64GetDatum((int64) st.enqueued);
	values[i++] = Int64GetDatum((int64) st.merged);
	values[i++] = Int64GetDatum((int64) st.written);
	values[i++] = Int64GetDatum((int64) st.rejected);
	values[i++] = Int64GetDatum((int64) st.dropped);
	values[i++] = Int64GetDatum((int64) st.pending);
	values[i++] = Int64GetDatum((int64) st.batches);
	values[i++] = Int64GetDatum((int64) st.write_errors);
	values[i++] = Int64GetDatum((int64) st.retries);
	if (version >= CONNLOG_STATS_V1_1)
		values[i++] = Int64GetDatum((int64) st.purged);
	values[i++] = Int64GetDatum((int64) st.ring_used_bytes);
	values[i++] = Int64GetDatum((int64) st.ring_size_bytes);
	nulls[i] = (st.last_flush == 0);
	values[i++] = TimestampTzGetDatum(st.last_flush);
	nulls[i] = (st.last_error[0] == '\0');
	values[i++] = CStringGetTextDatum(st.last_error);
	nulls[i] = (st.worker_pid == 0);
	values[i++] = Int32GetDatum(st.worker_pid);
	if (version >= CONNLOG_STATS_V1_1)
		values[i++] = CStringGetTextDatum(connlog_worker_state_label(st.worker_state));
	if (version >= CONNLOG_STATS_V1_2)
	{
		nulls[i] = (st.oldest_stored == 0);
		if (!nulls[i])
			values[i] = lag_interval(st.oldest_stored);
		i++;
	}
	Assert(i == tupdesc->natts);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* The symbols 1.1's and 1.2's SQL name: the same function */
Datum
connlog_stats_1_1(PG_FUNCTION_ARGS)
{
	return connlog_stats(fcinfo);
}

Datum
connlog_stats_1_2(PG_FUNCTION_ARGS)
{
	return connlog_stats(fcinfo);
}
