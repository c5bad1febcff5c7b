/*-------------------------------------------------------------------------
 *
 * batches.c
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
 * The interface with worker.c (batches.h).  What worker.c's loop asks of
 * this side: once connected, connlog_batches_init(); while the worker can
 * write, to replay, retry, drain and write the current batch; each turn, to publish how far
 * events are accounted for, and when the next retry is due and whether
 * the retry queue is full (for its sleep and its published state); after
 * a reload, connlog_batches_reloaded(); on SIGTERM,
 * connlog_batches_before_exit(), which writes what it can by the deadline.
 * What this side reports back, through the ConnlogBatchesHooks it was given:
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
#include "wal.h"

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
			break;				/* wal.c checked the sizes: cannot happen */
		if (cur->nwal == 0)
			cur->lsn_floor = floor;
		cur->nwal++;
		if (!cur->replayed)
			connlog_ring_set_replayed(true);
		cur->replayed = true;
		cur->batch->rewrite = true;
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
 * for, and write them (see wal.c).  Returns false if the extension is
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
 * and store the progress an exiting worker leaves (wal.c).
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
