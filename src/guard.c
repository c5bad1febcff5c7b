/*-------------------------------------------------------------------------
 *
 * guard.c
 *		What the code of the table the worker writes to cannot do to the
 *		worker: outlive its cancel, make it exit again and again, or call
 *		back into connlog.
 *
 * The worker's upsert and retention DELETE run the code of the table
 * they write to: its triggers, defaults, policies and casts.  With
 * connlog.target_table, that table belongs to the application and its owner
 * writes that code; it runs as the owner in a security-restricted
 * operation (writer.c), so it gains no privilege.  But it runs inside the
 * worker's process, and three things it can do there would stop the
 * worker for everyone:
 *
 * It can ignore a cancel.  PL/pgSQL catches query_canceled like any
 * error, so a loop that catches it keeps the statement running through
 * every cancel: through pg_terminate_backend and a fast shutdown, whose
 * SIGTERM the worker turns into a cancel of the running statement
 * (worker.c), and through a statement timeout.  A FATAL cannot be caught.
 * So a cancel the worker sends for its own reasons (SIGTERM, the bound
 * on its statements) is noted here (connlog_guard_cancel_sent), and when
 * code catches it, which takes the abort of a subtransaction
 * (guard_subxact), a timeout is armed: if the same statement is still
 * running connlog.shutdown_timeout after the cancel (at the end of the
 * time left when the worker is already exiting), the timeout does what
 * die() does, and the next CHECK_FOR_INTERRUPTS ends the worker with
 * FATAL.  The timeout is armed from the abort, not from the signal
 * handler, since the server's timeout facility must not be entered from
 * a handler that may have interrupted it; and only a subtransaction's
 * abort can swallow an error, so no other path needs it.  A manual
 * pg_cancel_backend is not escalated: it cancels a statement and nothing
 * else.  Nothing is lost by that exit: the ring frees an event only once
 * it is accounted for (ring.c), so the next worker, or WAL replay after a
 * stop, writes what this one held.
 *
 * Every statement is bounded by connlog.statement_timeout (and, while
 * the worker is exiting, by the time it has left): the server's own
 * STATEMENT_TIMEOUT, which the worker arms itself since it is armed only
 * for client statements, and whose SIGINT the worker takes for a cancel
 * of its own (the timeout's indicator tells it from pg_cancel_backend).
 * The cancelled statement is an error of its batch, like any other.
 *
 * It can make the worker exit.  exit_on_error is a user setting: code
 * that sets it and raises an error in the same statement turns that
 * error into FATAL inside errstart(), before any handler runs, and
 * nothing the worker does can catch it.  Settings the code changes do not
 * outlive its statement (writer.c's begin_as_owner), but the statement
 * that dies would be written again by the next worker, and kill it the
 * same way, for ever.  So the worker remembers which rows each statement
 * that runs such code writes (connlog_guard_rows_begin, a pointer and a
 * range: nothing is copied on the way), and should it exit inside that
 * statement, its exit callback (guard_exit) records them in shared memory
 * for its successor: how many rows, the one row's fingerprint if it was
 * alone, and a filter of the fingerprints of all of them, with the
 * message of the FATAL that ended it.  A fingerprint is a hash of what
 * makes a row the same row to the upsert (the conflict key; a web
 * event's id, time and workspace), so it survives the successor cutting
 * its batches elsewhere.  The successor (flush.c) takes the rows of its
 * batches that match (the suspects) for a failing batch: it writes them
 * in halves, each narrower statement recorded the same way, and a row
 * that ended its predecessor while written alone is rejected without
 * being written again.  So a row that kills the worker costs about
 * log2(batch_size) + 1 restarts, once, and the other rows are written.
 * The filter is an approximate set (false positives only add suspects,
 * which are then written like any row); the one row's fingerprint is
 * exact.  A worker that exits inside a purge step has its successor wait
 * a purge_interval before the next (worker.c).  An exit that connlog
 * itself caused after a SIGTERM is no fault of the rows and records
 * nothing.  A successor that exits before it acted on what its
 * predecessor recorded leaves it in place for the next.
 *
 * The record is written by the exiting worker in its exit callback and
 * read by its successor as it starts; the postmaster starts the successor
 * only once the worker has exited, so the two never run at once and no
 * lock is needed.
 *
 * It can call back into connlog.  connlog_enqueue() and connlog_flush()
 * called in the worker's own process would wait for the worker, that is
 * for themselves; they refuse at once (connlog.c, connlog_is_worker), and
 * the rows whose code called them fail like rows failing for any other
 * reason.
 *
 * IDENTIFICATION
 *	  src/guard.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/shmem.h"
#include "utils/elog.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "batch.h"
#include "connlog.h"
#include "guard.h"
#include "ring.h"

/* bits of the filter of the rows a worker exited writing: 64 kbit */
#define FILTER_BYTES	8192
#define FILTER_MASK		(FILTER_BYTES * 8 - 1)

/* what a worker was doing when it exited */
typedef enum DiedIn
{
	DIED_NOWHERE,				/* not inside a statement that runs such code */
	DIED_WRITING,				/* writing rows (nrows, single, filter) */
	DIED_PURGING				/* in a purge step */
} DiedIn;

/* The record a worker leaves for its successor; see the file header. */
typedef struct GuardShared
{
	DiedIn		died_in;
	int			nrows;
	uint64		single;			/* the row's fingerprint if nrows == 1 */
	char		error[CONNLOG_LAST_ERROR_LEN];	/* the FATAL's message */
	uint8		filter[FILTER_BYTES];
} GuardShared;

static GuardShared *guard_shared = NULL;

/* The statement running now that runs the table's code, if any. */
typedef struct InFlight
{
	DiedIn		doing;
	const ClBatch *batch;
	int			start;
	int			n;
} InFlight;

static InFlight inflight;

/* The message of the FATAL that is ending the worker, if it is */
static char fatal_message[CONNLOG_LAST_ERROR_LEN];

/* What the predecessor recorded, taken over at start; and whether used */
static GuardShared died;
static bool died_used;

/*
 * The cancel of the running statement and its escalation.  cancel_at is
 * when connlog first cancelled it (0: not yet), set by signal handlers;
 * hard_deadline, when the time the exiting worker has left runs out.
 */
static volatile TimestampTz cancel_at;
static TimestampTz hard_deadline;
static bool statement_timer;	/* STATEMENT_TIMEOUT is armed */
static bool escalation_armed;
static volatile sig_atomic_t escalated;
static TimeoutId escalate_timeout;

static emit_log_hook_type prev_emit_log_hook = NULL;

volatile sig_atomic_t connlog_in_statement = false;

Size
connlog_guard_shmem_size(void)
{
	return sizeof(GuardShared);
}

/* Called from the shmem_startup_hook, with AddinShmemInitLock held. */
void
connlog_guard_shmem_init(void)
{
	bool		found;

	guard_shared = ShmemInitStruct("connlog guard", sizeof(GuardShared),
								   &found);
	if (!found)
		memset(guard_shared, 0, sizeof(GuardShared));
}

/*
 * What makes a row the same row to the upsert: the conflict key, or for a
 * web event (which never merges) its id, time and workspace, the way
 * writer.c recognises a web event written before.  Allocates nothing: the
 * exit callback computes it.
 */
static uint64
fingerprint(const ClBatch *b, int i)
{
	const ClEntry *e = &b->entries[i];
	ClEvent		ev;
	uint64		h;

	cl_batch_entry_event(b, e, &ev);
	if (ev.flags & CL_HAS_CONNECTION_ID)
	{
		h = hash_bytes_extended(ev.connection_id, sizeof(ev.connection_id), 1);
		h = hash_combine64(h, hash_bytes_extended((const unsigned char *) ev.agent_name.data,
												  ev.agent_name.len, 0));
	}
	else
	{
		h = hash_bytes_extended(ev.id, sizeof(ev.id), 2);
		h = hash_combine64(h, hash_bytes_extended((const unsigned char *) &e->event_time,
												  sizeof(e->event_time), 0));
	}
	return hash_combine64(h, hash_bytes_extended(ev.workspace_id,
												 sizeof(ev.workspace_id), 0));
}

/* the three bits of fingerprint h in the filter */
#define FILTER_BIT(h, k)	((uint32) ((h) >> (16 * (k))) & FILTER_MASK)

static inline bool
filter_has(const uint8 *filter, uint64 h)
{
	for (int k = 0; k < 3; k++)
	{
		uint32		bit = FILTER_BIT(h, k);

		if ((filter[bit / 8] & (1 << (bit % 8))) == 0)
			return false;
	}
	return true;
}

static inline void
filter_add(uint8 *filter, uint64 h)
{
	for (int k = 0; k < 3; k++)
	{
		uint32		bit = FILTER_BIT(h, k);

		filter[bit / 8] |= 1 << (bit % 8);
	}
}

/*
 * before_shmem_exit: a worker exiting inside a statement that runs the
 * table's code records what it was doing for its successor, unless it is
 * connlog that ended it after a SIGTERM.
 */
static void
guard_exit(int code, Datum arg)
{
	GuardShared *g = guard_shared;

	if (escalated)
		ereport(WARNING,
				(errmsg("connlog worker ended itself: its statement kept running after connlog cancelled it"),
				 errdetail("Code of the table the statement wrote to caught the cancel; the worker waited connlog.shutdown_timeout (%d ms) for the statement to end.",
						   connlog_shutdown_timeout_ms),
				 errhint("The events it held stay in shared memory for the next worker.  If the server is stopping, those not backed by WAL are lost.")));
	if (inflight.doing == DIED_NOWHERE ||
		(escalated && ShutdownRequestPending))
	{
		/* what the predecessor recorded is still to be acted on */
		if (died.died_in != DIED_NOWHERE && !died_used)
			memcpy(g, &died, sizeof(died));
		return;
	}
	if (escalated)
		strlcpy(fatal_message,
				"a statement kept running after connlog.statement_timeout cancelled it",
				sizeof(fatal_message));
	memset(g->filter, 0, sizeof(g->filter));
	g->nrows = 0;
	g->single = 0;
	if (inflight.doing == DIED_WRITING)
	{
		for (int i = inflight.start; i < inflight.start + inflight.n; i++)
		{
			uint64		h = fingerprint(inflight.batch, i);

			filter_add(g->filter, h);
			g->single = h;
		}
		g->nrows = inflight.n;
	}
	strlcpy(g->error, fatal_message, sizeof(g->error));
	g->died_in = inflight.doing;
}

/* emit_log_hook: keep the message of a FATAL ending a statement */
static void
guard_emit_log(ErrorData *edata)
{
	if (edata->elevel >= FATAL && inflight.doing != DIED_NOWHERE &&
		edata->message != NULL)
		strlcpy(fatal_message, edata->message, sizeof(fatal_message));
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/*
 * The escalation timeout, in the SIGALRM handler: if the statement that
 * swallowed connlog's cancel still runs, end the worker as die() would.
 */
static void
escalate(void)
{
	if (!connlog_in_statement)
		return;
	escalated = true;
	ProcDiePending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

/*
 * A subtransaction aborted inside a statement connlog has cancelled: code
 * caught the cancel.  Arm the escalation, once per statement.
 */
static void
guard_subxact(SubXactEvent event, SubTransactionId mySubid,
			  SubTransactionId parentSubid, void *arg)
{
	TimestampTz deadline;

	if (event != SUBXACT_EVENT_ABORT_SUB || !connlog_in_statement ||
		cancel_at == 0 || escalation_armed)
		return;
	deadline = Min(TimestampTzPlusMilliseconds(cancel_at,
											   connlog_shutdown_timeout_ms),
				   hard_deadline);
	enable_timeout_at(escalate_timeout, deadline);
	escalation_armed = true;
}

/*
 * Once the worker has connected: its exit callback and hooks, and what
 * its predecessor recorded, which it takes over (and reports).
 */
void
connlog_guard_init_worker(void)
{
	escalate_timeout = RegisterTimeout(USER_TIMEOUT, escalate);
	RegisterSubXactCallback(guard_subxact, NULL);
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = guard_emit_log;
	before_shmem_exit(guard_exit, (Datum) 0);

	memcpy(&died, guard_shared, sizeof(died));
	guard_shared->died_in = DIED_NOWHERE;
	if (died.died_in == DIED_WRITING)
	{
		connlog_ring_note_flush(connlog_guard_death_error());
		ereport(WARNING,
				(errmsg("the previous connlog worker exited inside a statement that wrote %d connection log rows",
						died.nrows),
				 died.error[0] != '\0' ?
				 errdetail("It exited with: %s", died.error) : 0,
				 died.nrows == 1 ?
				 errhint("The row goes to connection_logs_rejected; the other rows are written.") :
				 errhint("The rows are written again in smaller statements; a row that ends the worker when written alone goes to connection_logs_rejected.")));
	}
	else if (died.died_in == DIED_PURGING)
	{
		ereport(WARNING,
				(errmsg("the previous connlog worker exited inside a step of connlog.retention"),
				 died.error[0] != '\0' ?
				 errdetail("It exited with: %s", died.error) : 0,
				 errhint("Events are still written; connlog deletes again after connlog.purge_interval.")));
	}
}

/*
 * A statement starts (writer.c): bound it by connlog.statement_timeout,
 * and by exit_budget_ms (0: none) while the worker is exiting.
 */
void
connlog_guard_statement_start(int exit_budget_ms)
{
	int			bound = connlog_statement_timeout_ms;
	TimestampTz now = GetCurrentTimestamp();

	hard_deadline = DT_NOEND;
	if (exit_budget_ms > 0)
	{
		hard_deadline = TimestampTzPlusMilliseconds(now, exit_budget_ms);
		if (bound == 0 || exit_budget_ms < bound)
			bound = exit_budget_ms;
	}
	if (bound > 0)
	{
		enable_timeout_after(STATEMENT_TIMEOUT, bound);
		statement_timer = true;
	}
}

/*
 * The statement is over, however it ended (writer.c, once
 * connlog_in_statement is false): no timeout of it may fire later, and a
 * cancel or escalation that came too late for it does not outlive it.
 */
void
connlog_guard_statement_end(void)
{
	if (statement_timer)
		disable_timeout(STATEMENT_TIMEOUT, false);
	if (escalation_armed)
		disable_timeout(escalate_timeout, false);
	statement_timer = escalation_armed = false;
	if (escalated)
		ProcDiePending = false;
	escalated = false;
	cancel_at = 0;
	inflight.doing = DIED_NOWHERE;
	inflight.batch = NULL;
}

/*
 * The statement about to run writes entries [start, start + n) of b and
 * runs the code of the table; remembered until connlog_guard_statement_end.
 */
void
connlog_guard_rows_begin(const ClBatch *b, int start, int n)
{
	inflight.batch = b;
	inflight.start = start;
	inflight.n = n;
	inflight.doing = DIED_WRITING;
}

/* The statement about to run is a purge step, on the table. */
void
connlog_guard_purge_begin(void)
{
	inflight.doing = DIED_PURGING;
}

/*
 * In a signal handler of the worker, which has just cancelled the running
 * statement for a reason of its own: the statement must end.
 */
void
connlog_guard_cancel_sent(void)
{
	if (cancel_at == 0)
		cancel_at = GetCurrentTimestamp();
}

/* Did the predecessor exit inside a purge step?  Asked once, at start. */
bool
connlog_guard_died_purging(void)
{
	if (died.died_in != DIED_PURGING)
		return false;
	died_used = true;
	return true;
}

/* Did the predecessor exit while it wrote rows?  Then some are suspects. */
bool
connlog_guard_have_suspects(void)
{
	return died.died_in == DIED_WRITING;
}

/* Is entry i of b among the rows the predecessor exited writing? */
bool
connlog_guard_is_suspect(const ClBatch *b, int i)
{
	uint64		h;

	if (died.died_in != DIED_WRITING)
		return false;
	h = fingerprint(b, i);
	if (died.nrows == 1 ? h != died.single : !filter_has(died.filter, h))
		return false;
	died_used = true;
	return true;
}

/* Was the row the predecessor exited writing alone? */
bool
connlog_guard_died_alone(void)
{
	return died.died_in == DIED_WRITING && died.nrows == 1;
}

/*
 * Why the suspects fail, for the log, last_error and, for a row written
 * alone, connection_logs_rejected; palloc'd.
 */
char *
connlog_guard_death_error(void)
{
	int			nrows = died.nrows;

	if (died.error[0] == '\0')
		return nrows == 1 ?
			pstrdup("connlog worker exited while it wrote this row alone") :
			pstrdup("connlog worker exited while it wrote these rows");
	return nrows == 1 ?
		psprintf("connlog worker exited while it wrote this row alone: %s",
				 died.error) :
		psprintf("connlog worker exited while it wrote these rows: %s",
				 died.error);
}
