/*-------------------------------------------------------------------------
 *
 * batches.c
 *		The worker's batches, as worker.c sees them: replay, retry, drain,
 *		write the current batch, and write what can be written before exit.
 *
 * What worker.c's loop asks of this side (batches.h): once connected,
 * connlog_batches_init(); while the worker can write, to replay, retry,
 * drain and write the current batch; each turn, to publish how far
 * events are accounted for, when the next retry is due and whether the
 * retry queue is full; after a reload, connlog_batches_reloaded(); on
 * SIGTERM, connlog_batches_exit_by() and connlog_batches_before_exit().
 * What this side reports back goes through the ConnlogBatchesHooks it
 * was given.  Below this file, held.c owns what the worker holds and the
 * counting of every event's outcome, and batchwrite.c writes one batch.
 * See doc/internals.md, "The batches".
 *
 * Only the worker's process uses this file.
 *
 * IDENTIFICATION
 *	  src/batches.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "utils/timestamp.h"

#include "batch.h"
#include "batches.h"
#include "batchwrite.h"
#include "connlog.h"
#include "held.h"
#include "ring.h"
#include "progress.h"

/* what this side asks of the worker's process (see batches.h) */
static const ConnlogBatchesHooks *worker;

/* Write cur; if it has to wait, move it to the retry queue. */
static void
write_current(void)
{
	connlog_held_current_done(connlog_batch_write(connlog_held_current(),
												  false));
}

/* Retry the queued batches that are due. */
void
connlog_batches_retry(TimestampTz now)
{
	int			i = 0;

	while (i < connlog_held_nqueued() && worker->can_write())
	{
		WorkerBatch *b = connlog_held_queued(i);

		if (b->next_attempt > now && !connlog_batch_write_exiting())
		{
			i++;
			continue;
		}
		if (connlog_batch_write(b, true))
		{
			connlog_held_dequeue(i);
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

/* Drain the ring into batches and write the full ones. */
void
connlog_batches_drain(void)
{
	while (connlog_held_nqueued() < connlog_retry_queue_size && worker->can_write())
	{
		CHECK_FOR_INTERRUPTS();
		if (!connlog_held_fill())
			break;
		write_current();
		if (ShutdownRequestPending)
			break;
	}
}

/* Write cur now, if the retry queue has room for it should it fail. */
void
connlog_batches_write_current(void)
{
	if (worker->can_write() && connlog_held_nqueued() < connlog_retry_queue_size)
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
	WorkerBatch *cur = connlog_held_current();

	while (off + sizeof(uint32) <= nbytes)
	{
		uint32		len = cl_record_length(data + off);

		if (len < sizeof(uint32) || off + len > nbytes)
			break;				/* replay.c checked the sizes: cannot happen */
		if (cur->nwal == 0)
			cur->lsn_floor = floor;
		cur->nwal++;
		if (!cur->replayed)
			connlog_ring_set_replayed(true);
		cur->replayed = true;
		cur->rewrite = true;
		if (!cl_batch_add(cur->batch, data + off, len))
		{
			ereport(WARNING,
					(errmsg("connlog discarded a malformed event record read from WAL")));
			cur->ndropped++;
		}
		off += len;
		if (cl_batch_full(cur->batch))
		{
			write_current();
			cur = connlog_held_current();
		}
	}
	write_current();
}

/* for connlog_wal_replay_at_start() */
static void
held_now(ConnlogHeld *h)
{
	connlog_held_events(NULL, h);
}

/*
 * Once connected, before the loop: take over the ring from the events
 * this worker's predecessors left, and make the first batch.
 */
void
connlog_batches_init(const ConnlogBatchesHooks *hooks)
{
	worker = hooks;
	connlog_batch_write_init(hooks);
	connlog_held_init();
}

/*
 * Read back from WAL the WAL-backed events no committed write accounted
 * for, and write them (progress.c).  Returns false if the extension is
 * missing.
 */
bool
connlog_batches_replay(void)
{
	if (!connlog_wal_replay_at_start(feed_replayed, held_now))
		return false;
	/* a predecessor's replayed events are written, read again, or lost */
	connlog_held_release_ring();
	return true;
}

/* Is the retry queue full?  Then the ring is not drained. */
bool
connlog_batches_queue_full(void)
{
	return connlog_held_nqueued() >= connlog_retry_queue_size;
}

/*
 * SIGTERM: the worker drains before it exits, and every write ends by
 * deadline.  From now on a failure is not retried, and a statement is
 * not cancelled by another SIGTERM (the worker's handler asks
 * connlog_batches_exiting()).
 */
void
connlog_batches_exit_by(TimestampTz deadline)
{
	connlog_batch_write_exit_by(deadline);
}

bool
connlog_batches_exiting(void)
{
	return connlog_batch_write_exiting();
}

/*
 * The drain: write every event before target, and what the retry queue
 * holds, by the deadline; then publish how far events are accounted for
 * and store the progress an exiting worker leaves (progress.c).
 */
void
connlog_batches_before_exit(uint64 target)
{
	ConnlogHeld held;

	if (worker->can_write())
	{
		connlog_batches_retry(GetCurrentTimestamp());
		while (worker->can_write() && connlog_held_next_seq() < target &&
			   connlog_held_nqueued() < connlog_retry_queue_size && connlog_batch_write_budget())
		{
			connlog_held_fill();
			write_current();
		}
		if (connlog_held_nqueued() < connlog_retry_queue_size)
			write_current();
	}
	connlog_held_publish_done();
	connlog_held_events(NULL, &held);
	connlog_wal_store_exit_progress(&held);
}

/* Publish how far every event is accounted for, for connlog_flush(). */
void
connlog_batches_publish_done(void)
{
	connlog_held_publish_done();
}

/* The ring's first event this worker has not read yet */
uint64
connlog_batches_next_seq(void)
{
	return connlog_held_next_seq();
}

/* When the next queued batch is due for a retry; DT_NOEND if none is. */
TimestampTz
connlog_batches_next_retry(void)
{
	return connlog_held_next_retry();
}

/*
 * After the configuration was read again: a shorter retry_interval applies
 * to the batches already queued, too.
 */
void
connlog_batches_reloaded(void)
{
	connlog_held_reloaded();
}
