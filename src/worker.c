/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The connlog background worker: drain the ring, merge, write, retry.
 *
 * One worker, registered at postmaster start, started once recovery has
 * finished (so a standby never writes).  Its life:
 *
 *	- connect to connlog.database as connlog.role.  While either is
 *	  missing, after one failed attempt, the worker waits connected to no
 *	  database and looks for them every flush_interval, then exits to be
 *	  restarted and connects (connect.c says how).
 *	- loop on one WaitLatch: take events from the ring into the current
 *	  batch (merging as batch.c says), write the batch when it holds
 *	  batch_size rows, when flush_interval has passed, or when
 *	  connlog_flush() asks; retry failed batches from a bounded queue, and
 *	  stop draining the ring while that queue is full, so back-pressure
 *	  reaches the producers (connlog.overflow) instead of losing batches.
 *	- a batch that fails for its rows' fault (a data exception or an
 *	  integrity violation, see writer.c) is split in halves at once until
 *	  each failing row stands alone; other failures are retried first,
 *	  max_retries times.  The failing row goes to connection_logs_rejected,
 *	  and only if even that fails is it dropped.  A transient error (a lock
 *	  timeout, say) in the middle of a split rejects nothing: the batch
 *	  goes back to the retry queue, and its next attempt goes on with the
 *	  rows that have no outcome yet.
 *	- on SIGTERM (shutdown, or pg_terminate_backend) cancel the statement
 *	  in progress, if any, and write everything enqueued so far, bounded by
 *	  shutdown_timeout, then exit with code 1 so the postmaster restarts
 *	  the worker unless the server is stopping.
 *
 * While the extension is missing from the database, or connlog.role lacks
 * a privilege the statements need (checked when the plans are prepared,
 * and signalled by SQLSTATE 42501 from any write), nothing is taken from
 * the ring and a batch refused for a privilege keeps its place in the
 * retry queue without using up a retry; the worker looks again every
 * flush_interval.  A privilege error never sends rows to
 * connection_logs_rejected: it is not the rows' fault.
 *
 * connlog.retention: every purge_interval the worker deletes rows older
 * than the retention, purge_batch_size rows per transaction, one step per
 * turn of the loop, so event writes wait behind one step at most.
 *
 * The worker publishes what it is doing in connlog_stats.worker_state; the
 * ring-full error reads it to say why the ring is not draining.
 *
 * Nothing is lost or dropped when the worker exits, whenever that is
 * (pg_terminate_backend, an ERROR that ends it, shutdown_timeout expiring
 * with a batch half written): the ring frees an event only once its
 * outcome is decided and committed (ring.c), so whatever this worker
 * holds is still in the ring for its successor, which starts reading at
 * the ring's tail and skips the events flagged as accounted for.  Each
 * event's outcome (written, rejected, dropped, merged) is counted once:
 * a batch's outcomes are counted all at once, when the last of its rows
 * has one, in the same step that frees or flags its events in the ring
 * (batch_accounted).  A successor may thus write again rows its
 * predecessor wrote before it exited with their batch not yet accounted
 * for (a batch half split, say): it writes every batch holding events a
 * predecessor had read (taken_before) the way it writes events read back
 * from WAL, so a connection row merges into itself under the upsert and a
 * web event whose row exists is skipped (counted as written, its row
 * being there; writer.c says how the row is recognised).  What remains: a
 * row its predecessor had stored in connection_logs_rejected may be stored
 * there a second time.
 *
 * connlog.durability (wal.c): before it drains the ring, the worker reads
 * back from WAL the WAL-backed events that no committed write accounted
 * for, and it stores what holds (its progress: epoch, done_seq, done_lsn)
 * with every write; as it exits, it also stores how many WAL-backed
 * events it leaves unwritten.  wal.c keeps that progress ("The worker's
 * progress"); the worker tells it what its batches hold (held_events).
 *
 * States.  One variable, state, says what the worker can do; what
 * connlog_stats.worker_state shows between statements follows from it
 * (published_state: "idle" or "retry queue full" for the two that write);
 * while a statement runs writer.c shows "writing" or "purging", and an
 * exiting worker shows "exiting".
 *
 *	UNCHECKED		cannot write, and has reported nothing about it yet: at
 *					start, and after a write found the extension missing
 *	NO_EXTENSION	cannot write: the extension is missing
 *	NO_PRIVILEGE	cannot write: connlog.role lacks a privilege
 *	BROKEN			cannot write: the statements cannot be prepared
 *	WRITING			drains the ring and writes
 *	PURGING			the same, with a connlog.retention run under way: one
 *					purge step each turn until the run ends
 *
 * Transitions.  While the worker cannot write, check_target() looks every
 * flush_interval, and at once when connlog_flush() asks:
 *
 *	any that cannot write	--extension ready-->	WRITING
 *							(logged unless from UNCHECKED)
 *	any that cannot write	--extension missing-->	NO_EXTENSION
 *							(logged only from UNCHECKED)
 *	any that cannot write	--privilege missing-->	NO_PRIVILEGE (logged)
 *	any that cannot write	--another error-->		BROKEN (logged)
 *
 * and as the worker writes:
 *
 *	WRITING, PURGING	--a write finds the extension missing-->  UNCHECKED
 *	any					--a write is refused for a privilege-->	  NO_PRIVILEGE
 *	WRITING				--purge_interval has passed-->			  PURGING
 *	PURGING				--the run's last step-->				  WRITING
 *
 * Two things are not states of this machine.  connlog.durability's own
 * (whether the replay from WAL is still to run, whether the slot exists)
 * lives in wal.c, "The worker's progress".  shutting_down, set on SIGTERM,
 * is a flag beside state: the worker exits from any state, and what it
 * logs as it does depends on that state; the signal handler reads it.
 *
 * Memory.  The worker runs for months, so nothing it allocates along the
 * way may accumulate.  As in pg_cron's launcher, each turn of its loop runs
 * in a memory context of its own that is emptied at the start of the next
 * turn, so whatever a turn allocates and does not free (an error message, a
 * psprintf'd detail, what the server's own functions leave behind) is gone
 * by then, on every path, including paths added later.  A turn may write
 * many batches (a drain of a full ring, a replay, the drain at shutdown),
 * so each batch's write runs in a context of its own, emptied after it, and
 * a log_events line in one emptied after the line (writer.c): what a turn
 * holds is bounded by one batch, not by how much it writes.  What must
 * outlive a turn lives in long-lived contexts of its own: the batches (the
 * current one and the retry queue), and the messages remembered so that a
 * lasting condition is logged once.  Code that starts and ends a
 * transaction itself must switch back to the context it was called in,
 * since a commit or an abort leaves TopMemoryContext current and whatever
 * is allocated there stays for good; the loop checks (in assert-enabled
 * builds) that every turn ends in turn_cxt.
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

#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "connect.h"
#include "connlog.h"
#include "ring.h"
#include "wal.h"
#include "worker.h"
#include "writer.h"

#define MAX_RETRY_QUEUE		1000	/* connlog.retry_queue_size's maximum */

/* glibc's malloc in the worker: see connlog_worker_main() */
#define WORKER_MMAP_THRESHOLD	(64 * 1024 * 1024)
#define WORKER_TRIM_THRESHOLD	(256 * 1024 * 1024)

/*
 * Memory (see "Memory" in the file header).  turn_cxt is the current
 * context during each turn of the worker's loop and is emptied at the start
 * of the next; batch_write_cxt is the current one while one batch is
 * written, emptied after it.  What outlives them: batch_cxt holds the
 * batches (cur and the retry queue) and recbuf; remembered_cxt the
 * messages remembered so that a lasting condition is logged once.
 */
static MemoryContext turn_cxt;
static MemoryContext batch_write_cxt;
static MemoryContext batch_cxt;
static MemoryContext remembered_cxt;
static ClBatch *cur;			/* the batch being filled */
static ClBatch *retryq[MAX_RETRY_QUEUE];	/* failed batches, oldest first */
static int	nretry;
static char *recbuf;			/* one record copied out of the ring */

/*
 * The ring (see ring.c): this worker reads from read_pos (event read_seq)
 * on; released_pos is the tail it last set; the events below taken_before
 * had been read by a predecessor when this worker started.
 */
static uint64 read_pos;
static uint64 read_seq;
static uint64 released_pos;
static uint64 taken_before;

/* ClEntry.outcome */
#define OUTCOME_PENDING		0
#define OUTCOME_WRITTEN		1
#define OUTCOME_REJECTED	2
#define OUTCOME_DROPPED		3
#define NUM_OUTCOMES		4

/* The worker's state: see "States" in the file header */
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
static char *purge_error_logged;

static volatile sig_atomic_t shutting_down;
static TimestampTz shutdown_deadline;

static uint32 wait_event_main;

/* Can the worker write?  Only check_target() makes it able to again. */
static inline bool
can_write(void)
{
	return state == WS_WRITING || state == WS_PURGING;
}

static void found_missing(void);
static void note_denied(const char *error);
static bool wait_until_writable(void);

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
 * end the worker and the batches in its memory.
 */
static void
cancel_running_statement(void)
{
	if (connlog_in_statement)
	{
		QueryCancelPending = true;
		InterruptPending = true;
	}
}

static void
handle_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	ShutdownRequestPending = true;
	if (!shutting_down)
		cancel_running_statement();
	SetLatch(MyLatch);
	errno = save_errno;
}

static void
handle_sigint(SIGNAL_ARGS)
{
	int			save_errno = errno;

	cancel_running_statement();
	SetLatch(MyLatch);
	errno = save_errno;
}

static ConnlogCounters *
counters(void)
{
	return &connlog_shared->counters;
}

/*
 * The batches this worker holds, for the loops that look at all of them:
 * cur, then the retry queue, oldest first.  NULL past the last.
 */
static ClBatch *
held_batch(int i)
{
	if (i == 0)
		return cur;
	return i <= nretry ? retryq[i - 1] : NULL;
}

static ClBatch *
new_batch(void)
{
	MemoryContext old = MemoryContextSwitchTo(batch_cxt);
	ClBatch    *b = cl_batch_create(connlog_batch_size);

	MemoryContextSwitchTo(old);
	cl_batch_reset(b, read_seq);
	b->pos_start = b->pos_end = read_pos;
	return b;
}

/* Empty cur for reuse, or replace it if batch_size changed on reload. */
static void
reset_current(void)
{
	if (cur->capacity != connlog_batch_size)
	{
		cl_batch_free(cur);
		cur = new_batch();
	}
	else
	{
		cl_batch_reset(cur, read_seq);
		cur->pos_start = cur->pos_end = read_pos;
	}
}

/* Entries [start, start + n) of b that have none get outcome. */
static void
set_outcome(ClBatch *b, int start, int n, uint8 outcome)
{
	for (int i = start; i < start + n; i++)
		if (b->entries[i].outcome == OUTCOME_PENDING)
			b->entries[i].outcome = outcome;
}

/*
 * Every entry of b has its outcome: count the outcomes of all its events
 * at once, and flag its events in the ring if an older batch is still
 * held (if none is, tail passes them as soon as b is gone; see ring.c).
 * The caller then lets go of b and calls release_ring().  Counting only
 * here is what counts each event once: a batch whose worker exits half
 * way through is counted by the successor that writes it again.
 */
static void
batch_accounted(const ClBatch *b)
{
	uint64		n[NUM_OUTCOMES] = {0};
	uint64		events = 0;

	/* events read back from WAL count as enqueued once, here, too */
	if (b->replayed)
	{
		connlog_count(&counters()->enqueued, b->nevents + b->ndropped);
		connlog_count(&counters()->wal_enqueued, b->nwal);
	}
	for (int i = 0; i < b->nentries; i++)
	{
		Assert(b->entries[i].outcome != OUTCOME_PENDING);
		n[b->entries[i].outcome]++;
		events += b->entries[i].nevents;
	}
	connlog_count(&counters()->written, n[OUTCOME_WRITTEN]);
	connlog_count(&counters()->rejected, n[OUTCOME_REJECTED]);
	connlog_count(&counters()->dropped, n[OUTCOME_DROPPED] + b->ndropped);
	connlog_count(&counters()->merged, events - b->nentries);
	connlog_count(&counters()->wal_accounted, b->nwal);
	if (b->pos_start != released_pos)
		connlog_ring_mark_done(b->pos_start, b->pos_end);
}

/*
 * Entries [start, start + n) of b that have none get outcome; once no
 * entry of b is left without one, b is accounted for.
 */
static void
settle(ClBatch *b, int start, int n, uint8 outcome)
{
	set_outcome(b, start, n, outcome);
	for (int i = 0; i < b->nentries; i++)
		if (b->entries[i].outcome == OUTCOME_PENDING)
			return;
	batch_accounted(b);
}

/*
 * Move the ring's tail up to the oldest event a batch still holds, and
 * say whether a batch holds events read back from WAL (for
 * connlog_stats.lag, see ring.c).
 */
static void
release_ring(void)
{
	uint64		pos = read_pos;
	uint64		seq = read_seq;
	bool		replayed = false;
	const ClBatch *b;

	for (int i = 0; (b = held_batch(i)) != NULL; i++)
	{
		if (b->pos_end > b->pos_start && b->pos_start < pos)
		{
			pos = b->pos_start;
			seq = b->seq_start;
		}
		if (b->replayed)
			replayed = true;
	}
	connlog_ring_set_replayed(replayed);
	if (pos != released_pos)
	{
		connlog_ring_release(pos, seq);
		released_pos = pos;
	}
}

/*
 * What the batches held hold of WAL-backed events, those of exclude (a
 * batch being written whole) left out, for the durability progress.
 */
static void
held_events(const ClBatch *exclude, ConnlogHeld *h)
{
	const ClBatch *b;

	h->next_seq = h->oldest_seq = read_seq;
	h->oldest_floor = PG_UINT64_MAX;
	h->replayed = false;
	h->nreplayed = 0;
	for (int i = 0; (b = held_batch(i)) != NULL; i++)
	{
		if (b->replayed)
			h->nreplayed += b->nwal;
		if (b == exclude || b->nwal == 0)
			continue;
		h->oldest_floor = Min(h->oldest_floor, b->lsn_floor);
		if (b->replayed)
			h->replayed = true;
		else
			h->oldest_seq = Min(h->oldest_seq, b->seq_start);
	}
}

/* for connlog_wal_replay_at_start() */
static void
held_now(ConnlogHeld *h)
{
	held_events(NULL, h);
}

/* The progress a write should store with it, in *p; NULL for none. */
static ConnlogProgress *
next_progress(const ClBatch *exclude, ConnlogProgress *p)
{
	ConnlogHeld h;

	held_events(exclude, &h);
	return connlog_wal_next_progress(&h, p);
}

/* what follows a failed write of rows, for report_failure() */
typedef enum FailureNext
{
	NEXT_LATER,					/* a transient error: retried as long as it
								 * takes */
	NEXT_RETRY,					/* the batch is retried (attempt: the retry
								 * that failed, 0 for the first write) */
	NEXT_SPLIT					/* the rows that fail alone are rejected */
} FailureNext;

static void
report_failure(const char *error, int nrows, FailureNext next, int attempt)
{
	connlog_count(&counters()->write_errors, 1);
	connlog_ring_note_flush(error);
	ereport(WARNING,
			(errmsg("connlog could not write %d connection log rows: %s",
					nrows, error),
			 next == NEXT_LATER ?
			 errdetail("The error may be temporary: what is not written yet will be retried.") :
			 next == NEXT_SPLIT ?
			 errdetail("The rows that fail on their own go to connection_logs_rejected.") :
			 attempt > 0 ?
			 errdetail("Retry %d of %d.", attempt, connlog_max_retries) :
			 errdetail("The batch will be retried.")));
}

/*
 * During shutdown, true while time is left; it also bounds the next
 * statement by what is left.
 */
static bool
shutdown_budget(void)
{
	long		left_ms;

	if (!shutting_down)
		return true;
	/* rounded up, so that a statement it cancels ends past the deadline */
	left_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
											  shutdown_deadline);
	if (left_ms <= 0)
		return false;
	connlog_writer_set_timeout((int) left_ms);
	return true;
}

/* What write_entries() writes */
typedef enum WriteKind
{
	WRITE_WHOLE,				/* all of a batch, at once */
	WRITE_PART,					/* a range of a batch being split */
	WRITE_REJECT				/* one entry, into connection_logs_rejected */
} WriteKind;

/*
 * What came of write_entries().  The first three need nothing more of the
 * caller; after the others, the entries written still have no outcome,
 * and the caller decides: retry them, split them, or drop the row.
 */
typedef enum WriteResult
{
	WR_OK,						/* committed and accounted for */
	WR_MISSING,					/* the extension is missing: writing stops */
	WR_DENIED,					/* a privilege is missing: writing stops */
	WR_STOPPED,					/* not tried: the worker is out of time */
	WR_TRANSIENT,				/* an error that may be temporary (reported) */
	WR_FAILED,					/* an error of no class here (in *error) */
	WR_BAD_DATA					/* an error some row itself causes (*error) */
} WriteResult;

/*
 * The one path by which the worker writes rows and accounts for them.
 * Write entries [start, start + n) of b, or with WRITE_REJECT store entry
 * start in connection_logs_rejected for reason, together with the
 * progress that holds once they are written.  On success the entries are
 * marked, and b is accounted for once none of its entries is left.  A
 * missing extension stops writing; a refused privilege is noted, and for
 * a part of a split, whose position lives only in the caller's stack
 * frames, waited out here (the same entries are then written again); a
 * transient error is reported, since it ends the attempt in every caller.
 */
static WriteResult
write_entries(ClBatch *b, WriteKind kind, int start, int n,
			  const char *reason, char **error)
{
	for (;;)
	{
		ConnlogProgress progbuf;
		ConnlogProgress *progress;
		ConnlogWriteStatus st;

		CHECK_FOR_INTERRUPTS();
		if (!shutdown_budget())
			return WR_STOPPED;
		/* a batch written in parts is held until every part of it is */
		progress = next_progress(kind == WRITE_WHOLE ? b : NULL, &progbuf);
		if (kind == WRITE_REJECT)
			st = connlog_write_rejected(b, start, reason, progress, error);
		else
			st = connlog_write_upsert(b, start, n, progress, error);
		switch (st)
		{
			case CL_WRITE_OK:
				connlog_wal_progress_committed(progress);
				if (kind == WRITE_REJECT)
				{
					ereport(LOG,
							(errmsg("connlog stored a connection log event in connection_logs_rejected"),
							 errdetail("The upsert failed: %s", reason)));
					settle(b, start, 1, OUTCOME_REJECTED);
				}
				else
				{
					connlog_count(&counters()->batches, 1);
					connlog_ring_note_flush(NULL);
					settle(b, start, n, OUTCOME_WRITTEN);
				}
				return WR_OK;
			case CL_WRITE_MISSING:
				found_missing();
				return WR_MISSING;
			case CL_WRITE_DENIED:
				note_denied(*error);
				if (kind == WRITE_WHOLE || !wait_until_writable())
					return WR_DENIED;
				break;			/* the same entries again */
			case CL_WRITE_TRANSIENT:
				report_failure(*error, n, NEXT_LATER, 0);
				return WR_TRANSIENT;
			case CL_WRITE_FAILED:
				return WR_FAILED;
			case CL_WRITE_BAD_DATA:
				return WR_BAD_DATA;
		}
	}
}

/*
 * Store entry i of b, a row that fails on its own, in
 * connection_logs_rejected, or drop it if even that fails.  Returns false
 * if that has to wait (see write_range()).
 */
static bool
reject_entry(ClBatch *b, int i, const char *error)
{
	char	   *err2;

	switch (write_entries(b, WRITE_REJECT, i, 1, error, &err2))
	{
		case WR_OK:
			return true;
		case WR_FAILED:
		case WR_BAD_DATA:
			ereport(WARNING,
					(errmsg("connlog dropped %llu connection log events",
							(unsigned long long) b->entries[i].nevents),
					 errdetail("The upsert failed (%s) and so did storing it in connection_logs_rejected (%s).",
							   error, err2)));
			settle(b, i, 1, OUTCOME_DROPPED);
			return true;
		default:
			return false;
	}
}

/* A web event's row: no connection_id, so it never merges (batch.c) */
static inline bool
is_web(const ClEntry *e)
{
	return (e->flags & CL_HAS_CONNECTION_ID) == 0;
}

/*
 * Put b's web events first, keeping the order within each kind.  A web
 * event whose id exists is the poison row to expect (a connection row
 * merges into its existing row instead), so a batch that meets one fails
 * before it has inserted much: the rows a failing statement inserted cost
 * index cleanup later, far more than the statement itself.  And the split
 * cuts between the two kinds first (write_range).  Only for a batch that
 * takes no more events: the merge table refers to entries by position.
 */
static void
web_events_first(ClBatch *b)
{
	ClEntry    *sorted;
	int			nweb = 0;
	int			next = 0;

	for (int i = 0; i < b->nentries; i++)
		if (is_web(&b->entries[i]))
			nweb++;
	if (nweb == 0 || nweb == b->nentries)
		return;
	sorted = palloc(sizeof(ClEntry) * b->nentries);
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < b->nentries; i++)
			if (is_web(&b->entries[i]) == (pass == 0))
				sorted[next++] = b->entries[i];
	memcpy(b->entries, sorted, sizeof(ClEntry) * b->nentries);
	pfree(sorted);
}

/*
 * Write the entries of [start, start + n) of b that have no outcome yet,
 * halving the range on each failure until a failing row stands alone, and
 * store that row in connection_logs_rejected.  failed is the error of a
 * write of exactly this range that just failed, NULL if it was not tried.
 * A row that fails is found in about 2 log2(n) statements; a web event
 * among connection rows in about 4, since a range holding both kinds is
 * cut between them (see web_events_first).
 *
 * Returns false if it stops first: at a transient error (a lock timeout
 * must not reject good rows), a missing extension, or when the worker
 * exits.  The outcomes so far stay in b's entries, and the next attempt
 * goes on from there.
 */
static bool
write_range(ClBatch *b, int start, int n, const char *failed)
{
	int			pending = 0;
	int			half = n / 2;

	for (int i = start; i < start + n; i++)
		if (b->entries[i].outcome == OUTCOME_PENDING)
			pending++;
	if (pending == 0)
		return true;
	if (failed == NULL && pending == n)
	{
		char	   *err;

		switch (write_entries(b, WRITE_PART, start, n, NULL, &err))
		{
			case WR_OK:
				return true;
			case WR_FAILED:
			case WR_BAD_DATA:
				connlog_count(&counters()->write_errors, 1);
				failed = err;
				break;
			default:
				return false;
		}
	}
	if (n == 1)
		return reject_entry(b, start, failed);
	if (is_web(&b->entries[start]) && !is_web(&b->entries[start + n - 1]))
	{
		half = 1;
		while (is_web(&b->entries[start + half]))
			half++;
	}
	return write_range(b, start, half, NULL) &&
		write_range(b, start + half, n - half, NULL);
}

/* Publish how far every event is accounted for, for connlog_flush(). */
static void
publish_done(void)
{
	uint64		done = read_seq;
	const ClBatch *b;

	/* a queued batch read back from WAL holds no ring events, but waits */
	for (int i = 0; (b = held_batch(i)) != NULL; i++)
		if (b != cur || b->seq_end > b->seq_start)
			done = Min(done, b->seq_start);
	connlog_ring_set_done(done);
}

/*
 * SIGHUP: read the configuration again.  A shorter retry_interval applies
 * to the batches already queued, too.
 */
static void
reload_config(void)
{
	TimestampTz latest;

	if (!ConfigReloadPending)
		return;
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	latest = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										 connlog_retry_interval_ms);
	for (int i = 0; i < nretry; i++)
		retryq[i]->next_attempt = Min(retryq[i]->next_attempt, latest);
}

static char *blocked_logged;	/* the reason log_blocked() logged last */

/*
 * Is message different from *last (NULL: nothing yet)?  Remembers it if
 * so, and forgets *last when message is NULL.  A condition that lasts is
 * then logged once, and again only when it changes or comes back.
 */
static bool
is_news(char **last, const char *message)
{
	if (message != NULL && *last != NULL && strcmp(*last, message) == 0)
		return false;
	if (*last != NULL)
		pfree(*last);
	*last = message != NULL ?
		MemoryContextStrdup(remembered_cxt, message) : NULL;
	return message != NULL;
}

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
	if (!is_news(&blocked_logged, error))
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
 * follows (see "States" in the file header).
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
			(void) is_news(&blocked_logged, NULL);
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
	connlog_count(&counters()->write_errors, 1);
	state = WS_NO_PRIVILEGE;
	next_check = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											 connlog_flush_interval_ms);
	log_blocked(BLOCKED_PRIVILEGE, error);
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
	return nretry >= connlog_retry_queue_size ?
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
		if (shutting_down || ShutdownRequestPending)
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

static void
retry_later(ClBatch *b)
{
	b->next_attempt = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												  connlog_retry_interval_ms);
	retryq[nretry++] = b;
}

static void
remove_retry(int i)
{
	cl_batch_free(retryq[i]);
	memmove(&retryq[i], &retryq[i + 1], sizeof(ClBatch *) * (nretry - i - 1));
	nretry--;
}

/*
 * Write b: cur, or a batch from the retry queue when retry.  A failure
 * that is the rows' fault (CL_WRITE_BAD_DATA) splits b at once; other
 * failures are retried max_retries times first (not at all during
 * shutdown).  Returns true once every event of b is accounted for, false
 * if b must wait for a retry.
 */
static bool
write_batch_internal(ClBatch *b, bool retry)
{
	char	   *error;
	WriteResult r;

	if (b->nentries == 0)
	{
		batch_accounted(b);
		return true;
	}
	if (!shutdown_budget())
		return false;
	if (b->splitting)
	{
		/* a transient error stopped its split: go on from there */
		connlog_count(&counters()->retries, 1);
		return write_range(b, 0, b->nentries, NULL);
	}
	if (!retry)
		web_events_first(b);
	r = write_entries(b, WRITE_WHOLE, 0, b->nentries, NULL, &error);
	/* not the batch's fault: it keeps its place and its retries */
	if (r == WR_MISSING || r == WR_DENIED || r == WR_STOPPED)
		return false;
	if (retry)
		connlog_count(&counters()->retries, 1);
	if (r == WR_OK)
		return true;
	if (retry)
		b->attempts++;
	if (retry)
		b->attempts++;

	/*
	 * A transient error (a lock or statement timeout, a serialization
	 * failure) is never the rows' fault: the batch is retried however often
	 * it takes, and never split, since a split would reject good rows for it.
	 * Exiting, the worker leaves the batch in the ring for its successor.
	 */
	if (r == WR_TRANSIENT)
		return false;
	if (r != WR_BAD_DATA && !shutting_down &&
		b->attempts < connlog_max_retries)
	{
		report_failure(error, b->nentries, NEXT_RETRY,
					   retry ? b->attempts : 0);
		return false;
	}
	report_failure(error, b->nentries, NEXT_SPLIT, 0);
	if (!write_range(b, 0, b->nentries, error))
	{
		b->splitting = true;
		return false;
	}
	return true;
}

/*
 * write_batch_internal() in batch_write_cxt, emptied after it: what one
 * batch's write leaves behind (its errors, a split's) is gone before the
 * next batch.
 */
static bool
write_batch(ClBatch *b, bool retry)
{
	MemoryContext old = MemoryContextSwitchTo(batch_write_cxt);
	bool		done = write_batch_internal(b, retry);

	MemoryContextSwitchTo(old);
	MemoryContextReset(batch_write_cxt);
	return done;
}

/* Write cur; if it has to wait, move it to the retry queue. */
static void
write_current(void)
{
	if (write_batch(cur, false))
		reset_current();
	else
	{
		retry_later(cur);
		cur = new_batch();
	}
	release_ring();
}

/* Retry the queued batches that are due. */
static void
run_retries(TimestampTz now)
{
	int			i = 0;

	while (i < nretry && can_write())
	{
		ClBatch    *b = retryq[i];

		if (b->next_attempt > now && !shutting_down)
		{
			i++;
			continue;
		}
		if (write_batch(b, true))
		{
			remove_retry(i);
			release_ring();
			continue;
		}
		if (!can_write())
		{
			b->next_attempt = now;
			break;
		}
		b->next_attempt = TimestampTzPlusMilliseconds(now,
												  connlog_retry_interval_ms);
		i++;
	}
}

/*
 * Read events from the ring into cur until it is full or the ring is
 * empty, skipping those already accounted for (see ring.c).  Returns true
 * if cur should be written now: it is full, or the events this worker
 * holds fill more than half of the ring, which producers wait on.
 */
static bool
fill_current(void)
{
	uint64		tail,
				tail_seq,
				head_seq;
	XLogRecPtr	insert_lsn;
	uint64		head = connlog_ring_snapshot(&tail, &tail_seq, &head_seq,
											 &insert_lsn);
	uint64		pos = read_pos;
	uint64		seq = read_seq;

	if (cur->seq_end == cur->seq_start)
	{
		cur->seq_start = cur->seq_end = seq;
		cur->pos_start = cur->pos_end = pos;
	}
	while (pos < head && !cl_batch_full(cur))
	{
		uint32		word;
		uint32		len;
		bool		walrec;
		uint32		size;

		connlog_ring_read(pos, (char *) &word, sizeof(word));
		walrec = (word & CL_RING_WAL_FLAG) != 0;
		len = word & CL_RING_LEN_MASK;
		size = cl_ring_entry_size(word);
		if (len < CL_RECORD_FIXED_SIZE || len > CL_MAX_RECORD ||
			size > head - pos)
		{
			/* only corrupt shared memory can get here: give up on it all */
			ereport(WARNING,
					(errmsg("connlog ring is corrupt; discarding %llu events",
							(unsigned long long) (head_seq - seq))));
			connlog_count(&counters()->dropped, head_seq - seq);
			pos = head;
			seq = head_seq;
			break;
		}
		if (walrec)
		{
			XLogRecPtr	floor;

			connlog_ring_read(pos + len + CL_RING_TIME_SIZE, (char *) &floor,
							  sizeof(floor));
			if (!(word & CL_RING_DONE_FLAG))
			{
				if (cur->nwal == 0)
					cur->lsn_floor = floor;
				cur->nwal++;
			}

			/*
			 * floors never decrease in ring order: the rest start here or
			 * later
			 */
			connlog_wal_consumed(floor);
		}
		if (!(word & CL_RING_DONE_FLAG))
		{
			connlog_ring_read(pos, recbuf, len);
			/* the record as batch.c knows it, without the ring's flags */
			memcpy(recbuf, &len, sizeof(len));
			/* a predecessor may have written it: see the file header */
			if (seq < taken_before)
				cur->rewrite = true;
			if (!cl_batch_add(cur, recbuf, len))
			{
				ereport(WARNING,
					 (errmsg("connlog discarded a malformed event record")));
				cur->ndropped++;
			}
			else if (connlog_log_events)
			{
				ClEvent		ev;

				(void) cl_decode(recbuf, len, &ev);
				connlog_log_event(&ev);
			}
		}
		pos += size;
		seq++;
	}
	/* all of the ring as of the snapshot is consumed: see wal.c */
	if (pos == head && connlog_wal_tracking())
		connlog_wal_consumed(insert_lsn);
	cur->seq_end = seq;
	cur->pos_end = pos;
	read_pos = pos;
	read_seq = seq;
	if (seq > taken_before)
		pg_atomic_write_u64(&connlog_shared->taken_seq, seq);
	return cl_batch_full(cur) ||
		(cur->nentries > 0 && (read_pos - released_pos) * 2 > connlog_shared->size);
}

/* Drain the ring into batches and write the full ones. */
static void
drain(void)
{
	while (nretry < connlog_retry_queue_size && can_write())
	{
		CHECK_FOR_INTERRUPTS();
		if (!fill_current())
			break;
		write_current();
		if (ShutdownRequestPending && !shutting_down)
			break;
	}
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
	const ClBatch *b;

	for (int i = 0; (b = held_batch(i)) != NULL; i++)
		if (b != cur)
			wake = Min(wake, b->next_attempt);
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

/* Write cur now, if the retry queue has room for it should it fail. */
static void
flush_current(void)
{
	if (can_write() && nretry < connlog_retry_queue_size)
		write_current();
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
	st = connlog_write_purge(now - (TimestampTz) connlog_retention_s * USECS_PER_SEC,
							 connlog_purge_batch_size, &deleted, &error);
	if (st == CL_WRITE_OK)
	{
		connlog_count(&counters()->purged, deleted);
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
		(void) is_news(&purge_error_logged, NULL);
	}
	else if (st == CL_WRITE_MISSING)
		found_missing();
	else
	{
		/* events are not affected: report it once, try again later */
		elog(DEBUG1, "connlog purge step failed: %s", error);
		connlog_ring_note_flush(error);
		if (is_news(&purge_error_logged, error))
			ereport(WARNING,
					(errmsg("connlog could not delete rows past connlog.retention: %s",
							error),
					 errdetail("Events are still written; connlog tries again every connlog.purge_interval."),
					 st == CL_WRITE_DENIED ?
					 errhint("Grant DELETE on connection_logs, or on the table connlog.table names, to the role connlog writes as.") : 0));
	}
	/* the run is over; one cut short by a missing extension goes on */
	purge_run_rows = 0;
	if (state == WS_PURGING)
		state = WS_WRITING;
	next_purge = TimestampTzPlusMilliseconds(now, connlog_purge_interval_ms);
}

/* Why the worker exits with events not written, for shutdown_drain() */
static int
errdetail_unwritten(void)
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
	if (GetCurrentTimestamp() >= shutdown_deadline)
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
	ConnlogHeld held;
	ConnlogStats st;

	shutting_down = true;
	connlog_ring_set_state(CL_STATE_EXITING);
	shutdown_deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												connlog_shutdown_timeout_ms);
	pgstat_report_activity(STATE_RUNNING, "connlog: writing all events before exit");

	if (!can_write())
		check_target();
	(void) connlog_ring_snapshot(&tail, &tail_seq, &target, NULL);
	if (can_write())
	{
		run_retries(GetCurrentTimestamp());
		while (can_write() && read_seq < target &&
			   nretry < connlog_retry_queue_size && shutdown_budget())
		{
			fill_current();
			write_current();
		}
		if (nretry < connlog_retry_queue_size)
			write_current();
	}
	publish_done();
	held_events(NULL, &held);
	connlog_wal_store_exit_progress(&held);

	(void) connlog_ring_snapshot(&tail, &tail_seq, &head_seq, NULL);
	if (tail_seq < target)
		ereport(WARNING,
			(errmsg("connlog worker is exiting with %llu events not written",
					(unsigned long long) (head_seq - tail_seq)),
			 errdetail_unwritten(),
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

/*
 * Feed events read back from WAL into batches, writing each batch that
 * fills.  They count as enqueued (and WAL-backed) like new events, once
 * their batch is accounted for: a worker that exits before then reads
 * them back again.
 */
static void
feed_replayed(const char *data, size_t nbytes, XLogRecPtr floor)
{
	size_t		off = 0;

	while (off + sizeof(uint32) <= nbytes)
	{
		uint32		len = cl_record_length(data + off);

		if (len < sizeof(uint32) || off + len > nbytes)
			break;				/* wal.c checked the sizes: cannot happen */
		if (cur->nwal == 0)
			cur->lsn_floor = floor;
		cur->nwal++;
		if (!cur->replayed)
			connlog_ring_set_replayed(true);
		cur->replayed = true;
		cur->rewrite = true;
		if (!cl_batch_add(cur, data + off, len))
		{
			ereport(WARNING,
					(errmsg("connlog discarded a malformed event record read from WAL")));
			cur->ndropped++;
		}
		off += len;
		if (cl_batch_full(cur))
			write_current();
	}
	write_current();
}

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

	if (connlog_wal_replay_pending())
	{
		if (!connlog_wal_replay_at_start(feed_replayed, held_now))
			found_missing();
		else
		{
			/*
			 * a predecessor's replayed events are written, read again, or
			 * lost
			 */
			release_ring();
		}
	}
	if (!can_write() || !connlog_wal_slot_requested())
		return;
	switch (connlog_wal_ensure_slot(read_seq, &error))
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

void
connlog_worker_main(Datum main_arg)
{
	TimestampTz last_flush;		/* start of the current flush interval */
	ConnlogConnectWait how;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, handle_sigterm);
	pqsignal(SIGINT, handle_sigint);
	BackgroundWorkerUnblockSignals();

	turn_cxt = AllocSetContextCreate(TopMemoryContext, "connlog worker turn",
									 ALLOCSET_DEFAULT_SIZES);
	batch_write_cxt = AllocSetContextCreate(TopMemoryContext,
											"connlog batch write",
											ALLOCSET_DEFAULT_SIZES);
	batch_cxt = AllocSetContextCreate(TopMemoryContext, "connlog batches",
									  ALLOCSET_DEFAULT_SIZES);
	remembered_cxt = AllocSetContextCreate(TopMemoryContext,
										   "connlog remembered messages",
										   ALLOCSET_SMALL_SIZES);

	connlog_ring_attach_worker();
	how.who = CL_CONNECTOR_WORKER;
	how.name = "connlog worker";
	how.wait_event = CONNLOG_WAIT_EVENT(wait_event_main, "ConnlogMain");
	how.turn = connect_wait_turn;
	how.publish = connect_wait_publish;
	connlog_connect(&how);
	connlog_writer_init_session();

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

	recbuf = MemoryContextAlloc(batch_cxt, CL_MAX_RECORD);
	taken_before = connlog_ring_resume(&read_pos, &read_seq);
	released_pos = read_pos;
	cur = new_batch();

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
		flush_asked = pg_atomic_exchange_u32(&connlog_shared->flush_requested, 0) != 0;
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
			run_retries(now);
			drain();
			if (flush_due)
				flush_current();
			purge_step(now);
		}

		/* connlog_flush() waits for no replay while none can run */
		if (!can_write())
			pg_atomic_write_u32(&connlog_shared->replaying, 0);
		publish_done();

		/* Sleep until the next deadline. */
		wake = next_wakeup(now, last_flush);
		connlog_ring_set_state(published_state());
		pgstat_report_activity(STATE_IDLE, NULL);
		sleep_ms(TimestampDifferenceMilliseconds(GetCurrentTimestamp(), wake));
	}

	shutdown_drain();
	proc_exit(1);
}
