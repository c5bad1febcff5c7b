/*-------------------------------------------------------------------------
 *
 * flush.c
 *		The connlog worker's batches: take events from the ring into them,
 *		write them, retry, split and reject, and account for every event.
 *
 * The worker's process (worker.c: its loop, signals, states, shutdown)
 * calls in here to move events from the ring to the table; this file
 * holds what the worker has taken from the ring until it is written:
 *
 *	- events are taken from the ring into the current batch, cur (merging
 *	  as batch.c says).  cur is written when it holds batch_size rows, when
 *	  the events this worker holds fill more than half of the ring, which
 *	  producers wait on, and when the loop flushes it (flush_interval,
 *	  connlog_flush()).  Failed batches wait in a bounded retry queue, and
 *	  the ring is not drained while that queue is full, so back-pressure
 *	  reaches the producers (connlog.overflow) instead of losing batches.
 *	- a batch that fails for its rows' fault (a data exception, an
 *	  integrity violation or a program limit, see writer.c) is split in
 *	  halves at once until each failing row stands alone; other failures,
 *	  transient ones included, are retried first, max_retries times.  A
 *	  row that fails alone goes to connection_logs_rejected, and only if
 *	  even that fails is it dropped.  But unless its error is its own by
 *	  nature, it goes there only once the table has taken other rows
 *	  (may_reject_alone): an error that every row gets is the table's or
 *	  the server's, and a batch none of whose rows is taken is held in the
 *	  retry queue, rejecting nothing (write_split).  The owner of
 *	  connlog.target_table chooses what its policies and triggers raise, so a
 *	  SQLSTATE it raises for some rows (42501, a transient one) costs those
 *	  rows, never the others.  A transient error in the middle of a split,
 *	  while the batch has retries left, rejects nothing: the batch goes
 *	  back to the retry queue, and its next attempt goes on with the rows
 *	  that have no outcome yet.  A node of a Citus cluster that failed or
 *	  refused the statement (writer.c, citus.c) is no one's fault either,
 *	  and its rows are the ones a split would find failing alone once the
 *	  other nodes' rows are written: such a batch is neither split nor
 *	  charged a retry, and waits in the retry queue until the node takes it.
 *	- a row that fails alone with a transient error is not rejected for it
 *	  at once, even once its batch has used its retries (retry_alone): a
 *	  deadlock (40P01) or a serialization failure (40001) the server
 *	  raised says nothing about the row, only about what ran beside it (an
 *	  application's own batch upsert that takes the same rows in another
 *	  order, say), and the next attempt usually succeeds.  But a trigger
 *	  can raise the same SQLSTATEs, and nothing tells its RAISE from the
 *	  server's; so the row alone is retried max_retries times, and only if
 *	  it failed every time, alone, is it rejected, as any row that fails
 *	  alone (may_reject_alone, whose evidence is then that of its first
 *	  failure alone: its batch may have nothing else left to write).  A
 *	  row the table refuses for ever with a transient SQLSTATE thus costs
 *	  its batch max_retries more attempts, and a server's deadlock needs
 *	  to hit the same row max_retries + 1 times, each time written alone,
 *	  to cost it.
 *	- every write goes through one path, write_entries(), which stores the
 *	  durability progress with the rows and, once they are committed,
 *	  records their outcome; its callers only decide what to do with what
 *	  came of it (retry, split, reject, drop, wait).
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
 * connlog.durability (wal.c): events read back from WAL are fed into
 * batches here (feed_replayed) and written like any others; every write
 * stores the progress wal.c computes from what the batches hold
 * (held_events).
 *
 * The interface with worker.c (flush.h).  What worker.c's loop asks of
 * this side: once connected, connlog_flush_init(); while the worker can
 * write, to replay, retry, drain and flush; each turn, to publish how far
 * events are accounted for, and when the next retry is due and whether
 * the retry queue is full (for its sleep and its published state); after
 * a reload, connlog_flush_reloaded(); on SIGTERM,
 * connlog_flush_before_exit(), which writes what it can by the deadline.
 * What this side reports back, through the ConnlogFlushHooks it was given:
 * a write that found the extension missing (found_missing) or was refused
 * for a privilege (denied), which change the worker's state, and a batch
 * held for an error every row gets (held), which does not; it asks that
 * state (can_write) before each batch, and waits it out
 * (wait_until_writable) where only the stack remembers a split's place.
 * Who owns what: this file, the batches (cur and the retry queue), the
 * worker's place in the ring and the tail it released, the counting of
 * every event's outcome, and, once the worker exits, the deadline of its
 * writes; worker.c, whether the worker can write, when it looks again,
 * the turn's memory, and the messages logged once.
 *
 * Memory (see "Memory" in worker.c).  A turn may write many batches (a
 * drain of a full ring, a replay, the drain at shutdown), so each batch's
 * write runs in a context of its own, batch_write_cxt, emptied after it,
 * and a log_events line in one emptied after the line (writer.c): what a
 * turn holds is bounded by one batch, not by how much it writes.  The
 * batches themselves outlive the turns, in batch_cxt.
 *
 * IDENTIFICATION
 *	  src/flush.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlogdefs.h"
#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "batch.h"
#include "connlog.h"
#include "flush.h"
#include "guard.h"
#include "ring.h"
#include "progress.h"
#include "writer.h"
#define MAX_RETRY_QUEUE		1000	/* connlog.retry_queue_size's maximum */

/*
 * batch_write_cxt is the current context while one batch is written,
 * emptied after it; batch_cxt holds the batches (cur and the retry queue)
 * and recbuf.
 */
static MemoryContext batch_write_cxt;
static MemoryContext batch_cxt;
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

/* what this side asks of the worker's process (see flush.h) */
static const ConnlogFlushHooks *worker;

/* Once the worker exits, its writes end at exit_deadline. */
static bool exiting;
static TimestampTz exit_deadline;

/*
 * Evidence that the target takes rows (see may_reject_alone): upserts this
 * worker committed, compared with a batch's written_mark.
 */
static uint64 upserts_committed;

/*
 * The split under way (write_split): the error of a row that failed alone
 * without that evidence and was left pending, NULL if none was; and
 * whether a batch is held for such rows, reported to the worker.
 */
static const char *split_held;
static bool holding;
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
	NEXT_LATER,					/* a transient error: retried, max_retries
								 * times before a split */
	NEXT_RETRY,					/* the batch is retried (attempt: the retry
								 * that failed, 0 for the first write) */
	NEXT_SPLIT,					/* the rows that fail alone may be rejected */
	NEXT_NODE					/* a node failed: retried without limit */
} FailureNext;

/* Say that a write of nrows rows failed with error, and what follows */
static void
log_failure(const char *error, int nrows, FailureNext next, int attempt)
{
	connlog_ring_note_flush(error);
	ereport(WARNING,
			(errmsg("connlog could not write %d connection log rows: %s",
					nrows, error),
			 next == NEXT_LATER ?
			 errdetail("The error may be temporary: what is not written yet will be retried.") :
			 next == NEXT_SPLIT ?
			 errdetail("The batch is split: a row that fails on its own goes to connection_logs_rejected once the table has taken other rows.") :
			 next == NEXT_NODE ?
			 errdetail("A node of the Citus cluster failed or refused the statement, not its rows: connlog retries every connlog.retry_interval until the node takes them, and rejects none.") :
			 attempt > 0 ?
			 errdetail("Retry %d of %d.", attempt, connlog_max_retries) :
			 errdetail("The batch will be retried.")));
}

/* Count a failed write, and log_failure() */
static void
report_failure(const char *error, int nrows, FailureNext next, int attempt)
{
	connlog_count(&counters()->write_errors, 1);
	log_failure(error, nrows, next, attempt);
}

/*
 * During shutdown, true while time is left; it also bounds the next
 * statement by what is left.
 */
static bool
shutdown_budget(void)
{
	long		left_ms;

	if (!exiting)
		return true;
	/* rounded up, so that a statement it cancels ends past the deadline */
	left_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
											  exit_deadline);
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
	WR_UNREACHABLE,				/* a node of a Citus cluster failed (in
								 * *error) */
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
 * frames, waited out here (the same entries are then written again).
 * Each committed upsert is evidence that the target takes rows
 * (upserts_committed).
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
					upserts_committed++;
					if (holding)
					{
						worker->held(NULL);
						holding = false;
					}
					connlog_count(&counters()->batches, 1);
					connlog_ring_note_flush(NULL);
					settle(b, start, n, OUTCOME_WRITTEN);
				}
				return WR_OK;
			case CL_WRITE_MISSING:
				worker->found_missing();
				return WR_MISSING;
			case CL_WRITE_DENIED:
				connlog_count(&counters()->write_errors, 1);
				worker->denied(*error);
				if (kind == WRITE_WHOLE || !worker->wait_until_writable())
					return WR_DENIED;
				break;			/* the same entries again */
			case CL_WRITE_TRANSIENT:
				return WR_TRANSIENT;
			case CL_WRITE_UNREACHABLE:
				return WR_UNREACHABLE;
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
		case WR_TRANSIENT:
		case WR_UNREACHABLE:
			report_failure(err2, 1, NEXT_LATER, 0);
			return false;
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
 * Has b used up the retries a transient error gets?  Then it is split, and
 * in the split a transient error is a failure like any other, but for a
 * row alone, which is retried a bounded number of times (retry_alone): a
 * trigger can raise any SQLSTATE, and one that raised 40001 for one row
 * would otherwise hold its batch for ever.  Exiting, the worker leaves
 * such a batch in the ring for its successor instead.
 */
static bool
transient_spent(const ClBatch *b)
{
	return !exiting && b->attempts >= connlog_max_retries;
}

/*
 * Row i of b failed alone with a transient error, its batch's retries
 * spent: should it be retried rather than rejected?  Yes, max_retries
 * times (see the file header); each call counts one.
 */
static bool
retry_alone(ClBatch *b, int i)
{
	ClEntry    *e = &b->entries[i];

	if (e->transient_alone >= connlog_max_retries)
		return false;
	e->transient_alone++;
	return true;
}

/*
 * The rule for a row of b that failed on its own with why (a WriteResult):
 * may it go to connection_logs_rejected?  An error that is the row's own
 * by nature (a data exception, an integrity violation, a program limit:
 * WR_BAD_DATA) says so by itself.  Any other (a policy's 42501, a
 * trigger's error, a transient SQLSTATE past its retries, a row the table
 * stored nothing for) may be one every row gets, a fault of the table or
 * the server rather than of the row, and then rejecting the rows one by
 * one would empty the ring into connection_logs_rejected.  So such a row
 * is rejected only with evidence that the target takes other rows: an
 * upsert committed since b's attempt began, or since its last attempt
 * ended (rows of b written in this attempt, or another batch written in
 * between).  Without it the row is held (write_split).
 */
static bool
may_reject_alone(const ClBatch *b, WriteResult why)
{
	return why == WR_BAD_DATA || upserts_committed > b->written_mark;
}

/*
 * Write the entries of [start, start + n) of b that have no outcome yet,
 * halving the range on each failure until a failing row stands alone, and
 * store that row in connection_logs_rejected if may_reject_alone() allows;
 * if not, leave it pending (split_held).  failed is the error of a write
 * of exactly this range that just failed (why: its class), NULL if it was
 * not tried.  A row that fails is found in about 2 log2(n) statements; a
 * web event among connection rows in about 4, since a range holding both
 * kinds is cut between them (see web_events_first).
 *
 * Once a row is left pending, nothing having been written, a range that
 * fails is left too instead of being halved: the ranges tried next (the
 * other halves on the way back up) are the probe for evidence, and if
 * every row fails, as when the table or the server is at fault, the
 * attempt costs about 2 log2(n) statements, not 2n.  write_split() goes
 * over what was left once there is evidence.
 *
 * Returns false if it stops first: at a transient error while b has
 * retries left (a lock timeout must not reject good rows), a failed node
 * of a Citus cluster, a missing extension, or when the worker exits.  The outcomes so far stay in b's
 * entries, and the next attempt goes on from there.
 */
static bool finish_split(ClBatch *b, int start, int n);
static void hold_batch(const char *why);

static bool
write_range(ClBatch *b, int start, int n, const char *failed,
			WriteResult why)
{
	int			pending = 0;
	int			half = n / 2;
	bool		wrote = false;

	for (int i = start; i < start + n; i++)
		if (b->entries[i].outcome == OUTCOME_PENDING)
			pending++;
	if (pending == 0)
		return true;
	if (failed == NULL && pending == n)
	{
		char	   *err;

		wrote = true;
		why = write_entries(b, WRITE_PART, start, n, NULL, &err);
		switch (why)
		{
			case WR_OK:
				return true;
			case WR_UNREACHABLE:
				report_failure(err, n, NEXT_NODE, 0);
				return false;
			case WR_TRANSIENT:
				if (!transient_spent(b))
				{
					report_failure(err, n, NEXT_LATER, 0);
					return false;
				}
				/* FALLTHROUGH */
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
	{
		/*
		 * A row retried alone (retry_alone) had its evidence when it first
		 * failed alone: the table took other rows then, and its batch may
		 * have none left to write beside it now.
		 */
		if (!may_reject_alone(b, why) &&
			!(why == WR_TRANSIENT && b->entries[start].transient_alone > 0))
		{
			split_held = failed;
			return true;
		}
		if (why == WR_TRANSIENT && retry_alone(b, start))
		{
			/* counted above, or (logged too) by the caller */
			if (wrote)
				log_failure(failed, 1, NEXT_LATER, 0);
			return false;
		}
		return reject_entry(b, start, failed);
	}
	if (split_held != NULL && !may_reject_alone(b, why))
		return true;
	if (is_web(&b->entries[start]) && !is_web(&b->entries[start + n - 1]))
	{
		half = 1;
		while (is_web(&b->entries[start + half]))
			half++;
	}
	return write_range(b, start, half, NULL, WR_FAILED) &&
		write_range(b, start + half, n - half, NULL, WR_FAILED);
}

/*
 * Split b: write_range() over all of it (failed, why: its whole write's
 * failure, NULL if this attempt did not try it), then finish_split().
 */
static bool
write_split(ClBatch *b, const char *failed, WriteResult why)
{
	split_held = NULL;
	b->splitting = true;
	if (!write_range(b, 0, b->nentries, failed, why))
		return false;
	return finish_split(b, 0, b->nentries);
}

/*
 * After write_range() went over [start, start + n) of b: once there is
 * evidence, go over what it left pending for the lack of it again.  If
 * rows are still left, no row having been written, every row failed alone
 * or with others: that is the fault of the table or the server, not of
 * the rows, so nothing is rejected: b is held, retried every
 * retry_interval, and the worker is told why (connlog_stats.last_error,
 * and the server log once).  Returns true once every entry of the range
 * has its outcome.
 */
static bool
finish_split(ClBatch *b, int start, int n)
{
	if (split_held != NULL && may_reject_alone(b, WR_FAILED))
	{
		split_held = NULL;
		if (!write_range(b, start, n, NULL, WR_FAILED))
			return false;
	}
	if (split_held != NULL)
	{
		hold_batch(split_held);
		return false;
	}
	return true;
}

/* Hold the batch being written for why, an error every row gets */
static void
hold_batch(const char *why)
{
	holding = true;
	worker->held(why);
}

/* Publish how far every event is accounted for, for connlog_flush(). */
void
connlog_flush_publish_done(void)
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
 * A predecessor exited inside a statement that wrote rows (a FATAL the
 * table's code raised, or a cancel it ignored; guard.c).  Put b's entries
 * among those rows (the suspects) first, keeping the order within each
 * kind, as web_events_first() does; returns how many there are.  Only for
 * a batch that holds events a predecessor had read.
 */
static int
suspects_first(ClBatch *b)
{
	ClEntry    *sorted;
	bool	   *suspect;
	int			nsuspects = 0;
	int			next = 0;

	if (!b->rewrite || !connlog_guard_have_suspects())
		return 0;
	suspect = palloc(sizeof(bool) * b->nentries);
	for (int i = 0; i < b->nentries; i++)
		if ((suspect[i] = connlog_guard_is_suspect(b, i)))
			nsuspects++;
	if (nsuspects > 0 && nsuspects < b->nentries)
	{
		sorted = palloc(sizeof(ClEntry) * b->nentries);
		for (int pass = 0; pass < 2; pass++)
			for (int i = 0; i < b->nentries; i++)
				if (suspect[i] == (pass == 0))
					sorted[next++] = b->entries[i];
		memcpy(b->entries, sorted, sizeof(ClEntry) * b->nentries);
		pfree(sorted);
	}
	pfree(suspect);
	return nsuspects;
}

/*
 * Write b, whose first nsuspects entries are suspects (suspects_first()),
 * as a failing batch is split: the suspects in halves, never all at once
 * again, each narrower statement recorded for the next worker should this
 * one exit too.  A row that ended the predecessor while written alone is
 * not written again: it is rejected once the other rows are written, or
 * other batches are, which is the evidence may_reject_alone() asks for
 * (code that ends the worker for every row is the table's fault, not the
 * rows'); without it b is held.  Returns false if it stops first, as
 * write_range() does; b goes on from there at its next attempt.
 */
static bool
write_suspects(ClBatch *b, int nsuspects)
{
	char	   *error = connlog_guard_death_error();
	bool		died_alone = connlog_guard_died_alone();

	b->splitting = true;
	split_held = NULL;
	report_failure(error, nsuspects, NEXT_SPLIT, 0);
	if (!died_alone &&
	  !write_range(b, 0, nsuspects, nsuspects > 1 ? error : NULL, WR_FAILED))
		return false;
	if (!write_range(b, nsuspects, b->nentries - nsuspects, NULL, WR_FAILED) ||
		!finish_split(b, died_alone ? nsuspects : 0,
					  died_alone ? b->nentries - nsuspects : b->nentries))
		return false;
	if (!died_alone)
		return true;
	/* more than one only for a web event enqueued twice */
	for (int i = 0; i < nsuspects; i++)
	{
		if (b->entries[i].outcome != OUTCOME_PENDING)
			continue;
		if (!may_reject_alone(b, WR_FAILED))
		{
			hold_batch(error);
			return false;
		}
		if (!reject_entry(b, i, error))
			return false;
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
 * failures, transient ones included, are retried max_retries times first
 * (during shutdown a non-transient one is not retried, and a transient
 * one leaves b to the next worker).  Returns true once every event of b
 * is accounted for, false if b must wait for a retry.
 */
static bool
write_batch_internal(ClBatch *b, bool retry)
{
	char	   *error;
	WriteResult r;
	int			nsuspects;

	if (b->nentries == 0)
	{
		batch_accounted(b);
		return true;
	}
	if (!shutdown_budget())
		return false;
	if (!retry)
	{
		web_events_first(b);
		b->written_mark = upserts_committed;
	}
	/* rows that ended a predecessor are not written all at once again */
	nsuspects = suspects_first(b);
	if (nsuspects > 0)
		return write_suspects(b, nsuspects);
	if (b->splitting)
	{
		/* a split that stopped, or rows held: go on from there */
		connlog_count(&counters()->retries, 1);
		b->attempts++;
		return write_split(b, NULL, WR_FAILED);
	}
	r = write_entries(b, WRITE_WHOLE, 0, b->nentries, NULL, &error);
	/* not the batch's fault: it keeps its place and its retries */
	if (r == WR_MISSING || r == WR_DENIED || r == WR_STOPPED)
		return false;
	if (retry)
		connlog_count(&counters()->retries, 1);
	if (r == WR_OK)
		return true;

	/*
	 * A node of a Citus cluster failed: not the rows' fault, and a split
	 * would reject the rows of that node once the others' are written. The
	 * batch waits for the node, keeping its retries.
	 */
	if (r == WR_UNREACHABLE)
	{
		report_failure(error, b->nentries, NEXT_NODE, 0);
		return false;
	}
	if (retry)
		b->attempts++;

	/*
	 * A transient error (a lock or statement timeout, a serialization
	 * failure) is not the rows' fault: the batch is retried, and split only
	 * once it has used its retries, where it rejects a row only as
	 * write_range() says.
	 */
	if (r == WR_TRANSIENT && !transient_spent(b))
	{
		report_failure(error, b->nentries, NEXT_LATER, 0);
		return false;
	}
	if (r == WR_FAILED && !exiting && b->attempts < connlog_max_retries)
	{
		report_failure(error, b->nentries, NEXT_RETRY,
					   retry ? b->attempts : 0);
		return false;
	}
	report_failure(error, b->nentries, NEXT_SPLIT, 0);
	return write_split(b, error, r);
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

	/* what is written from now on is evidence for its next attempt */
	if (!done)
		b->written_mark = upserts_committed;
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
void
connlog_flush_retries(TimestampTz now)
{
	int			i = 0;

	while (i < nretry && worker->can_write())
	{
		ClBatch    *b = retryq[i];

		if (b->next_attempt > now && !exiting)
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
		if (!worker->can_write())
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
void
connlog_flush_drain(void)
{
	while (nretry < connlog_retry_queue_size && worker->can_write())
	{
		CHECK_FOR_INTERRUPTS();
		if (!fill_current())
			break;
		write_current();
		if (ShutdownRequestPending && !exiting)
			break;
	}
}

/* Write cur now, if the retry queue has room for it should it fail. */
void
connlog_flush_current(void)
{
	if (worker->can_write() && nretry < connlog_retry_queue_size)
		write_current();
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

/* for connlog_wal_replay_at_start() */
static void
held_now(ConnlogHeld *h)
{
	held_events(NULL, h);
}

/*
 * Once connected, before the loop: take over the ring from the events
 * this worker's predecessors left, and make the first batch.
 */
void
connlog_flush_init(const ConnlogFlushHooks *hooks)
{
	worker = hooks;
	batch_write_cxt = AllocSetContextCreate(TopMemoryContext,
											"connlog batch write",
											ALLOCSET_DEFAULT_SIZES);
	batch_cxt = AllocSetContextCreate(TopMemoryContext, "connlog batches",
									  ALLOCSET_DEFAULT_SIZES);
	recbuf = MemoryContextAlloc(batch_cxt, CL_MAX_RECORD);
	taken_before = connlog_ring_resume(&read_pos, &read_seq);
	released_pos = read_pos;
	cur = new_batch();
}

/*
 * After the configuration was read again: a shorter retry_interval applies
 * to the batches already queued, too.
 */
void
connlog_flush_reloaded(void)
{
	TimestampTz latest;

	latest = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										 connlog_retry_interval_ms);
	for (int i = 0; i < nretry; i++)
		retryq[i]->next_attempt = Min(retryq[i]->next_attempt, latest);
}

/*
 * Read back from WAL the WAL-backed events no committed write accounted
 * for, and write them (see wal.c).  Returns false if the extension is
 * missing.
 */
bool
connlog_flush_replay(void)
{
	if (!connlog_wal_replay_at_start(feed_replayed, held_now))
		return false;
	/* a predecessor's replayed events are written, read again, or lost */
	release_ring();
	return true;
}

/* The ring's first event this worker has not read yet */
uint64
connlog_flush_next_seq(void)
{
	return read_seq;
}

/* Is the retry queue full?  Then the ring is not drained. */
bool
connlog_flush_queue_full(void)
{
	return nretry >= connlog_retry_queue_size;
}

/* When the next queued batch is due for a retry; DT_NOEND if none is. */
TimestampTz
connlog_flush_next_retry(void)
{
	TimestampTz next = DT_NOEND;
	const ClBatch *b;

	for (int i = 0; (b = held_batch(i)) != NULL; i++)
		if (b != cur)
			next = Min(next, b->next_attempt);
	return next;
}

/*
 * SIGTERM: write every event before target, and what the retry queue
 * holds, by deadline; then publish how far events are accounted for and
 * store the progress an exiting worker leaves (wal.c).
 */
void
connlog_flush_before_exit(uint64 target, TimestampTz deadline)
{
	ConnlogHeld held;

	exiting = true;
	exit_deadline = deadline;
	if (worker->can_write())
	{
		connlog_flush_retries(GetCurrentTimestamp());
		while (worker->can_write() && read_seq < target &&
			   nretry < connlog_retry_queue_size && shutdown_budget())
		{
			fill_current();
			write_current();
		}
		if (nretry < connlog_retry_queue_size)
			write_current();
	}
	connlog_flush_publish_done();
	held_events(NULL, &held);
	connlog_wal_store_exit_progress(&held);
}
