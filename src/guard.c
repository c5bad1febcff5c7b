/*-------------------------------------------------------------------------
 *
 * guard.c
 *		What the code of the table the worker writes to cannot do to the
 *		worker: outlive its cancel, make it exit again and again, or call
 *		back into connlog.
 *
 * The worker's upsert and retention DELETE run the code of the table
 * they write to (triggers, defaults, policies, casts), as the table's
 * owner but inside the worker's process.  Three things that code could do
 * there would stop the worker for everyone; this file keeps it from them:
 *
 *	- ignore a cancel: a cancel connlog sends for its own reasons (SIGTERM,
 *	  the bound on its statements) is noted (connlog_guard_cancel_sent),
 *	  and once code catches it (guard_subxact sees the abort) the worker
 *	  ends itself with FATAL if the statement still runs shutdown_timeout
 *	  later (escalate).  Every statement is bounded by
 *	  connlog.statement_timeout, and while exiting by the time left
 *	  (connlog_guard_statement_start).
 *	- make the worker exit again and again (exit_on_error): the rows of the
 *	  statement running (connlog_guard_rows_begin) are recorded at exit
 *	  (guard_exit) for the successor, whose batches write them as suspects
 *	  (connlog_guard_is_suspect, batchwrite.c).
 *	- call back into connlog: connlog_enqueue() and connlog_flush() refuse
 *	  in the worker (enqueue.c and status.c, connlog_is_worker).
 *
 * Locking: the record in shared memory (GuardShared) is written by the
 * exiting worker in its exit callback and read by its successor as it
 * starts; the postmaster starts the successor only once the worker has
 * exited, so the two never run at once and no lock is needed.
 * connlog_in_statement, set by the runner around each statement, is read
 * in the worker's signal handlers, and cancel_at is set in them: both are
 * volatile.
 *
 * See doc/internals.md, "What the table's code cannot do to the worker".
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

/* The record a worker leaves for its successor; see above */
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
 * statements.c recognises a web event written before.  Allocates nothing: the
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
 * A statement starts (runner.c): bound it by connlog.statement_timeout,
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
 * The statement is over, however it ended (runner.c, once
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
