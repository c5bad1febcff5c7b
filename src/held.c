/*-------------------------------------------------------------------------
 *
 * held.c
 *		What the worker holds: its batches (the one being filled and the
 *		retry queue), its place in the ring, and the accounting of every
 *		event it took from there.
 *
 * The ring frees an event only once its outcome is decided and committed
 * (ring.c): an event is counted (written, rejected, dropped, merged) once,
 * when the last row of its batch has an outcome, in the same step that
 * frees or flags its events in the ring.  What a write should store as
 * the durability progress follows from what is held here (progress.c).  See
 * doc/internals.md, "The batches".
 *
 * Only the worker's process uses this file; nothing here is shared.
 *
 * IDENTIFICATION
 *	  src/held.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "batch.h"
#include "connlog.h"
#include "held.h"
#include "ring.h"
#include "progress.h"
#include "statements.h"

#define MAX_RETRY_QUEUE		1000	/* connlog.retry_queue_size's maximum */

/* batch_cxt holds the batches (cur and the retry queue) and recbuf */
static MemoryContext batch_cxt;
static WorkerBatch *cur;		/* the batch being filled */
static WorkerBatch *retryq[MAX_RETRY_QUEUE];	/* failed batches, oldest
												 * first */
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

/*
 * The batches this worker holds, for the loops that look at all of them:
 * cur, then the retry queue, oldest first.  NULL past the last.
 */
static WorkerBatch *
held_batch(int i)
{
	if (i == 0)
		return cur;
	return i <= nretry ? retryq[i - 1] : NULL;
}

/* Empty b, whose events start at the worker's read position */
static void
reset_batch(WorkerBatch *b)
{
	cl_batch_reset(b->batch, read_seq);
	b->lsn_floor = InvalidXLogRecPtr;
	b->nwal = 0;
	b->replayed = false;
	b->rewrite = false;
	b->pos_start = b->pos_end = read_pos;
	b->ndropped = 0;
	b->splitting = false;
	b->attempts = 0;
	b->written_mark = 0;
	b->next_attempt = 0;
}

static WorkerBatch *
new_batch(void)
{
	WorkerBatch *b = MemoryContextAlloc(batch_cxt, sizeof(WorkerBatch));
	MemoryContext old = MemoryContextSwitchTo(batch_cxt);

	b->batch = cl_batch_create(connlog_batch_size);
	MemoryContextSwitchTo(old);
	reset_batch(b);
	return b;
}

static void
free_batch(WorkerBatch *b)
{
	cl_batch_free(b->batch);
	pfree(b);
}

/* Empty cur for reuse, or replace it if batch_size changed on reload. */
static void
reset_current(void)
{
	if (cur->batch->capacity != connlog_batch_size)
	{
		free_batch(cur);
		cur = new_batch();
	}
	else
		reset_batch(cur);
}

/* Entries [start, start + n) of b that have none get outcome. */
static void
set_outcome(WorkerBatch *b, int start, int n, uint8 outcome)
{
	for (int i = start; i < start + n; i++)
		if (b->batch->entries[i].outcome == OUTCOME_PENDING)
			b->batch->entries[i].outcome = outcome;
}

/*
 * Every entry of b has its outcome: count the outcomes of all its events
 * at once, and flag its events in the ring if an older batch is still
 * held (if none is, tail passes them as soon as b is gone; see ring.c).
 * The caller then lets go of b and calls connlog_held_release_ring().
 * Counting only here is what counts each event once: a batch whose worker
 * exits half way through is counted by the successor that writes it
 * again.
 */
void
connlog_held_accounted(const WorkerBatch *b)
{
	uint64		n[NUM_OUTCOMES] = {0};
	uint64		events = 0;

	/* events read back from WAL count as enqueued once, here, too */
	if (b->replayed)
	{
		connlog_count(&connlog_counters()->enqueued, b->batch->nevents + b->ndropped);
		connlog_count(&connlog_counters()->wal_enqueued, b->nwal);
	}
	for (int i = 0; i < b->batch->nentries; i++)
	{
		Assert(b->batch->entries[i].outcome != OUTCOME_PENDING);
		n[b->batch->entries[i].outcome]++;
		events += b->batch->entries[i].nevents;
	}
	connlog_count(&connlog_counters()->written, n[OUTCOME_WRITTEN]);
	connlog_count(&connlog_counters()->rejected, n[OUTCOME_REJECTED]);
	connlog_count(&connlog_counters()->dropped, n[OUTCOME_DROPPED] + b->ndropped);
	connlog_count(&connlog_counters()->merged, events - b->batch->nentries);
	connlog_count(&connlog_counters()->wal_accounted, b->nwal);
	if (b->pos_start != released_pos)
		connlog_ring_mark_done(b->pos_start, b->pos_end);
}

/*
 * Entries [start, start + n) of b that have none get outcome; once no
 * entry of b is left without one, b is accounted for.
 */
void
connlog_held_settle(WorkerBatch *b, int start, int n, uint8 outcome)
{
	set_outcome(b, start, n, outcome);
	for (int i = 0; i < b->batch->nentries; i++)
		if (b->batch->entries[i].outcome == OUTCOME_PENDING)
			return;
	connlog_held_accounted(b);
}

/*
 * Move the ring's tail up to the oldest event a batch still holds, and
 * say whether a batch holds events read back from WAL (for
 * connlog_stats.lag, see ring.c).
 */
void
connlog_held_release_ring(void)
{
	uint64		pos = read_pos;
	uint64		seq = read_seq;
	bool		replayed = false;
	const WorkerBatch *b;

	for (int i = 0; (b = held_batch(i)) != NULL; i++)
	{
		if (b->pos_end > b->pos_start && b->pos_start < pos)
		{
			pos = b->pos_start;
			seq = b->batch->seq_start;
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
void
connlog_held_events(const WorkerBatch *exclude, ConnlogHeld *h)
{
	const WorkerBatch *b;

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
			h->oldest_seq = Min(h->oldest_seq, b->batch->seq_start);
	}
}

/* The progress a write should store with it, in *p; NULL for none. */
ConnlogProgress *
connlog_held_progress(const WorkerBatch *exclude, ConnlogProgress *p)
{
	ConnlogHeld h;

	connlog_held_events(exclude, &h);
	return connlog_wal_next_progress(&h, p);
}

/* Publish how far every event is accounted for, for connlog_flush(). */
void
connlog_held_publish_done(void)
{
	uint64		done = read_seq;
	const WorkerBatch *b;

	/* a queued batch read back from WAL holds no ring events, but waits */
	for (int i = 0; (b = held_batch(i)) != NULL; i++)
		if (b != cur || b->batch->seq_end > b->batch->seq_start)
			done = Min(done, b->batch->seq_start);
	connlog_ring_set_done(done);
}

static void
retry_later(WorkerBatch *b)
{
	b->next_attempt = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												  connlog_retry_interval_ms);
	retryq[nretry++] = b;
}

static void
remove_retry(int i)
{
	free_batch(retryq[i]);
	memmove(&retryq[i], &retryq[i + 1], sizeof(WorkerBatch *) * (nretry - i - 1));
	nretry--;
}

/*
 * Read events from the ring into cur until it is full or the ring is
 * empty, skipping those already accounted for (see ring.c).  Returns true
 * if cur should be written now: it is full, or the events this worker
 * holds fill more than half of the ring, which producers wait on.
 */
bool
connlog_held_fill(void)
{
	uint64		tail,
				tail_seq,
				head_seq;
	XLogRecPtr	insert_lsn;
	uint64		head = connlog_ring_snapshot(&tail, &tail_seq, &head_seq,
											 &insert_lsn);
	uint64		pos = read_pos;
	uint64		seq = read_seq;

	if (cur->batch->seq_end == cur->batch->seq_start)
	{
		cur->batch->seq_start = cur->batch->seq_end = seq;
		cur->pos_start = cur->pos_end = pos;
	}
	while (pos < head && !cl_batch_full(cur->batch))
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
			connlog_count(&connlog_counters()->dropped, head_seq - seq);
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

			/*
			 * A predecessor may have written it: doc/internals.md, "The
			 * batches".
			 */
			if (seq < taken_before)
				cur->rewrite = true;
			if (!cl_batch_add(cur->batch, recbuf, len))
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
	/* all of the ring as of the snapshot is consumed (progress.c) */
	if (pos == head && connlog_wal_tracking())
		connlog_wal_consumed(insert_lsn);
	cur->batch->seq_end = seq;
	cur->pos_end = pos;
	read_pos = pos;
	read_seq = seq;
	if (seq > taken_before)
		connlog_ring_set_taken(seq);
	return cl_batch_full(cur->batch) ||
		(cur->batch->nentries > 0 && (read_pos - released_pos) * 2 > connlog_ring_size());
}

/*
 * After the configuration was read again: a shorter retry_interval applies
 * to the batches already queued, too.
 */
void
connlog_held_reloaded(void)
{
	TimestampTz latest;

	latest = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										 connlog_retry_interval_ms);
	for (int i = 0; i < nretry; i++)
		retryq[i]->next_attempt = Min(retryq[i]->next_attempt, latest);
}

/* The ring's first event this worker has not read yet */
uint64
connlog_held_next_seq(void)
{
	return read_seq;
}

/* When the next queued batch is due for a retry; DT_NOEND if none is. */
TimestampTz
connlog_held_next_retry(void)
{
	TimestampTz next = DT_NOEND;
	const WorkerBatch *b;

	for (int i = 0; (b = held_batch(i)) != NULL; i++)
		if (b != cur)
			next = Min(next, b->next_attempt);
	return next;
}

/*
 * Once connected, before the loop: take over the ring from the events
 * this worker's predecessors left, and make the first batch.
 */
void
connlog_held_init(void)
{
	batch_cxt = AllocSetContextCreate(TopMemoryContext, "connlog batches",
									  ALLOCSET_DEFAULT_SIZES);
	recbuf = MemoryContextAlloc(batch_cxt, CL_MAX_RECORD);
	taken_before = connlog_ring_resume(&read_pos, &read_seq);
	released_pos = read_pos;
	cur = new_batch();
}

WorkerBatch *
connlog_held_current(void)
{
	return cur;
}

int
connlog_held_nqueued(void)
{
	return nretry;
}

WorkerBatch *
connlog_held_queued(int i)
{
	return retryq[i];
}

/*
 * cur has been written: every event of it is accounted for (accounted),
 * and cur is emptied for reuse; or it must wait for a retry: it joins the
 * retry queue, and a new batch takes its place.  Then move the ring's
 * tail.
 */
void
connlog_held_current_done(bool accounted)
{
	if (accounted)
		reset_current();
	else
	{
		retry_later(cur);
		cur = new_batch();
	}
	connlog_held_release_ring();
}

/* Queued batch i is accounted for: let go of it, and move the tail. */
void
connlog_held_dequeue(int i)
{
	remove_retry(i);
	connlog_held_release_ring();
}
