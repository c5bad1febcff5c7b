/*-------------------------------------------------------------------------
 *
 * batchwrite.c
 *		Writing one of the worker's batches: the one path that writes rows
 *		and accounts for them, retries, splits, and rejecting poison rows.
 *
 * A batch that fails for its rows' fault is split at once until each
 * failing row stands alone; other failures are retried first.  A row that
 * fails alone goes to connection_logs_rejected only with evidence that the
 * table takes other rows, or when its error is its own by nature; without
 * it the batch is held in the retry queue and nothing is rejected.  See
 * doc/internals.md, "The batches".
 *
 * Each batch's write runs in batch_write_cxt, emptied after it, so what a
 * turn of the worker's loop holds is bounded by one batch.
 *
 * IDENTIFICATION
 *	  src/batchwrite.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "batch.h"
#include "batchwrite.h"
#include "connlog.h"
#include "guard.h"
#include "held.h"
#include "ring.h"
#include "statements.h"

/* the current context while one batch is written, emptied after it */
static MemoryContext batch_write_cxt;

/* what this side asks of the worker's process (see batches.h) */
static const ConnlogBatchesHooks *worker;

/*
 * Once the worker drains before it exits (connlog_batch_write_exit_by),
 * its writes end at exit_deadline.  exiting is read by the worker's
 * SIGTERM handler too, hence its type.
 */
static volatile sig_atomic_t exiting = false;
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
	connlog_count(&connlog_counters()->write_errors, 1);
	log_failure(error, nrows, next, attempt);
}

/*
 * While the worker drains before it exits, true while time is left; it
 * also bounds the next statement by what is left.
 */
bool
connlog_batch_write_budget(void)
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
write_entries(WorkerBatch *b, WriteKind kind, int start, int n,
			  const char *reason, char **error)
{
	for (;;)
	{
		ConnlogProgress progbuf;
		ConnlogProgress *progress;
		ConnlogWriteStatus st;

		CHECK_FOR_INTERRUPTS();
		if (!connlog_batch_write_budget())
			return WR_STOPPED;
		/* a batch written in parts is held until every part of it is */
		progress = connlog_held_progress(kind == WRITE_WHOLE ? b : NULL, &progbuf);
		connlog_ring_set_state(CL_STATE_WRITING);
		if (kind == WRITE_REJECT)
			st = connlog_write_rejected(b->batch, start, reason, progress, error);
		else
			st = connlog_write_upsert(b->batch, start, n, b->rewrite,
									  progress, error);
		switch (st)
		{
			case CL_WRITE_OK:
				connlog_wal_progress_committed(progress);
				if (kind == WRITE_REJECT)
				{
					ereport(LOG,
							(errmsg("connlog stored a connection log event in connection_logs_rejected"),
							 errdetail("The upsert failed: %s", reason)));
					connlog_held_settle(b, start, 1, OUTCOME_REJECTED);
				}
				else
				{
					upserts_committed++;
					if (holding)
					{
						worker->held(NULL);
						holding = false;
					}
					connlog_count(&connlog_counters()->batches, 1);
					connlog_ring_note_flush(NULL);
					connlog_held_settle(b, start, n, OUTCOME_WRITTEN);
				}
				return WR_OK;
			case CL_WRITE_MISSING:
				worker->found_missing();
				return WR_MISSING;
			case CL_WRITE_DENIED:
				connlog_count(&connlog_counters()->write_errors, 1);
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
reject_entry(WorkerBatch *b, int i, const char *error)
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
						  (unsigned long long) b->batch->entries[i].nevents),
					 errdetail("The upsert failed (%s) and so did storing it in connection_logs_rejected (%s).",
							   error, err2)));
			connlog_held_settle(b, i, 1, OUTCOME_DROPPED);
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
web_events_first(WorkerBatch *b)
{
	ClEntry    *sorted;
	int			nweb = 0;
	int			next = 0;

	for (int i = 0; i < b->batch->nentries; i++)
		if (is_web(&b->batch->entries[i]))
			nweb++;
	if (nweb == 0 || nweb == b->batch->nentries)
		return;
	sorted = palloc(sizeof(ClEntry) * b->batch->nentries);
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < b->batch->nentries; i++)
			if (is_web(&b->batch->entries[i]) == (pass == 0))
				sorted[next++] = b->batch->entries[i];
	memcpy(b->batch->entries, sorted, sizeof(ClEntry) * b->batch->nentries);
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
transient_spent(const WorkerBatch *b)
{
	return !exiting && b->attempts >= connlog_max_retries;
}

/*
 * Row i of b failed alone with a transient error, its batch's retries
 * spent: should it be retried rather than rejected?  Yes, max_retries
 * times (doc/internals.md, "The batches"); each call counts one.
 */
static bool
retry_alone(WorkerBatch *b, int i)
{
	ClEntry    *e = &b->batch->entries[i];

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
may_reject_alone(const WorkerBatch *b, WriteResult why)
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
 * of a Citus cluster, a missing extension, or when the worker exits.  The
 * outcomes so far stay in b's entries, and the next attempt goes on from
 * there.
 */
static bool finish_split(WorkerBatch *b, int start, int n);
static void hold_batch(const char *why);

static bool
write_range(WorkerBatch *b, int start, int n, const char *failed,
			WriteResult why)
{
	int			pending = 0;
	int			half = n / 2;
	bool		wrote = false;

	for (int i = start; i < start + n; i++)
		if (b->batch->entries[i].outcome == OUTCOME_PENDING)
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
				connlog_count(&connlog_counters()->write_errors, 1);
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
			!(why == WR_TRANSIENT && b->batch->entries[start].transient_alone > 0))
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
	if (is_web(&b->batch->entries[start]) && !is_web(&b->batch->entries[start + n - 1]))
	{
		half = 1;
		while (is_web(&b->batch->entries[start + half]))
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
write_split(WorkerBatch *b, const char *failed, WriteResult why)
{
	split_held = NULL;
	b->splitting = true;
	if (!write_range(b, 0, b->batch->nentries, failed, why))
		return false;
	return finish_split(b, 0, b->batch->nentries);
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
finish_split(WorkerBatch *b, int start, int n)
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

/*
 * A predecessor exited inside a statement that wrote rows (a FATAL the
 * table's code raised, or a cancel it ignored; guard.c).  Put b's entries
 * among those rows (the suspects) first, keeping the order within each
 * kind, as web_events_first() does; returns how many there are.  Only for
 * a batch that holds events a predecessor had read.
 */
static int
suspects_first(WorkerBatch *b)
{
	ClEntry    *sorted;
	bool	   *suspect;
	int			nsuspects = 0;
	int			next = 0;

	if (!b->rewrite || !connlog_guard_have_suspects())
		return 0;
	suspect = palloc(sizeof(bool) * b->batch->nentries);
	for (int i = 0; i < b->batch->nentries; i++)
		if ((suspect[i] = connlog_guard_is_suspect(b->batch, i)))
			nsuspects++;
	if (nsuspects > 0 && nsuspects < b->batch->nentries)
	{
		sorted = palloc(sizeof(ClEntry) * b->batch->nentries);
		for (int pass = 0; pass < 2; pass++)
			for (int i = 0; i < b->batch->nentries; i++)
				if (suspect[i] == (pass == 0))
					sorted[next++] = b->batch->entries[i];
		memcpy(b->batch->entries, sorted, sizeof(ClEntry) * b->batch->nentries);
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
write_suspects(WorkerBatch *b, int nsuspects)
{
	char	   *error = connlog_guard_death_error();
	bool		died_alone = connlog_guard_died_alone();

	b->splitting = true;
	split_held = NULL;
	report_failure(error, nsuspects, NEXT_SPLIT, 0);
	if (!died_alone &&
	  !write_range(b, 0, nsuspects, nsuspects > 1 ? error : NULL, WR_FAILED))
		return false;
	if (!write_range(b, nsuspects, b->batch->nentries - nsuspects, NULL, WR_FAILED) ||
		!finish_split(b, died_alone ? nsuspects : 0,
		   died_alone ? b->batch->nentries - nsuspects : b->batch->nentries))
		return false;
	if (!died_alone)
		return true;
	/* more than one only for a web event enqueued twice */
	for (int i = 0; i < nsuspects; i++)
	{
		if (b->batch->entries[i].outcome != OUTCOME_PENDING)
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

/*
 * Write b: cur, or a batch from the retry queue when retry.  A failure
 * that is the rows' fault (CL_WRITE_BAD_DATA) splits b at once; other
 * failures, transient ones included, are retried max_retries times first
 * (during shutdown a non-transient one is not retried, and a transient
 * one leaves b to the next worker).  Returns true once every event of b
 * is accounted for, false if b must wait for a retry.
 */
static bool
write_batch_internal(WorkerBatch *b, bool retry)
{
	char	   *error;
	WriteResult r;
	int			nsuspects;

	if (b->batch->nentries == 0)
	{
		connlog_held_accounted(b);
		return true;
	}
	if (!connlog_batch_write_budget())
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
		connlog_count(&connlog_counters()->retries, 1);
		b->attempts++;
		return write_split(b, NULL, WR_FAILED);
	}
	r = write_entries(b, WRITE_WHOLE, 0, b->batch->nentries, NULL, &error);
	/* not the batch's fault: it keeps its place and its retries */
	if (r == WR_MISSING || r == WR_DENIED || r == WR_STOPPED)
		return false;
	if (retry)
		connlog_count(&connlog_counters()->retries, 1);
	if (r == WR_OK)
		return true;

	/*
	 * A node of a Citus cluster failed: not the rows' fault, and a split
	 * would reject the rows of that node once the others' are written. The
	 * batch waits for the node, keeping its retries.
	 */
	if (r == WR_UNREACHABLE)
	{
		report_failure(error, b->batch->nentries, NEXT_NODE, 0);
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
		report_failure(error, b->batch->nentries, NEXT_LATER, 0);
		return false;
	}
	if (r == WR_FAILED && !exiting && b->attempts < connlog_max_retries)
	{
		report_failure(error, b->batch->nentries, NEXT_RETRY,
					   retry ? b->attempts : 0);
		return false;
	}
	report_failure(error, b->batch->nentries, NEXT_SPLIT, 0);
	return write_split(b, error, r);
}

/*
 * write_batch_internal() in batch_write_cxt, emptied after it: what one
 * batch's write leaves behind (its errors, a split's) is gone before the
 * next batch.
 */
bool
connlog_batch_write(WorkerBatch *b, bool retry)
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

void
connlog_batch_write_init(const ConnlogBatchesHooks *hooks)
{
	worker = hooks;
	batch_write_cxt = AllocSetContextCreate(TopMemoryContext,
											"connlog batch write",
											ALLOCSET_DEFAULT_SIZES);
}

/* The worker drains before it exits: its writes end at deadline. */
void
connlog_batch_write_exit_by(TimestampTz deadline)
{
	exit_deadline = deadline;
	exiting = true;
}

/* Has the worker begun its drain before exit? */
bool
connlog_batch_write_exiting(void)
{
	return exiting;
}
