/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The connlog background worker: drain the ring, merge, write, retry.
 *
 * One worker, registered at postmaster start, started once recovery has
 * finished (so a standby never writes).  Its life:
 *
 *	- connect to connlog.database as connlog.role.  A missing database
 *	  would make that connection attempt FATAL and, with the restart
 *	  interval, a restart storm.  So the worker marks "connecting" in shared
 *	  memory first; a worker that finds the mark left behind by its
 *	  predecessor connects to no database instead, polls pg_database every
 *	  flush_interval, and exits to be restarted once the database exists.
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
 * events it leaves unwritten (store_exit_progress; wal.c, "pg_upgrade").
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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "postmaster/walwriter.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "connlog.h"
#include "ring.h"

#define MAX_RETRY_QUEUE		1000	/* connlog.retry_queue_size's maximum */
#define EXIT_PROGRESS_TIMEOUT_MS	1000	/* see store_exit_progress() */

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

/*
 * connlog.durability (see wal.c).  wal_active: the slot exists, so the
 * progress is tracked and stored.  consumed_lsn: no WAL-backed event this
 * worker has not taken from the ring starts before it.  replay_from: the
 * progress read at start, which stays the one stored while batches read
 * back from WAL are held.  stored: the progress the last committed write
 * stored; slot_done: the slot's restart_lsn as last advanced.
 */
static bool wal_active;
static bool replay_pending = true;
static XLogRecPtr consumed_lsn;
static ConnlogProgress replay_from;
static ConnlogProgress stored;
static XLogRecPtr slot_done;
static uint64 wal_enqueued_seen;	/* see wake_wal_writer() */
static char *slot_error_logged;

/*
 * cannot_write: nothing can be written now (extension missing, broken,
 * or a privilege missing); blocked_state says which, for worker_state.
 */
static bool cannot_write = true;
static ConnlogWorkerState blocked_state = CL_STATE_NO_EXTENSION;
static bool missing_logged;
static TimestampTz next_check;

/* connlog.retention */
static TimestampTz next_purge;
static bool purge_running;
static uint64 purge_run_rows;
static char *purge_error_logged;

static volatile sig_atomic_t shutting_down;
static TimestampTz shutdown_deadline;

static uint32 wait_event_main;

static bool wait_until_writable(const char *error);

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
volatile sig_atomic_t connlog_in_statement = false;

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

/* An upsert of entries [start, start + n) committed. */
static void
rows_written(ClBatch *b, int start, int n)
{
	connlog_count(&counters()->batches, 1);
	set_outcome(b, start, n, OUTCOME_WRITTEN);
	connlog_ring_note_flush(NULL);
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
	uint64		n[4] = {0, 0, 0, 0};
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

	for (int i = -1; i < nretry; i++)
	{
		const ClBatch *b = i < 0 ? cur : retryq[i];

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
 * The progress once exclude (a batch being written whole) is accounted
 * for: the oldest WAL-backed event still held, or the ring's next one.
 */
static void
compute_done(const ClBatch *exclude, ConnlogProgress *p)
{
	bool		replayed = false;

	p->epoch = connlog_shared->epoch;
	p->seq = read_seq;
	p->lsn = consumed_lsn;
	p->at_exit = false;
	p->pending = 0;
	/* cur, then the retry queue */
	for (int i = -1; i < nretry; i++)
	{
		const ClBatch *b = i < 0 ? cur : retryq[i];

		if (b == exclude || b->nwal == 0)
			continue;
		p->lsn = Min(p->lsn, b->lsn_floor);
		if (b->replayed)
			replayed = true;
		else
			p->seq = Min(p->seq, b->seq_start);
	}
	/* events read back from WAL are not numbered in this life: see wal.c */
	if (replayed)
	{
		p->epoch = replay_from.epoch;
		p->seq = replay_from.seq;
	}
}

/*
 * The progress a write should store with it, in *p; NULL for none.  Both
 * the stored progress and the new one hold, so the later lsn does too (no
 * event not written starts before either), and within one life so does
 * the larger seq.  The stored lsn therefore never goes back, nor does the
 * slot that follows it.
 */
static ConnlogProgress *
next_progress(const ClBatch *exclude, ConnlogProgress *p)
{
	if (!wal_active)
		return NULL;
	compute_done(exclude, p);
	p->lsn = Max(p->lsn, stored.lsn);
	if (p->epoch == stored.epoch)
	{
		p->seq = Max(p->seq, stored.seq);
		if (p->seq == stored.seq && p->lsn == stored.lsn)
			return NULL;
	}
	return p;
}

/* A write that stored progress has committed: let the slot follow. */
static void
progress_committed(const ConnlogProgress *progress)
{
	char	   *error;

	if (progress == NULL)
		return;
	stored = *progress;
	if (stored.lsn <= slot_done)
		return;
	if (connlog_wal_slot_advance(stored.lsn, &error))
	{
		slot_done = stored.lsn;
		return;
	}
	if (slot_error_logged == NULL || strcmp(slot_error_logged, error) != 0)
	{
		ereport(WARNING,
			 (errmsg("connlog could not advance replication slot \"%s\": %s",
					 CONNLOG_SLOT_NAME, error),
			  errdetail("The slot keeps more WAL than needed until this is fixed.")));
		if (slot_error_logged != NULL)
			pfree(slot_error_logged);
		slot_error_logged = MemoryContextStrdup(remembered_cxt, error);
	}
}

static void
report_failure(const char *error, int nrows, const char *what)
{
	connlog_count(&counters()->write_errors, 1);
	connlog_ring_note_flush(error);
	ereport(WARNING,
			(errmsg("connlog could not write %d connection log rows: %s",
					nrows, error),
			 errdetail("%s", what)));
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
	left_ms = (long) ((shutdown_deadline - GetCurrentTimestamp() + 999) / 1000);
	if (left_ms <= 0)
		return false;
	connlog_writer_set_timeout((int) left_ms);
	return true;
}

static void
drop_entry(ClBatch *b, int i, const char *why)
{
	set_outcome(b, i, 1, OUTCOME_DROPPED);
	ereport(WARNING,
			(errmsg("connlog dropped %llu connection log events",
					(unsigned long long) b->entries[i].nevents),
			 errdetail("%s", why)));
}

/* why a write that met a transient error stopped */
#define TRANSIENT_DETAIL \
	"The error may be temporary: what is not written yet will be retried."

/*
 * Store entry i of b, a row that fails on its own, in
 * connection_logs_rejected.  Returns false if that has to wait (see
 * write_range()).
 */
static bool
reject_entry(ClBatch *b, int i, const char *error)
{
	char	   *err2;

	for (;;)
	{
		ConnlogProgress progbuf;
		ConnlogProgress *progress;
		ConnlogWriteStatus st;

		if (!shutdown_budget())
			return false;
		progress = next_progress(NULL, &progbuf);
		st = connlog_write_rejected(b, i, error, progress, &err2);
		if (st == CL_WRITE_OK)
		{
			progress_committed(progress);
			break;
		}
		if (st == CL_WRITE_DENIED)
		{
			if (!wait_until_writable(err2))
				return false;
			continue;
		}
		if (st == CL_WRITE_MISSING)
		{
			cannot_write = true;
			return false;
		}
		if (st == CL_WRITE_TRANSIENT)
		{
			report_failure(err2, 1, TRANSIENT_DETAIL);
			return false;
		}
		drop_entry(b, i,
				   psprintf("The upsert failed (%s) and so did storing it in connection_logs_rejected (%s).",
							error, err2));
		return true;
	}
	set_outcome(b, i, 1, OUTCOME_REJECTED);
	ereport(LOG,
			(errmsg("connlog stored a connection log event in connection_logs_rejected"),
			 errdetail("The upsert failed: %s", error)));
	return true;
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
	while (failed == NULL && pending == n)
	{
		char	   *err;
		ConnlogWriteStatus st;
		ConnlogProgress progbuf;
		ConnlogProgress *progress;

		CHECK_FOR_INTERRUPTS();
		if (!shutdown_budget())
			return false;
		/* b stays held until every part of it is: it keeps progress back */
		progress = next_progress(NULL, &progbuf);
		st = connlog_write_upsert(b, start, n, progress, &err);
		switch (st)
		{
			case CL_WRITE_OK:
				progress_committed(progress);
				rows_written(b, start, n);
				return true;
			case CL_WRITE_DENIED:
				if (!wait_until_writable(err))
					return false;
				break;			/* the same range again */
			case CL_WRITE_MISSING:
				cannot_write = true;
				return false;
			case CL_WRITE_TRANSIENT:
				report_failure(err, n, TRANSIENT_DETAIL);
				return false;
			case CL_WRITE_FAILED:
			case CL_WRITE_BAD_DATA:
				connlog_count(&counters()->write_errors, 1);
				failed = err;
				break;
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

	if (cur->seq_end > cur->seq_start)
		done = cur->seq_start;
	for (int i = 0; i < nretry; i++)
		done = Min(done, retryq[i]->seq_start);
	connlog_ring_set_done(done);
}

/*
 * Log a reason for not writing when it differs from the last one logged, so
 * a condition that lasts is reported once, not every flush_interval.
 */
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
	latest = GetCurrentTimestamp() +
		(TimestampTz) connlog_retry_interval_ms * 1000;
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

static void
log_blocked(int elevel, const char *prefix, const char *error)
{
	connlog_ring_note_flush(error);
	if (is_news(&blocked_logged, error))
		ereport(elevel,
				(errmsg("%s: %s", prefix, error),
				 errdetail("Events stay in the ring until this is fixed; connlog looks again every connlog.flush_interval.")));
}

static void
check_target(void)
{
	char	   *error;
	ConnlogWriteStatus st = connlog_check_target(&error);

	next_check = GetCurrentTimestamp() +
		(TimestampTz) connlog_flush_interval_ms * 1000;
	if (st == CL_WRITE_OK)
	{
		if (cannot_write && missing_logged)
			ereport(LOG,
					(errmsg("connlog can write to database \"%s\" again; writing resumes",
							connlog_database)));
		/* at startup too: a predecessor may have left why it waited */
		if (cannot_write)
			connlog_ring_clear_error();
		/* the same reason, should it come back, is news again */
		(void) is_news(&blocked_logged, NULL);
		cannot_write = false;
		missing_logged = false;
		return;
	}
	cannot_write = true;
	if (st != CL_WRITE_MISSING)
	{
		/* not a missing extension but a broken one, or a missing GRANT */
		blocked_state = st == CL_WRITE_DENIED ?
			CL_STATE_NO_PRIVILEGE : CL_STATE_BROKEN;
		log_blocked(WARNING,
					st == CL_WRITE_DENIED ?
					"connlog cannot write with the privileges of its role" :
					"connlog could not prepare its statements",
					error);
		missing_logged = true;
		/* called every flush_interval while a write waits for a privilege */
		pfree(error);
		return;
	}
	blocked_state = CL_STATE_NO_EXTENSION;
	if (!missing_logged)
	{
		connlog_ring_note_flush(psprintf("extension connlog is not installed in database \"%s\"",
										 connlog_database));
		ereport(LOG,
			 (errmsg("extension connlog is not installed in database \"%s\"",
					 connlog_database),
			  errdetail("Events stay in the ring until it is; connlog looks again every connlog.flush_interval."),
			  errhint("Run CREATE EXTENSION connlog in database \"%s\".",
					  connlog_database)));
		missing_logged = true;
	}
}

/*
 * A write was refused for a missing privilege (SQLSTATE 42501): stop
 * writing until check_target() finds the privileges in place.
 */
static void
note_denied(const char *error)
{
	connlog_count(&counters()->write_errors, 1);
	cannot_write = true;
	blocked_state = CL_STATE_NO_PRIVILEGE;
	missing_logged = true;
	next_check = GetCurrentTimestamp() +
		(TimestampTz) connlog_flush_interval_ms * 1000;
	log_blocked(WARNING, "connlog cannot write with the privileges of its role",
				error);
}

/*
 * A write inside write_range() was refused for a privilege.  Wait here
 * (the split's position lives only in its stack frames), looking again every
 * flush_interval, until the privilege is back.  Returns false if the
 * worker must exit first.
 */
static bool
wait_until_writable(const char *error)
{
	note_denied(error);
	while (cannot_write)
	{
		if (shutting_down || ShutdownRequestPending)
			return false;
		connlog_ring_set_state(blocked_state);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 connlog_flush_interval_ms,
						 CONNLOG_WAIT_EVENT(wait_event_main, "ConnlogMain"));
		ResetLatch(MyLatch);
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
	b->next_attempt = GetCurrentTimestamp() +
		(TimestampTz) connlog_retry_interval_ms * 1000;
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
	ConnlogWriteStatus st;
	ConnlogProgress progbuf;
	ConnlogProgress *progress;

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
		if (!write_range(b, 0, b->nentries, NULL))
			return false;
		batch_accounted(b);
		return true;
	}
	if (!retry)
		web_events_first(b);
	progress = next_progress(b, &progbuf);
	st = connlog_write_upsert(b, 0, b->nentries, progress, &error);
	if (st == CL_WRITE_MISSING)
	{
		cannot_write = true;
		return false;
	}
	if (st == CL_WRITE_DENIED)
	{
		/* not the batch's fault: it keeps its place and its retries */
		note_denied(error);
		return false;
	}
	if (retry)
		connlog_count(&counters()->retries, 1);
	if (st == CL_WRITE_OK)
	{
		progress_committed(progress);
		rows_written(b, 0, b->nentries);
		batch_accounted(b);
		return true;
	}
	if (retry)
		b->attempts++;

	/*
	 * A transient error (a lock or statement timeout, a serialization
	 * failure) is never the rows' fault: the batch is retried however often
	 * it takes, and never split, since a split would reject good rows for it.
	 * Exiting, the worker leaves the batch in the ring for its successor.
	 */
	if (st == CL_WRITE_TRANSIENT)
	{
		report_failure(error, b->nentries, TRANSIENT_DETAIL);
		return false;
	}
	if (st != CL_WRITE_BAD_DATA && !shutting_down &&
		b->attempts < connlog_max_retries)
	{
		report_failure(error, b->nentries,
					   retry ? psprintf("Retry %d of %d.", b->attempts,
										connlog_max_retries) :
					   "The batch will be retried.");
		return false;
	}
	report_failure(error, b->nentries,
		  "The rows that fail on their own go to connection_logs_rejected.");
	if (!write_range(b, 0, b->nentries, error))
	{
		b->splitting = true;
		return false;
	}
	batch_accounted(b);
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

	while (i < nretry && !cannot_write)
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
		if (cannot_write)
		{
			b->next_attempt = now;
			break;
		}
		b->next_attempt = now + (TimestampTz) connlog_retry_interval_ms * 1000;
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
			consumed_lsn = Max(consumed_lsn, floor);
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
	if (pos == head && wal_active)
		consumed_lsn = Max(consumed_lsn, insert_lsn);
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
	while (nretry < connlog_retry_queue_size && !cannot_write)
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
 * One step of connlog.retention.  A run of steps starts every
 * purge_interval and ends with a step that finds fewer rows than it may
 * delete; the main loop drains the ring between steps.  A failed step ends
 * the run, and the next starts a purge_interval later.
 */
static void
purge_step(TimestampTz now)
{
	uint64		deleted;
	char	   *error;
	ConnlogWriteStatus st;

	if (!purge_running)
	{
		if (connlog_retention_s <= 0 || now < next_purge)
			return;
		purge_running = true;
		purge_run_rows = 0;
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
		cannot_write = true;
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
					 errhint("Grant DELETE on connection_logs to the role connlog writes as.") : 0));
	}
	purge_running = false;
	next_purge = now + (TimestampTz) connlog_purge_interval_ms * 1000;
}

/* The counters vanish with shared memory: leave them in the log. */
static void
log_counters(const char *why)
{
	ConnlogStats st;

	connlog_ring_stats(&st);
	ereport(LOG,
			(errmsg("%s: enqueued %llu, merged %llu, written %llu, rejected %llu, dropped %llu, pending %llu",
					why,
					(unsigned long long) st.enqueued,
					(unsigned long long) st.merged,
					(unsigned long long) st.written,
					(unsigned long long) st.rejected,
					(unsigned long long) st.dropped,
					(unsigned long long) st.pending)));
}

/* Why the worker exits with events not written, for shutdown_drain() */
static const char *
exit_reason(void)
{
	if (cannot_write)
	{
		switch (blocked_state)
		{
			case CL_STATE_NO_PRIVILEGE:
				return "connlog.role lacks a privilege that connlog's statements need.";
			case CL_STATE_BROKEN:
				return "connlog could not prepare its statements.";
			default:
				return "Extension connlog is not installed in the database.";
		}
	}
	if (GetCurrentTimestamp() >= shutdown_deadline)
		return "connlog.shutdown_timeout expired.";
	return "Writing them failed with an error that may be temporary.";
}

/*
 * connlog.durability: store, with the progress, how many WAL-backed events
 * are not written as this worker exits: those of the ring not accounted
 * for (a batch half written counts whole, as the postmaster counts it)
 * and those read back from WAL that it holds.  A cluster that has the row
 * but not the WAL (pg_upgrade) reports that many as lost (wal.c).
 */
static void
store_exit_progress(void)
{
	ConnlogStats st;
	ConnlogCounters *c = counters();
	ConnlogProgress p;
	int64		n;
	char	   *error;

	if (!wal_active)
		return;
	connlog_ring_stats(&st);
	n = (int64) (pg_atomic_read_u64(&c->wal_enqueued) -
				 pg_atomic_read_u64(&c->wal_accounted));
	n = Max(0, Min(n, (int64) st.pending));
	for (int i = -1; i < nretry; i++)
	{
		const ClBatch *b = i < 0 ? cur : retryq[i];

		if (b->replayed)
			n += b->nwal;
	}
	if (next_progress(NULL, &p) == NULL)
		p = stored;
	p.at_exit = true;
	p.pending = (uint64) n;
	/* one row's UPDATE, not bounded by what is left of shutdown_timeout */
	connlog_writer_set_timeout(EXIT_PROGRESS_TIMEOUT_MS);
	if (connlog_write_progress(&p, &error) == CL_WRITE_OK)
		progress_committed(&p);
	else
		ereport(WARNING,
				(errmsg("connlog could not store in connlog_wal_progress how many WAL-backed events it leaves unwritten: %s",
						error ? error : "extension connlog is not installed"),
				 errdetail("A cluster made from this one by pg_upgrade cannot tell how many such events it lost.")));
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

	shutting_down = true;
	connlog_ring_set_state(CL_STATE_EXITING);
	shutdown_deadline = GetCurrentTimestamp() +
		(TimestampTz) connlog_shutdown_timeout_ms * 1000;
	pgstat_report_activity(STATE_RUNNING, "connlog: writing all events before exit");

	if (cannot_write)
		check_target();
	(void) connlog_ring_snapshot(&tail, &tail_seq, &target, NULL);
	if (!cannot_write)
	{
		run_retries(GetCurrentTimestamp());
		while (!cannot_write && read_seq < target &&
			   nretry < connlog_retry_queue_size && shutdown_budget())
		{
			fill_current();
			write_current();
		}
		if (nretry < connlog_retry_queue_size)
			write_current();
	}
	publish_done();
	store_exit_progress();

	(void) connlog_ring_snapshot(&tail, &tail_seq, &head_seq, NULL);
	if (tail_seq < target)
		ereport(WARNING,
			(errmsg("connlog worker is exiting with %llu events not written",
					(unsigned long long) (head_seq - tail_seq)),
			 errdetail("%s", exit_reason()),
			 errhint("The events stay in shared memory for the next worker.  If the server is stopping, those not backed by WAL are lost.")));
	else if (head_seq > tail_seq)
		ereport(LOG,
				(errmsg("connlog worker is exiting; %llu events enqueued since it was told to are left for the next worker",
						(unsigned long long) (head_seq - tail_seq))));
	log_counters("connlog worker exiting");
}

/*
 * Does a row named name exist in shared catalog relid?  For pg_authid,
 * *canlogin tells whether the role may log in.  A worker connected to no
 * database can read shared catalogs only by sequential scan: their indexes
 * need per-database catalogs to open.
 */
static bool
shared_catalog_has(Oid relid, const char *name, bool *canlogin)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TableScanDesc scan = table_beginscan_catalog(rel, 0, NULL);
	HeapTuple	tup;
	bool		found = false;

	while (!found && (tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		if (relid == DatabaseRelationId)
			found = strcmp(NameStr(((Form_pg_database) GETSTRUCT(tup))->datname),
						   name) == 0;
		else
		{
			Form_pg_authid role = (Form_pg_authid) GETSTRUCT(tup);

			found = strcmp(NameStr(role->rolname), name) == 0;
			if (found)
				*canlogin = role->rolcanlogin;
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * The previous worker died connecting: poll for the database and the role
 * (which must exist and have LOGIN: a background worker's connection is
 * refused for a NOLOGIN role like any other) without connecting to a
 * database, and exit to be restarted once both are fine.
 */
static void
wait_for_database(void)
{
	ConnlogWorkerState logged = CL_STATE_NOT_RUNNING;

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("connlog worker");
	MemoryContextSwitchTo(turn_cxt);
	for (;;)
	{
		bool		canlogin = true;
		ConnlogWorkerState state;
		char	   *why;

		begin_turn();
		CHECK_FOR_INTERRUPTS();
		reload_config();
		if (ShutdownRequestPending)
			proc_exit(1);

		StartTransactionCommand();
		if (!shared_catalog_has(DatabaseRelationId, connlog_database, NULL))
			state = CL_STATE_NO_DATABASE;
		else if (connlog_role[0] != '\0' &&
			  !shared_catalog_has(AuthIdRelationId, connlog_role, &canlogin))
			state = CL_STATE_NO_ROLE;
		else if (!canlogin)
			state = CL_STATE_ROLE_NOLOGIN;
		else
			state = CL_STATE_STARTING;
		CommitTransactionCommand();
		MemoryContextSwitchTo(turn_cxt);
		pgstat_report_activity(STATE_IDLE, NULL);

		if (state == CL_STATE_STARTING)
		{
			ereport(LOG,
			(errmsg("connlog worker restarting to connect to database \"%s\"",
					connlog_database)));
			connlog_ring_set_connecting(false);
			proc_exit(1);
		}
		connlog_ring_set_state(state);
		why = state == CL_STATE_NO_DATABASE ?
			psprintf("database \"%s\" does not exist", connlog_database) :
			state == CL_STATE_NO_ROLE ?
			psprintf("role \"%s\" does not exist", connlog_role) :
			psprintf("role \"%s\" is not permitted to log in", connlog_role);
		connlog_ring_note_flush(why);
		if (state != logged)
		{
			ereport(LOG,
					(errmsg("connlog worker is waiting: %s", why),
					 errdetail("Events stay in the ring until then; connlog looks again every connlog.flush_interval."),
					 state == CL_STATE_ROLE_NOLOGIN ?
				  errhint("Run ALTER ROLE %s LOGIN, or change connlog.role.",
						  quote_identifier(connlog_role)) : 0));
			logged = state;
		}
		pfree(why);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 connlog_flush_interval_ms,
						 CONNLOG_WAIT_EVENT(wait_event_main, "ConnlogMain"));
		ResetLatch(MyLatch);
	}
}

/*
 * connlog.durability is in use: tell producers, who wait for the slot
 * before they write WAL-backed events (see wal.c).
 */
static void
set_wal_active(void)
{
	wal_active = true;
	pg_atomic_write_u32(&connlog_shared->slot_ready, 1);
	pg_atomic_write_u32(&connlog_shared->slot_wanted, 0);
	ConditionVariableBroadcast(&connlog_shared->space_cv);
}

/*
 * Feed events read back from WAL into batches, writing each batch that
 * fills.  They count as enqueued (and WAL-backed) like new events, once
 * their batch is accounted for: a worker that exits before then reads
 * them back again.
 */
static void
feed_replayed(const char *data, size_t nbytes, uint64 nrecords,
			  XLogRecPtr floor)
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
 * At start, once the extension is there: read connlog_wal_progress and
 * write the WAL-backed events after it that are neither written nor in the
 * ring (see wal.c).
 */
static void
replay_wal(void)
{
	ConnlogProgress done;
	XLogRecPtr	first;
	XLogRecPtr	insert_lsn;
	XLogRecPtr	last_end;
	uint64		nrecords = 0;
	uint64		nskipped = 0;
	size_t		nbytes = 0;
	char	   *error;
	char	   *data = NULL;
	ConnlogWriteStatus st;
	ConnlogShared *s = connlog_shared;

	st = connlog_read_progress(&done, &error);
	if (st == CL_WRITE_MISSING)
	{
		cannot_write = true;
		return;
	}
	replay_pending = false;
	if (st != CL_WRITE_OK)
	{
		ereport(WARNING,
		   (errmsg("connlog could not read connlog_wal_progress: %s", error),
			errdetail("WAL-backed events that were not written before the worker started are not replayed.")));
		memset(&done, 0, sizeof(done));
	}
	stored = replay_from = done;
	slot_done = done.lsn;
	first = connlog_ring_first_wal_floor(&insert_lsn);

	if (!XLogRecPtrIsInvalid(done.lsn))
	{
		if (!connlog_wal_slot_exists() &&
			!connlog_wal_slot_create(done.lsn, &error))
			ereport(WARNING,
			  (errmsg("connlog could not create replication slot \"%s\": %s",
					  CONNLOG_SLOT_NAME, error)));
		last_end = done.lsn;
		if (done.lsn < insert_lsn)
			data = connlog_wal_replay(&done, insert_lsn, &last_end,
									  &nrecords, &nskipped, &nbytes);

		/*
		 * The ring's own events were left out of the replay: they may start
		 * before last_end, but not before the oldest one's floor.
		 */
		consumed_lsn = XLogRecPtrIsInvalid(first) ? last_end : Min(last_end, first);
		set_wal_active();
		if (done.lsn < insert_lsn)
		{
			/* the replayed batches store progress as they are written */
			feed_replayed(data, nbytes, nrecords, done.lsn);
			pfree(data);
			ereport(LOG,
					(errmsg("connlog replayed %llu events from WAL between %X/%X and %X/%X",
							(unsigned long long) nrecords,
					   LSN_FORMAT_ARGS(done.lsn), LSN_FORMAT_ARGS(last_end)),
					 nskipped > 0 ?
					 errdetail("%llu events in that WAL were left out: written already, or still in the ring.",
							   (unsigned long long) nskipped) : 0));
		}

		/*
		 * Nothing read back is held: store this life's progress now, so that
		 * a row an exiting worker (or another cluster, see wal.c's
		 * "pg_upgrade") stored is not read, and reported on, again.
		 */
		if (nrecords == 0)
		{
			ConnlogProgress p;

			if (next_progress(NULL, &p) != NULL &&
				connlog_write_progress(&p, &error) == CL_WRITE_OK)
				progress_committed(&p);
		}
	}
	else if (st == CL_WRITE_OK && connlog_wal_slot_exists())
	{
		/*
		 * The slot is there but no progress was ever stored (say, the
		 * extension was created afresh).  No WAL-backed event can be in the
		 * ring yet: producers wait for slot_ready, which is set below.
		 */
		ConnlogProgress p = {s->epoch, read_seq, insert_lsn};

		consumed_lsn = insert_lsn;
		if (connlog_write_progress(&p, &error) == CL_WRITE_OK)
		{
			stored = p;
			set_wal_active();
		}
	}

	/* what the postmaster counted when the crash reset shared memory */
	if (s->crash_wal_pending > 0)
	{
		if (s->crash_wal_pending > nrecords)
			ereport(WARNING,
					(errmsg("connlog lost %llu WAL-backed events whose WAL had not been written when the server crashed",
					 (unsigned long long) (s->crash_wal_pending - nrecords)),
					 errdetail("%llu WAL-backed events were not written yet at the crash; %llu were read back from WAL.",
							   (unsigned long long) s->crash_wal_pending,
							   (unsigned long long) nrecords)));
		else
			ereport(LOG,
					(errmsg("connlog read back from WAL all %llu WAL-backed events that were not written yet at the crash",
							(unsigned long long) s->crash_wal_pending)));
		s->crash_wal_pending = 0;
	}
	/* a predecessor's replayed events are written, read again, or lost */
	release_ring();
	pg_atomic_write_u32(&s->replaying, 0);
	ConditionVariableBroadcast(&s->flush_cv);
}

/*
 * With wal, producers wake the WAL writer at most every CONNLOG_WAL_WAKE_MS
 * (wal.c), so the WAL records of the last events of a burst may have no
 * one to wake it for them: the worker does, once per turn if WAL-backed
 * events came in since the last.  Returns how long the worker may sleep
 * before it looks again: CONNLOG_WAL_WAKE_MS after such events, else
 * wal_writer_delay, which bounds how long a record can wait.
 */
static long
wake_wal_writer(void)
{
	uint64		n = pg_atomic_read_u64(&counters()->wal_enqueued);

	if (n == wal_enqueued_seen)
		return WalWriterDelay;
	wal_enqueued_seen = n;
	XLogSetAsyncXactLSN(GetXLogInsertRecPtr());
	return CONNLOG_WAL_WAKE_MS;
}

/*
 * A producer asked for the slot (its first WAL-backed event): create it at
 * the insert position, and store that as the progress, before any
 * WAL-backed event exists.
 */
static void
ensure_slot(void)
{
	XLogRecPtr	insert_lsn = GetXLogInsertRecPtr();
	char	   *error = NULL;

	if (!connlog_wal_slot_exists() &&
		!connlog_wal_slot_create(insert_lsn, &error))
	{
		log_blocked(WARNING, "connlog could not create its replication slot", error);
		return;
	}
	consumed_lsn = Max(consumed_lsn, insert_lsn);
	if (XLogRecPtrIsInvalid(stored.lsn))
	{
		ConnlogProgress p = {connlog_shared->epoch, read_seq, insert_lsn};

		if (connlog_write_progress(&p, &error) != CL_WRITE_OK)
		{
			log_blocked(WARNING, "connlog could not store its WAL progress",
						error ? error : "extension connlog is not installed");
			return;
		}
		stored = p;
		slot_done = insert_lsn;
	}
	set_wal_active();
}

void
connlog_worker_main(Datum main_arg)
{
	TimestampTz last_flush;		/* start of the current flush interval */

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

	if (connlog_ring_attach_worker())
		wait_for_database();

	connlog_ring_set_connecting(true);
	BackgroundWorkerInitializeConnection(connlog_database,
							   connlog_role[0] != '\0' ? connlog_role : NULL,
										 0);
	connlog_ring_set_connecting(false);
	connlog_writer_init_session();
	pgstat_report_appname("connlog worker");

#ifdef __GLIBC__

	/*
	 * Every batch allocates and frees the same large chunks: the row array
	 * and the executor's bigger memory blocks.  glibc gives chunks this size
	 * their own mmap(), so each batch would fault its memory in afresh
	 * (zeroed pages, several percent of the worker's CPU).  Keep them in the
	 * heap and reuse them instead; this process only.
	 */
	mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
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
		TimestampTz next_flush;
		bool		flush_now;

		begin_turn();
		CHECK_FOR_INTERRUPTS();
		reload_config();

		/* computed each time, so a reloaded flush_interval applies at once */
		now = GetCurrentTimestamp();
		next_flush = last_flush + (TimestampTz) connlog_flush_interval_ms * 1000;
		flush_now = pg_atomic_exchange_u32(&connlog_shared->flush_requested, 0) != 0;
		/* a flush request also means "look now": the extension may be new */
		if (cannot_write && (now >= next_check || flush_now))
			check_target();
		if (!cannot_write && replay_pending)
			replay_wal();
		if (cannot_write)
			pg_atomic_write_u32(&connlog_shared->replaying, 0);
		if (!cannot_write && !replay_pending &&
			pg_atomic_read_u32(&connlog_shared->slot_wanted) != 0 &&
			pg_atomic_read_u32(&connlog_shared->slot_ready) == 0)
			ensure_slot();
		if (!cannot_write)
		{
			run_retries(now);
			drain();
			if ((flush_now || now >= next_flush) &&
				nretry < connlog_retry_queue_size && !cannot_write)
				write_current();
			if (!cannot_write)
				purge_step(now);
		}
		if (flush_now || now >= next_flush)
		{
			last_flush = now;
			next_flush = now + (TimestampTz) connlog_flush_interval_ms * 1000;
		}
		publish_done();

		/* sleep until the next flush, retry or extension check is due */
		wake = next_flush;
		for (int i = 0; i < nretry; i++)
			wake = Min(wake, retryq[i]->next_attempt);
		if (cannot_write)
			wake = next_check;
		else if (purge_running)
			wake = 0;			/* the next step after this turn's drain */
		else if (connlog_retention_s > 0)
			wake = Min(wake, next_purge);
		if (wal_active)
			wake = Min(wake, now + (TimestampTz) wake_wal_writer() * 1000);
		connlog_ring_set_state(cannot_write ? blocked_state :
							   nretry >= connlog_retry_queue_size ?
							   CL_STATE_RETRY_QUEUE_FULL : CL_STATE_IDLE);
		now = GetCurrentTimestamp();
		pgstat_report_activity(STATE_IDLE, NULL);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wake > now ? (long) ((wake - now + 999) / 1000) : 0,
						 CONNLOG_WAIT_EVENT(wait_event_main, "ConnlogMain"));
		ResetLatch(MyLatch);
	}

	shutdown_drain();
	proc_exit(1);
}
