/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The connlog background worker: its process, loop, states, signals,
 *		retention, and exit.
 *
 * The loop, once connected (connect.c): each turn, while the worker can
 * write, the durability step (replay from WAL once, the slot), retries,
 * the drain of the ring and, when due, a flush and a retention step; every
 * turn, it publishes how far events are accounted for and its state, and
 * sleeps until the next deadline.  The batches themselves are batches.c's
 * (interface in batches.h); what a write meets that changes the state
 * comes back through batches_hooks.  On SIGTERM, shutdown_drain() writes
 * what it can within connlog.shutdown_timeout.
 *
 * This file owns the state (one variable, state: see the table in
 * doc/internals.md, "States"), when a worker that
 * cannot write looks again, the retention run, the turn's memory, and
 * the messages logged once (once.c).  It changes shared memory only
 * through ring.c's functions.
 *
 * Signals: SIGTERM sets ShutdownRequestPending, the one flag that says
 * the worker must exit, and cancels a running statement unless the drain
 * has begun; SIGINT cancels a running statement only.
 *
 * IDENTIFICATION
 *	  src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "connect.h"
#include "connlog.h"
#include "batches.h"
#include "guard.h"
#include "once.h"
#include "ring.h"
#include "progress.h"
#include "wal.h"
#include "worker.h"
#include "statements.h"

/* glibc's malloc in the worker: see connlog_worker_main() */
#define WORKER_MMAP_THRESHOLD	(64 * 1024 * 1024)
#define WORKER_TRIM_THRESHOLD	(256 * 1024 * 1024)

/*
 * Memory (see doc/internals.md, "Memory").  turn_cxt is the current
 * context during each turn of the worker's loop and is emptied at the
 * start of the next.
 */
static MemoryContext turn_cxt;

/* The worker's state: see doc/internals.md, "States" */
typedef enum WorkerState
{
	WS_UNCHECKED,				/* cannot write; nothing reported yet */
	WS_NO_EXTENSION,			/* cannot write: the extension is missing */
	WS_NO_PRIVILEGE,			/* cannot write: connlog.role lacks a
								 * privilege */
	WS_BROKEN,					/* cannot write: the statements cannot be
								 * prepared */
	WS_WRITING,					/* writes */
	WS_PURGING					/* writes; a purge run is under way */
} WorkerState;

static WorkerState state = WS_UNCHECKED;
static TimestampTz next_check;	/* when a worker that cannot write looks */

/* connlog.retention */
static TimestampTz next_purge;
static uint64 purge_run_rows;
static ConnlogLogOnce purge_error_logged;


static uint32 wait_event_main;

/* Can the worker write?  Only check_target() makes it able to again. */
static inline bool
can_write(void)
{
	return state == WS_WRITING || state == WS_PURGING;
}

/*
 * Start a turn of a loop in turn_cxt, emptied of what the last turn left
 * there.  Every path must end its turn in turn_cxt; should one not, the
 * turns that follow still start there instead of allocating wherever that
 * path left them.
 */
static void
begin_turn(void)
{
	Assert(CurrentMemoryContext == turn_cxt);
	MemoryContextSwitchTo(turn_cxt);
	MemoryContextReset(turn_cxt);
}

/*
 * Signals.  SIGTERM asks for shutdown_drain(); arriving while a statement
 * runs (one waiting for a lock, say), it also cancels that statement, so
 * that shutdown_timeout bounds the exit; the cancelled batch is retried by
 * the drain, whose own statements are bounded by statement_timeout instead.
 * SIGINT (pg_cancel_backend) cancels a running statement and nothing else:
 * between statements no error handler is set up, and a cancel there would
 * end the worker and the batches in its memory.  A cancel of connlog's
 * own (SIGTERM's, or the SIGINT of its statement timeout) must end the
 * statement: guard.c ends the worker if the statement's code catches it.
 */
static void
cancel_running_statement(bool ours)
{
	if (connlog_in_statement)
	{
		QueryCancelPending = true;
		InterruptPending = true;
		if (ours)
			connlog_guard_cancel_sent();
	}
}

static void
handle_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	ShutdownRequestPending = true;
	if (!connlog_batches_exiting())
		cancel_running_statement(true);
	SetLatch(MyLatch);
	errno = save_errno;
}

static void
handle_sigint(SIGNAL_ARGS)
{
	int			save_errno = errno;

	/* the timeout's indicator is set before its handler sends SIGINT */
	cancel_running_statement(get_timeout_indicator(STATEMENT_TIMEOUT, false));
	SetLatch(MyLatch);
	errno = save_errno;
}

/* SIGHUP: read the configuration again. */
static void
reload_config(void)
{
	if (!ConfigReloadPending)
		return;
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	connlog_batches_reloaded();
}

static ConnlogLogOnce blocked_logged;	/* the reason log_blocked() logged */

/* why the worker cannot write, for log_blocked() */
typedef enum BlockedWhy
{
	BLOCKED_PRIVILEGE,
	BLOCKED_BROKEN,
	BLOCKED_SLOT,
	BLOCKED_SLOT_PROGRESS,
	BLOCKED_SLOT_PROGRESS_MISSING
} BlockedWhy;

#define BLOCKED_DETAIL \
	"Events stay in the ring until this is fixed; connlog looks again every connlog.flush_interval."

/*
 * Report why nothing is written (in connlog_stats.last_error, and in the
 * log when it is news).
 */
static void
log_blocked(BlockedWhy why, const char *error)
{
	connlog_ring_note_flush(error);
	if (!connlog_log_once(&blocked_logged, error))
		return;
	switch (why)
	{
		case BLOCKED_PRIVILEGE:
			ereport(WARNING,
					(errmsg("connlog cannot write with the privileges of its role: %s",
							error),
					 errdetail(BLOCKED_DETAIL)));
			break;
		case BLOCKED_BROKEN:
			ereport(WARNING,
					(errmsg("connlog could not prepare its statements: %s",
							error),
					 errdetail(BLOCKED_DETAIL)));
			break;
		case BLOCKED_SLOT:
			ereport(WARNING,
				 (errmsg("connlog could not create its replication slot: %s",
						 error),
				  errdetail(BLOCKED_DETAIL)));
			break;
		case BLOCKED_SLOT_PROGRESS:
			ereport(WARNING,
					(errmsg("connlog could not store its WAL progress: %s",
							error),
					 errdetail(BLOCKED_DETAIL)));
			break;
		case BLOCKED_SLOT_PROGRESS_MISSING:
			ereport(WARNING,
					(errmsg("connlog could not store its WAL progress: extension connlog is not installed"),
					 errdetail(BLOCKED_DETAIL)));
			break;
	}
}

/*
 * The worker cannot write, or a write refused for a privilege: look for
 * the extension and prepare the statements, and move to the state that
 * follows (see doc/internals.md, "States").
 */
static void
check_target(void)
{
	char	   *error;
	ConnlogWriteStatus st = connlog_check_target(&error);

	Assert(!can_write());
	next_check = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											 connlog_flush_interval_ms);
	switch (st)
	{
		case CL_WRITE_OK:
			if (state != WS_UNCHECKED)
				ereport(LOG,
						(errmsg("connlog can write to database \"%s\" again; writing resumes",
								connlog_database)));
			/* at startup too: a predecessor may have left why it waited */
			connlog_ring_clear_error();
			/* the same reason, should it come back, is news again */
			(void) connlog_log_once(&blocked_logged, NULL);
			state = WS_WRITING;
			break;
		case CL_WRITE_MISSING:
			/* reported once, unless a reason of its own was reported */
			if (state == WS_UNCHECKED)
			{
				connlog_ring_note_flush(psprintf("extension connlog is not installed in database \"%s\"",
												 connlog_database));
				ereport(LOG,
						(errmsg("extension connlog is not installed in database \"%s\"",
								connlog_database),
						 errdetail("Events stay in the ring until it is; connlog looks again every connlog.flush_interval."),
				  errhint("Run CREATE EXTENSION connlog in database \"%s\".",
						  connlog_database)));
			}
			state = WS_NO_EXTENSION;
			break;
		case CL_WRITE_DENIED:
			state = WS_NO_PRIVILEGE;
			log_blocked(BLOCKED_PRIVILEGE, error);
			break;
		default:
			/* not a missing extension but a broken one */
			state = WS_BROKEN;
			log_blocked(BLOCKED_BROKEN, error);
			break;
	}
	/* called every flush_interval while a write waits for a privilege */
	if (error != NULL)
		pfree(error);
}

/*
 * A write found the extension missing: stop writing until check_target()
 * finds it (a purge run under way is over).
 */
static void
found_missing(void)
{
	if (can_write())
		state = WS_UNCHECKED;
}

/*
 * A write was refused for a missing privilege (SQLSTATE 42501): stop
 * writing until check_target() finds the privileges in place.
 */
static void
note_denied(const char *error)
{
	state = WS_NO_PRIVILEGE;
	next_check = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											 connlog_flush_interval_ms);
	log_blocked(BLOCKED_PRIVILEGE, error);
}

static ConnlogLogOnce held_logged;	/* the error note_held() logged */

/*
 * A batch is held: every row of it failed, alone or with others, with an
 * error no row causes by its nature (batches.c's write_split).  Not a state:
 * the worker writes other batches meanwhile, and a privilege is not
 * missing (that would be note_denied()).  The error goes to last_error,
 * and to the log when it is news; NULL (rows written since) makes it news
 * again.
 */
static void
note_held(const char *error)
{
	if (error == NULL)
	{
		(void) connlog_log_once(&held_logged, NULL);
		return;
	}
	connlog_ring_note_flush(error);
	if (connlog_log_once(&held_logged, error))
		ereport(WARNING,
				(errmsg("connlog is holding rows that no write takes: %s",
						error),
				 errdetail("Every row of a batch failed, alone or with others, so connlog takes the error for a fault of the table or the server, not of the rows, and rejects none of them."),
				 errhint("connlog tries again every connlog.retry_interval; the rows are written once the cause is gone.")));
}

/*
 * What connlog_stats.worker_state shows between writes: why the worker
 * cannot write, or whether its retry queue is full.
 */
static ConnlogWorkerState
published_state(void)
{
	switch (state)
	{
		case WS_UNCHECKED:
		case WS_NO_EXTENSION:
			return CL_STATE_NO_EXTENSION;
		case WS_NO_PRIVILEGE:
			return CL_STATE_NO_PRIVILEGE;
		case WS_BROKEN:
			return CL_STATE_BROKEN;
		case WS_WRITING:
		case WS_PURGING:
			break;
	}
	return connlog_batches_queue_full() ?
		CL_STATE_RETRY_QUEUE_FULL : CL_STATE_IDLE;
}

/* Sleep until the latch is set, or ms milliseconds at most. */
static void
sleep_ms(long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, CONNLOG_WAIT_EVENT(wait_event_main, "ConnlogMain"));
	ResetLatch(MyLatch);
}

/*
 * A write of a part of a split was refused for a privilege.  Wait here
 * (the split's position lives only in its stack frames), looking again every
 * flush_interval, until the privilege is back.  Returns false if the
 * worker must exit first.
 */
static bool
wait_until_writable(void)
{
	while (!can_write())
	{
		if (ShutdownRequestPending)
			return false;
		connlog_ring_set_state(published_state());
		sleep_ms(connlog_flush_interval_ms);
		CHECK_FOR_INTERRUPTS();
		reload_config();
		if (GetCurrentTimestamp() >= next_check)
			check_target();
	}
	return true;
}

/*
 * When the loop must look again: the next flush, retry, extension check or
 * purge step, or when the WAL writer may need waking.
 */
static TimestampTz
next_wakeup(TimestampTz now, TimestampTz last_flush)
{
	TimestampTz wake = TimestampTzPlusMilliseconds(last_flush,
												   connlog_flush_interval_ms);

	wake = Min(wake, connlog_batches_next_retry());
	if (!can_write())
		wake = next_check;
	else if (state == WS_PURGING)
		wake = 0;				/* the next step after this turn's drain */
	else if (connlog_retention_s > 0)
		wake = Min(wake, next_purge);
	if (connlog_wal_tracking())
		wake = Min(wake, TimestampTzPlusMilliseconds(now,
												 connlog_wal_wake_writer()));
	return wake;
}

/*
 * One step of connlog.retention.  A run of steps starts every
 * purge_interval and ends with a step that finds fewer rows than it may
 * delete; the main loop drains the ring between steps.  A failed step ends
 * the run, and the next starts a purge_interval later.  A write that finds
 * the extension missing cuts a run short; it goes on once the extension
 * is back.
 */
static void
purge_step(TimestampTz now)
{
	uint64		deleted;
	char	   *error;
	ConnlogWriteStatus st;

	if (!can_write())
		return;
	if (state != WS_PURGING)
	{
		if (connlog_retention_s <= 0 || now < next_purge)
			return;
		state = WS_PURGING;
	}
	connlog_ring_set_state(CL_STATE_PURGING);
	st = connlog_write_purge(now - (TimestampTz) connlog_retention_s * USECS_PER_SEC,
							 connlog_purge_batch_size, &deleted, &error);
	if (st == CL_WRITE_OK)
	{
		connlog_count(&connlog_counters()->purged, deleted);
		purge_run_rows += deleted;
		elog(DEBUG1, "connlog purge step deleted %llu rows",
			 (unsigned long long) deleted);
		if (deleted >= (uint64) connlog_purge_batch_size &&
			connlog_retention_s > 0)
			return;
		if (purge_run_rows > 0)
			ereport(LOG,
					(errmsg("connlog deleted %llu rows of connection_logs older than connlog.retention",
							(unsigned long long) purge_run_rows)));
		(void) connlog_log_once(&purge_error_logged, NULL);
	}
	else if (st == CL_WRITE_MISSING)
		found_missing();
	else
	{
		/* events are not affected: report it once, try again later */
		elog(DEBUG1, "connlog purge step failed: %s", error);
		connlog_ring_note_flush(error);
		if (connlog_log_once(&purge_error_logged, error))
			ereport(WARNING,
					(errmsg("connlog could not delete rows past connlog.retention: %s",
							error),
					 errdetail("Events are still written; connlog tries again every connlog.purge_interval."),
					 st == CL_WRITE_DENIED ?
					 errhint("Grant DELETE on connection_logs, or on the table connlog.target_table names, to the role connlog writes as.") : 0));
	}
	/* the run is over; one cut short by a missing extension goes on */
	purge_run_rows = 0;
	if (state == WS_PURGING)
		state = WS_WRITING;
	next_purge = TimestampTzPlusMilliseconds(now, connlog_purge_interval_ms);
}

/* Why the worker exits with events not written, for shutdown_drain() */
static int
errdetail_unwritten(TimestampTz deadline)
{
	switch (state)
	{
		case WS_UNCHECKED:
		case WS_NO_EXTENSION:
			return errdetail("Extension connlog is not installed in the database.");
		case WS_NO_PRIVILEGE:
			return errdetail("connlog.role lacks a privilege that connlog's statements need.");
		case WS_BROKEN:
			return errdetail("connlog could not prepare its statements.");
		case WS_WRITING:
		case WS_PURGING:
			break;
	}
	if (GetCurrentTimestamp() >= deadline)
		return errdetail("connlog.shutdown_timeout expired.");
	return errdetail("Writing them failed with an error that may be temporary.");
}

/*
 * SIGTERM: write everything enqueued before now, within shutdown_timeout.
 * What is not written then, the batches this worker holds included, stays
 * in the ring, accounted for by no one (see ring.c): the next worker
 * writes it after pg_terminate_backend, and if the server is stopping,
 * the postmaster logs how many events are lost and how many will be read
 * back from WAL.
 */
static void
shutdown_drain(void)
{
	uint64		tail,
				tail_seq,
				head_seq,
				target;
	ConnlogStats st;
	TimestampTz deadline;

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   connlog_shutdown_timeout_ms);
	connlog_batches_exit_by(deadline);
	connlog_ring_set_state(CL_STATE_EXITING);
	pgstat_report_activity(STATE_RUNNING, "connlog: writing all events before exit");

	if (!can_write())
		check_target();
	(void) connlog_ring_snapshot(&tail, &tail_seq, &target, NULL);
	connlog_batches_before_exit(target);

	(void) connlog_ring_snapshot(&tail, &tail_seq, &head_seq, NULL);
	if (tail_seq < target)
		ereport(WARNING,
			(errmsg("connlog worker is exiting with %llu events not written",
					(unsigned long long) (head_seq - tail_seq)),
			 errdetail_unwritten(deadline),
			 errhint("The events stay in shared memory for the next worker.  If the server is stopping, those not backed by WAL are lost.")));
	else if (head_seq > tail_seq)
		ereport(LOG,
				(errmsg("connlog worker is exiting; %llu events enqueued since it was told to are left for the next worker",
						(unsigned long long) (head_seq - tail_seq))));

	/* the counters vanish with shared memory: leave them in the log */
	connlog_ring_stats(&st);
	ereport(LOG,
			(errmsg("connlog worker exiting: enqueued %llu, merged %llu, written %llu, rejected %llu, dropped %llu, pending %llu",
					(unsigned long long) st.enqueued,
					(unsigned long long) st.merged,
					(unsigned long long) st.written,
					(unsigned long long) st.rejected,
					(unsigned long long) st.dropped,
					(unsigned long long) st.pending)));
}

/*
 * Waiting to connect (connect.c), once per look: the settings, and
 * SIGTERM, which has nothing to drain yet.
 */
static long
connect_wait_turn(void)
{
	reload_config();
	if (ShutdownRequestPending)
		proc_exit(1);
	return connlog_flush_interval_ms;
}

/* Waiting to connect: publish what the worker waits for. */
static void
connect_wait_publish(ConnlogWorkerState state, const char *why)
{
	connlog_ring_set_state(state);
	connlog_ring_note_flush(why);
}

/* How the worker waits to connect; the wait event is set at start */
static ConnlogConnectWait connect_wait = {
	.who = CL_CONNECTOR_WORKER,
	.name = "connlog worker",
	.turn = connect_wait_turn,
	.publish = connect_wait_publish,
};

/*
 * connlog.durability, once the worker can write: read back from WAL, once,
 * the WAL-backed events no committed write accounted for; create the slot
 * when a producer asks for it (its first WAL-backed event), or log why
 * not.
 */
static void
durability_step(void)
{
	char	   *error;

	if (connlog_wal_replay_pending() && !connlog_batches_replay())
		found_missing();
	if (!can_write() || !connlog_wal_slot_requested())
		return;
	switch (connlog_wal_ensure_slot(connlog_batches_next_seq(), &error))
	{
		case CL_SLOT_READY:
			break;
		case CL_SLOT_NOT_CREATED:
			log_blocked(BLOCKED_SLOT, error);
			break;
		case CL_SLOT_PROGRESS_NOT_STORED:
			if (error != NULL)
				log_blocked(BLOCKED_SLOT_PROGRESS, error);
			else
				log_blocked(BLOCKED_SLOT_PROGRESS_MISSING,
							"extension connlog is not installed");
			break;
	}
}

/* what the batch side (batches.c) asks of this one */
static const ConnlogBatchesHooks batches_hooks = {
	.can_write = can_write,
	.found_missing = found_missing,
	.denied = note_denied,
	.wait_until_writable = wait_until_writable,
	.held = note_held,
};

void
connlog_worker_main(Datum main_arg)
{
	TimestampTz last_flush;		/* start of the current flush interval */

	connlog_is_worker = true;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, handle_sigterm);
	pqsignal(SIGINT, handle_sigint);
	BackgroundWorkerUnblockSignals();

	turn_cxt = AllocSetContextCreate(TopMemoryContext, "connlog worker turn",
									 ALLOCSET_DEFAULT_SIZES);

	connlog_ring_attach_worker();
	connect_wait.wait_event =
		CONNLOG_WAIT_EVENT(wait_event_main, "ConnlogMain");
	connlog_connect(&connect_wait);
	connlog_guard_init_worker();

#ifdef __GLIBC__

	/*
	 * Every batch allocates and frees the same large chunks: the row array
	 * and the executor's bigger memory blocks.  glibc gives chunks this size
	 * their own mmap(), so each batch would fault its memory in afresh
	 * (zeroed pages, several percent of the worker's CPU).  Keep them in the
	 * heap and reuse them instead; this process only.
	 */
	mallopt(M_MMAP_THRESHOLD, WORKER_MMAP_THRESHOLD);
	mallopt(M_TRIM_THRESHOLD, WORKER_TRIM_THRESHOLD);
#endif

	connlog_batches_init(&batches_hooks);
	/* a purge step its predecessor exited in waits a purge_interval */
	if (connlog_guard_died_purging())
		next_purge = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												 connlog_purge_interval_ms);

	ereport(LOG,
			(errmsg("connlog worker started for database \"%s\"",
					connlog_database)));
	MemoryContextSwitchTo(turn_cxt);
	check_target();
	last_flush = GetCurrentTimestamp();

	while (!ShutdownRequestPending)
	{
		TimestampTz now;
		TimestampTz wake;
		bool		flush_asked;
		bool		flush_due;

		begin_turn();
		CHECK_FOR_INTERRUPTS();

		/* Reload the configuration if asked to. */
		reload_config();

		/*
		 * If the worker cannot write, look again when due.  A flush that
		 * connlog_flush() asks for also means "look now": the extension may
		 * be new.
		 */
		now = GetCurrentTimestamp();
		flush_asked = connlog_ring_take_flush_request();
		if (!can_write() && (flush_asked || now >= next_check))
			check_target();

		/* computed each turn, so that a reloaded flush_interval applies */
		flush_due = flush_asked ||
			now >= TimestampTzPlusMilliseconds(last_flush,
											   connlog_flush_interval_ms);
		if (flush_due)
			last_flush = now;

		/* Otherwise: replay, retries, drain, flush, purge. */
		if (can_write())
		{
			durability_step();
			connlog_batches_retry(now);
			connlog_batches_drain();
			if (flush_due)
				connlog_batches_write_current();
			purge_step(now);
		}

		/* connlog_flush() waits for no replay while none can run */
		if (!can_write())
			connlog_wal_set_replayed();
		connlog_batches_publish_done();

		/* Sleep until the next deadline. */
		wake = next_wakeup(now, last_flush);
		connlog_ring_set_state(published_state());
		pgstat_report_activity(STATE_IDLE, NULL);
		sleep_ms(TimestampDifferenceMilliseconds(GetCurrentTimestamp(), wake));
	}

	shutdown_drain();
	proc_exit(1);
}
