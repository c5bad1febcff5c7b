/*-------------------------------------------------------------------------
 *
 * ring.c
 *		Shared memory for connlog: a byte ring of encoded events, the
 *		worker's latch, and the event counters.
 *
 * Layout: one ConnlogShared struct followed by connlog.ring_size bytes of
 * ring.  Events (each a record, batch.h, with what ring.h says follows
 * it) are stored back to back and may wrap around the end of the ring;
 * head and tail are monotonic byte counts, so the ring holds head - tail
 * bytes and a position is count % size.  head_seq and tail_seq number the
 * events the same way.
 *
 * The ring frees an event only once it is accounted for: written,
 * rejected or dropped by a committed decision of the worker.  The worker
 * reads with a cursor of its own, keeps what it read in its batches, and
 * moves tail only past events that are accounted for.  So an event the
 * worker holds when it exits (pg_terminate_backend, an ERROR, an expired
 * shutdown_timeout) is still in the ring for its successor, and a ring
 * full of held events is back-pressure on producers (connlog.overflow),
 * never a loss.  Batches are accounted for out of order (one waits in the
 * retry queue while newer ones are written), so an event accounted for
 * while an older one is still held gets CL_RING_DONE_FLAG in its length
 * word; tail then passes over it later, and a successor, which starts
 * reading at tail, skips it.  taken_seq tells a successor which of the
 * events it finds there a predecessor had read, and so may have written
 * in part (flush.c says what follows from that).
 *
 * connlog_stats.lag is the age of the oldest event not accounted for.
 * Since the ring frees events only once they are accounted for, that is
 * the first event from tail on without CL_RING_DONE_FLAG, whether the
 * worker has not read it yet, holds it in its current batch, or holds it
 * in its retry queue.  So each event carries the time it was stored (read
 * once per attempt, before the lock: ring order and time order may differ
 * by the time a producer waits for the lock, which lag can ignore), and a
 * reader finds the oldest at tail without the worker's help.  The 8 bytes
 * per event (some 6 % of a typical record) buy a lag that needs nothing
 * on the hot path beyond reading the clock; a separate table of times
 * would need its own space management and still one write per event.
 * Events read back from WAL (wal.c) are not in the ring, and their WAL
 * records carry no time: while the worker holds any (holds_replayed),
 * lag counts from started, when this shared memory was made.  They were
 * all stored in an earlier life (replay leaves out the current epoch's),
 * so that is a lower bound of their age.
 *
 * Locking rules:
 *	- lock (an LWLock of the "connlog" tranche) protects head, tail,
 *	  head_seq, tail_seq, worker_latch, worker_pid, connecting and
 *	  worker_seen.
 *	- Producers hold lock exclusively while they check for room, copy a
 *	  record to head and advance head.  A record is small (at most
 *	  CL_MAX_RECORD, typically ~120 bytes), so the copy under the lock is
 *	  cheaper than any scheme that reserves and then publishes.
 *	- The bytes in [tail, head) belong to the worker, the only consumer: no
 *	  producer writes there, and the lock release that published head also
 *	  published the bytes, so the worker copies them out without the lock,
 *	  and sets CL_RING_DONE_FLAG in them without it too.  It takes lock
 *	  exclusively only to advance tail; a successor reads the flags after
 *	  taking lock, which its predecessor took last when it detached.
 *	- taken_seq is an atomic only the worker writes; producers read it
 *	  to count the events it has not read yet.
	- The counters are atomics updated without the lock.  Each event's
 *	  enqueued increment happens before any increment of its outcome
 *	  (merged, written, rejected, dropped), and readers read the outcomes
 *	  first, so enqueued - outcomes (pending) is never negative.
 *	- done_seq and flush_requested are atomics; only the worker advances
 *	  done_seq, and flush_requested is set by anyone, cleared by the worker.
 *	- worker_state and holds_replayed are atomics only the worker (and,
 *	  for worker_state, its exit callback) writes; readers take them as
 *	  hints, without any lock.
 *	- connlog_stats reads the event times from tail on under lock held
 *	  shared, which keeps tail and the bytes in [tail, head) in place.
 *	  The worker may set CL_RING_DONE_FLAG meanwhile: that changes one bit
 *	  of a length word and none of its length, so the reader walks the
 *	  events right, and at worst takes the time of one the worker has
 *	  accounted for that moment.  started is set at initialization and
 *	  never changes.
 *	- mutex (a spinlock) protects last_flush and last_error.
 *	- columns is a sequence lock of its own (connlog_columns_publish).
 *	- connlog.durability (wal.c): epoch is set at initialization and never
 *	  changes.  last_floor is a WAL insert position the worker read; only
 *	  the worker advances it, under lock held shared (no other shared
 *	  holder writes it, so it never races a producer, who reads it under
 *	  lock held exclusively).  A producer stores a WAL-backed event with
 *	  last_floor beside it as its floor, so floors never decrease in ring
 *	  order, and writes the event's WAL record after it releases lock, so
 *	  the record starts at or after the floor.  The worker raises
 *	  last_floor before producers may store WAL-backed events (at its
 *	  start, before the slot is ready) and at every snapshot, so every
 *	  event stored after a snapshot has a floor at least the insert
 *	  position that snapshot read.  wal_woken_at is an atomic that
 *	  producers advance by compare-and-swap, without the lock.
 *
 * IDENTIFICATION
 *	  src/ring.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "batch.h"
#include "compat.h"
#include "ring.h"

ConnlogShared *connlog_shared = NULL;

Size
connlog_ring_shmem_size(int ring_size_kb)
{
	return add_size(offsetof(ConnlogShared, data),
					mul_size((Size) ring_size_kb, 1024));
}

/* Called from the shmem_startup_hook, with AddinShmemInitLock held. */
void
connlog_ring_shmem_init(int ring_size_kb, uint64 crash_mem_pending,
						uint64 crash_wal_pending)
{
	bool		found;
	ConnlogShared *s;

	s = ShmemInitStruct("connlog", connlog_ring_shmem_size(ring_size_kb),
						&found);
	connlog_shared = s;
	if (found)
		return;

	s->lock = &(GetNamedLWLockTranche("connlog"))->lock;
	s->size = (uint64) ring_size_kb * 1024;
	s->head = s->tail = 0;
	s->head_seq = s->tail_seq = 0;
	pg_atomic_init_u64(&s->taken_seq, 0);
	s->worker_latch = NULL;
	s->worker_pid = 0;
	for (int i = 0; i < CL_NUM_CONNECTORS; i++)
		s->connecting[i] = false;
	s->worker_seen = false;
	ConditionVariableInit(&s->space_cv);
	ConditionVariableInit(&s->flush_cv);
	pg_atomic_init_u32(&s->columns.gen, 0);
	s->columns.state = CL_COLUMNS_UNKNOWN;
	pg_atomic_init_u64(&s->done_seq, 0);
	pg_atomic_init_u32(&s->flush_requested, 0);
	pg_atomic_init_u64(&s->counters.enqueued, 0);
	pg_atomic_init_u64(&s->counters.merged, 0);
	pg_atomic_init_u64(&s->counters.written, 0);
	pg_atomic_init_u64(&s->counters.rejected, 0);
	pg_atomic_init_u64(&s->counters.dropped, 0);
	pg_atomic_init_u64(&s->counters.batches, 0);
	pg_atomic_init_u64(&s->counters.write_errors, 0);
	pg_atomic_init_u64(&s->counters.retries, 0);
	pg_atomic_init_u64(&s->counters.purged, 0);
	pg_atomic_init_u64(&s->counters.wal_enqueued, 0);
	pg_atomic_init_u64(&s->counters.wal_accounted, 0);
	connlog_wal_shmem_init(&s->wal, crash_wal_pending);
	pg_atomic_init_u32(&s->worker_state, CL_STATE_NOT_RUNNING);
	SpinLockInit(&s->mutex);
	s->last_flush = 0;
	s->last_error[0] = '\0';
}

/* Copy len bytes into the ring at byte count pos, wrapping at the end. */
static void
ring_write(ConnlogShared *s, uint64 pos, const char *src, uint32 len)
{
	uint64		off = pos % s->size;
	uint64		first = Min((uint64) len, s->size - off);

	memcpy(s->data + off, src, first);
	if (first < len)
		memcpy(s->data, src + first, len - first);
}

void
connlog_ring_read(uint64 pos, char *dst, uint32 len)
{
	ConnlogShared *s = connlog_shared;
	uint64		off = pos % s->size;
	uint64		first = Min((uint64) len, s->size - off);

	memcpy(dst, s->data + off, first);
	if (first < len)
		memcpy(dst + first, s->data, len - first);
}

/*
 * Fault in, before taking the lock, the ring pages a record is about to
 * be copied to.  A backend's first write to each 4kB page of the ring
 * takes a minor fault, which costs microseconds; taken under the lock it
 * stalls every producer, and it recurs for as long as new backends come
 * and go.  A read fault maps a window of pages at once (Linux fault-around
 * maps 16) and later writes to them do not fault, so two reads move the
 * cost out of the lock and make it rarer.  head is read without the lock:
 * it is only a hint of where the record will land.
 */
static inline void
prefault(ConnlogShared *s, uint32 len)
{
	uint64		head = *(volatile uint64 *) &s->head;

	(void) *(volatile char *) &s->data[head % s->size];
	(void) *(volatile char *) &s->data[(head + len - 1) % s->size];
}

/*
 * Store nrecs records, back to back in recs[0 .. len), all or none.  When
 * the ring has no room for all of them, CL_PUT_WAIT sleeps on space_cv
 * for up to wait_ms (interruptibly: ConditionVariableTimedSleep runs
 * CHECK_FOR_INTERRUPTS), CL_PUT_ERROR gives up at once, and CL_PUT_DROP
 * counts the events as enqueued and dropped.
 *
 * The worker is woken when the events it has not read yet (those from
 * taken_seq on) reach wake_events (a full batch) or the ring passes half
 * full.  Waking only on those crossings, not on every event above them,
 * keeps the hot path free of signals even while the worker cannot drain
 * (say, while the extension is missing).
 *
 * Each ring entry gets the time of the attempt that stored it.  With wal
 * it also gets CL_RING_WAL_FLAG and the event's LSN floor, last_floor
 * (see the locking rules), and *seq returns the first event's sequence
 * number (the others follow it) for their WAL records, which the caller
 * writes once the lock is released.
 */
static inline ConnlogPutResult
ring_put(const char *recs, uint32 len, uint32 nrecs, ConnlogPutMode mode,
		 int wake_events, long wait_ms, uint32 wait_event, bool wal,
		 uint64 *seq)
{
	ConnlogShared *s = connlog_shared;
	TimestampTz start = 0;
	bool		sleeping = false;
	ConnlogPutResult result;
	uint64		need = len + (uint64) nrecs *
	(CL_RING_TIME_SIZE + (wal ? CL_RING_LSN_SIZE : 0));

	for (;;)
	{
		Latch	   *wake = NULL;
		TimestampTz now = GetCurrentTimestamp();

		prefault(s, (uint32) need);
		LWLockAcquire(s->lock, LW_EXCLUSIVE);
		if (s->size - (s->head - s->tail) >= need)
		{
			bool		below_half = (s->head - s->tail) * 2 <= s->size;
			uint64		unread = s->head_seq -
			pg_atomic_read_u64(&s->taken_seq);
			uint64		pos = s->head;
			uint32		off = 0;

			for (uint32 i = 0; i < nrecs; i++)
			{
				uint32		rlen = cl_record_length(recs + off);

				ring_write(s, pos, recs + off, rlen);
				ring_write(s, pos + rlen, (const char *) &now, sizeof(now));
				pos += rlen + CL_RING_TIME_SIZE;
				if (wal)
				{
					uint32		flagged = rlen | CL_RING_WAL_FLAG;

					ring_write(s, pos - rlen - CL_RING_TIME_SIZE,
							   (const char *) &flagged, sizeof(flagged));
					ring_write(s, pos, (const char *) &s->wal.last_floor,
							   sizeof(XLogRecPtr));
					pos += CL_RING_LSN_SIZE;
				}
				off += rlen;
			}
			if (wal)
				pg_atomic_fetch_add_u64(&s->counters.wal_enqueued, nrecs);
			*seq = s->head_seq;
			s->head += need;
			s->head_seq += nrecs;
			pg_atomic_fetch_add_u64(&s->counters.enqueued, nrecs);
			if ((unread < (uint64) wake_events &&
				 unread + nrecs >= (uint64) wake_events) ||
				(below_half && (s->head - s->tail) * 2 > s->size))
				wake = s->worker_latch;
			result = CL_PUT_STORED;
		}
		else
		{
			wake = s->worker_latch;
			if (mode == CL_PUT_DROP)
			{
				pg_atomic_fetch_add_u64(&s->counters.enqueued, nrecs);
				pg_atomic_fetch_add_u64(&s->counters.dropped, nrecs);
				result = CL_PUT_DROPPED;
			}
			else
				result = CL_PUT_FULL;
		}
		LWLockRelease(s->lock);

		if (wake != NULL)
			SetLatch(wake);
		if (result != CL_PUT_FULL || mode != CL_PUT_WAIT || wait_ms <= 0)
			break;

		/* Recheck once after preparing to sleep, so no wakeup is missed. */
		if (!sleeping)
		{
			ConditionVariablePrepareToSleep(&s->space_cv);
			start = GetCurrentTimestamp();
			sleeping = true;
			continue;
		}
		else
		{
			long		elapsed_ms;

			elapsed_ms = (long) ((GetCurrentTimestamp() - start) / 1000);
			if (elapsed_ms >= wait_ms)
				break;
			(void) ConditionVariableTimedSleep(&s->space_cv,
											   wait_ms - elapsed_ms,
											   wait_event);
		}
	}
	if (sleeping)
		ConditionVariableCancelSleep();
	return result;
}

/* Store one record: ring_put() of one */
ConnlogPutResult
connlog_ring_put(const char *rec, uint32 len, ConnlogPutMode mode,
				 int wake_events, long wait_ms, uint32 wait_event,
				 bool wal, uint64 *seq)
{
	return ring_put(rec, len, 1, mode, wake_events, wait_ms, wait_event,
					wal, seq);
}

/*
 * Store nrecs records at once, or none (connlog_enqueue_batch).  The
 * caller has checked that they fit in the ring at all
 * (connlog_ring_entries_fit): a wait for room that can never come would
 * only time out.
 */
ConnlogPutResult
connlog_ring_put_many(const char *recs, uint32 len, uint32 nrecs,
					  ConnlogPutMode mode, int wake_events, long wait_ms,
					  uint32 wait_event, bool wal, uint64 *seq)
{
	return ring_put(recs, len, nrecs, mode, wake_events, wait_ms,
					wait_event, wal, seq);
}

/* Could nrecs records of len bytes in all fit in the empty ring? */
bool
connlog_ring_entries_fit(uint64 len, uint32 nrecs, bool wal)
{
	return len + (uint64) nrecs *
		(CL_RING_TIME_SIZE + (wal ? CL_RING_LSN_SIZE : 0)) <=
		connlog_shared->size;
}

/*
 * The columns of the table the rows go to that extra may name, which the
 * worker publishes each time it prepares its statements (writer.c), for
 * connlog_enqueue to refuse a key that names none.  A sequence lock: the
 * worker, the only writer, makes gen odd while it writes, and a reader
 * retries while gen is odd or changed under it, so producers take no lock
 * for it (and a NULL extra never reads it at all).
 */
void
connlog_columns_publish(ConnlogColumnsState state, Oid relid,
						const char *names, uint32 len)
{
	ConnlogColumns *c = &connlog_shared->columns;

	if (state == CL_COLUMNS_LISTED && len > CL_COLUMN_NAMES_SIZE)
		state = CL_COLUMNS_UNKNOWN;
	pg_atomic_fetch_add_u32(&c->gen, 1);	/* a full barrier */
	c->state = state;
	c->relid = relid;
	c->len = state == CL_COLUMNS_LISTED ? len : 0;
	if (c->len > 0)
		memcpy(c->names, names, len);
	pg_atomic_fetch_add_u32(&c->gen, 1);
}

/*
 * Does the published list name key[0 .. len)?  CL_COLUMNS_UNKNOWN if
 * nothing is published (the worker checks the key when it writes),
 * CL_COLUMNS_ANY if any key goes (connection_logs keeps them all), else
 * CL_COLUMNS_LISTED if the list has it, and CL_COLUMNS_MISSING, with the
 * table in *relid, if not.
 */
ConnlogColumnsState
connlog_columns_find(const char *key, uint32 len, Oid *relid)
{
	ConnlogColumns *c = &connlog_shared->columns;

	for (;;)
	{
		uint32		gen = pg_atomic_read_u32(&c->gen);
		ConnlogColumnsState state;

		if (gen & 1)
		{
			pg_spin_delay();
			continue;
		}
		pg_read_barrier();
		state = c->state;
		*relid = c->relid;
		if (state == CL_COLUMNS_LISTED)
		{
			uint32		n = Min(c->len, CL_COLUMN_NAMES_SIZE);
			uint32		pos = 0;

			/* names end with a NUL each; a torn read is retried below */
			state = CL_COLUMNS_MISSING;
			while (pos < n)
			{
				uint32		l = strnlen(c->names + pos, n - pos);

				if (l == len && memcmp(c->names + pos, key, len) == 0)
				{
					state = CL_COLUMNS_LISTED;
					break;
				}
				pos += l + 1;
			}
		}
		pg_read_barrier();
		if (pg_atomic_read_u32(&c->gen) == gen)
			return state;
	}
}

/* Wake the worker, e.g. for connlog_flush(); a no-op if none runs. */
void
connlog_ring_wake_worker(void)
{
	ConnlogShared *s = connlog_shared;
	Latch	   *latch;

	LWLockAcquire(s->lock, LW_SHARED);
	latch = s->worker_latch;
	LWLockRelease(s->lock);
	if (latch != NULL)
		SetLatch(latch);
}

/*
 * The worker, holding lock shared: raise last_floor to the WAL insert
 * position, and return that position.
 */
static XLogRecPtr
raise_floor(ConnlogShared *s)
{
	XLogRecPtr	insert_lsn = GetXLogInsertRecPtr();

	s->wal.last_floor = Max(s->wal.last_floor, insert_lsn);
	return insert_lsn;
}

/*
 * The worker's view of what it may consume: bytes up to head.  If
 * insert_lsn is not NULL it gets the WAL insert position as of the same
 * moment, and last_floor is raised to it: every WAL-backed event stored
 * later has a floor at least that.
 */
uint64
connlog_ring_snapshot(uint64 *tail, uint64 *tail_seq, uint64 *head_seq,
					  XLogRecPtr *insert_lsn)
{
	ConnlogShared *s = connlog_shared;
	uint64		head;

	LWLockAcquire(s->lock, LW_SHARED);
	head = s->head;
	*tail = s->tail;
	*tail_seq = s->tail_seq;
	*head_seq = s->head_seq;
	if (insert_lsn != NULL)
		*insert_lsn = raise_floor(s);
	LWLockRelease(s->lock);
	return head;
}

/*
 * The position of the oldest event in the ring that is not accounted for
 * and has the length word flags in flags, with its length word in *word;
 * head if there is none (or the ring is corrupt from there on: the
 * worker's drain says so).  The caller holds lock.
 */
static uint64
first_held(ConnlogShared *s, uint32 flags, uint32 *word)
{
	uint64		pos = s->tail;

	while (pos < s->head)
	{
		connlog_ring_read(pos, (char *) word, sizeof(*word));
		if ((*word & CL_RING_LEN_MASK) < CL_RECORD_FIXED_SIZE)
			break;
		if ((*word & (flags | CL_RING_DONE_FLAG)) == flags)
			return pos;
		pos += cl_ring_entry_size(*word);
	}
	return s->head;
}

/*
 * The LSN floor of the oldest WAL-backed event in the ring that is not
 * accounted for, or InvalidXLogRecPtr if it holds none; *insert_lsn gets
 * the WAL insert position as of the same moment, and last_floor is raised
 * to that position, as in connlog_ring_snapshot().  Only the worker calls
 * this, before it reads anything (at start, to bound its replay of WAL).
 */
XLogRecPtr
connlog_ring_first_wal_floor(XLogRecPtr *insert_lsn)
{
	ConnlogShared *s = connlog_shared;
	XLogRecPtr	first = InvalidXLogRecPtr;
	uint32		word;
	uint64		pos;

	LWLockAcquire(s->lock, LW_SHARED);
	pos = first_held(s, CL_RING_WAL_FLAG, &word);
	if (pos < s->head)
		connlog_ring_read(pos + (word & CL_RING_LEN_MASK) + CL_RING_TIME_SIZE,
						  (char *) &first, sizeof(first));
	*insert_lsn = raise_floor(s);
	LWLockRelease(s->lock);
	return first;
}

/*
 * The worker has accounted for the events in [from, to) while an older
 * one is still held: flag them, so that a successor skips them.  Without
 * the lock: see the locking rules.
 */
void
connlog_ring_mark_done(uint64 from, uint64 to)
{
	for (uint64 pos = from; pos < to;)
	{
		uint32		word;

		connlog_ring_read(pos, (char *) &word, sizeof(word));
		if ((word & CL_RING_LEN_MASK) < CL_RECORD_FIXED_SIZE)
			break;				/* corrupt: the worker has counted it */
		if (!(word & CL_RING_DONE_FLAG))
		{
			word |= CL_RING_DONE_FLAG;
			ring_write(connlog_shared, pos, (const char *) &word, sizeof(word));
		}
		pos += cl_ring_entry_size(word);
	}
}

/* The worker has accounted for everything before tail; let producers in. */
void
connlog_ring_release(uint64 tail, uint64 tail_seq)
{
	ConnlogShared *s = connlog_shared;

	LWLockAcquire(s->lock, LW_EXCLUSIVE);
	s->tail = tail;
	s->tail_seq = tail_seq;
	LWLockRelease(s->lock);
	ConditionVariableBroadcast(&s->space_cv);
}

/* Register the calling process as the worker. */
void
connlog_ring_attach_worker(void)
{
	ConnlogShared *s = connlog_shared;

	LWLockAcquire(s->lock, LW_EXCLUSIVE);
	s->worker_latch = MyLatch;
	s->worker_pid = MyProcPid;
	s->worker_seen = true;
	LWLockRelease(s->lock);
	/* connlog_flush() waits until this worker has replayed WAL (wal.c) */
	pg_atomic_write_u32(&s->wal.replaying, 1);
	pg_atomic_write_u32(&s->worker_state, CL_STATE_STARTING);
	on_shmem_exit(connlog_ring_detach_worker, (Datum) 0);
	/* connlog_flush() callers may be waiting for a worker to appear */
	ConditionVariableBroadcast(&s->flush_cv);
}

void
connlog_ring_detach_worker(int code, Datum arg)
{
	ConnlogShared *s = connlog_shared;

	LWLockAcquire(s->lock, LW_EXCLUSIVE);
	s->worker_latch = NULL;
	s->worker_pid = 0;
	LWLockRelease(s->lock);
	pg_atomic_write_u32(&s->worker_state, CL_STATE_NOT_RUNNING);
	/* let connlog_flush() callers notice there is no worker */
	ConditionVariableBroadcast(&s->flush_cv);
}

/*
 * Set or clear who's "connecting" mark; returns what it was, true if the
 * previous process of that kind died connecting (see connect.c).
 */
bool
connlog_ring_set_connecting(ConnlogConnector who, bool connecting)
{
	ConnlogShared *s = connlog_shared;
	bool		was_connecting;

	LWLockAcquire(s->lock, LW_EXCLUSIVE);
	was_connecting = s->connecting[who];
	s->connecting[who] = connecting;
	LWLockRelease(s->lock);
	return was_connecting;
}

/*
 * A worker starts: where to read from (*tail, *tail_seq), and how far its
 * predecessors read (the return value).  Nothing before tail is held by
 * anyone, so that is also how far every event is accounted for.
 */
uint64
connlog_ring_resume(uint64 *tail, uint64 *tail_seq)
{
	ConnlogShared *s = connlog_shared;

	LWLockAcquire(s->lock, LW_SHARED);
	*tail = s->tail;
	*tail_seq = s->tail_seq;
	LWLockRelease(s->lock);
	pg_atomic_write_u64(&s->done_seq, *tail_seq);
	return Max(pg_atomic_read_u64(&s->taken_seq), *tail_seq);
}

/* Publish progress and wake connlog_flush() callers. */
void
connlog_ring_set_done(uint64 done_seq)
{
	ConnlogShared *s = connlog_shared;

	if (pg_atomic_read_u64(&s->done_seq) != done_seq)
	{
		pg_atomic_write_u64(&s->done_seq, done_seq);
		ConditionVariableBroadcast(&s->flush_cv);
	}
}

/* Record the outcome of a write: its time, and the error if it failed. */
void
connlog_ring_note_flush(const char *error)
{
	ConnlogShared *s = connlog_shared;
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&s->mutex);
	if (error == NULL)
		s->last_flush = now;
	else
		strlcpy(s->last_error, error, CONNLOG_LAST_ERROR_LEN);
	SpinLockRelease(&s->mutex);
}

/* The worker can write again: what stopped it no longer applies. */
void
connlog_ring_clear_error(void)
{
	ConnlogShared *s = connlog_shared;

	SpinLockAcquire(&s->mutex);
	s->last_error[0] = '\0';
	SpinLockRelease(&s->mutex);
}

/* The counters only, without taking any lock. */
void
connlog_ring_stats_unlocked(ConnlogStats *st)
{
	ConnlogCounters *c = &connlog_shared->counters;

	/* outcomes first, then enqueued: see the locking rules above */
	st->merged = pg_atomic_read_u64(&c->merged);
	st->written = pg_atomic_read_u64(&c->written);
	st->rejected = pg_atomic_read_u64(&c->rejected);
	st->dropped = pg_atomic_read_u64(&c->dropped);
	pg_memory_barrier();
	st->enqueued = pg_atomic_read_u64(&c->enqueued);
	st->pending = st->enqueued -
		(st->merged + st->written + st->rejected + st->dropped);
	st->batches = pg_atomic_read_u64(&c->batches);
	st->write_errors = pg_atomic_read_u64(&c->write_errors);
	st->retries = pg_atomic_read_u64(&c->retries);
	st->purged = pg_atomic_read_u64(&c->purged);
	st->worker_state = (ConnlogWorkerState)
		pg_atomic_read_u32(&connlog_shared->worker_state);
}

void
connlog_ring_stats(ConnlogStats *st)
{
	ConnlogShared *s = connlog_shared;
	uint32		word;
	uint64		pos;

	connlog_ring_stats_unlocked(st);

	LWLockAcquire(s->lock, LW_SHARED);
	st->ring_used_bytes = s->head - s->tail;
	st->worker_pid = s->worker_pid;
	pos = first_held(s, 0, &word);
	st->oldest_stored = 0;
	if (pos < s->head)
		connlog_ring_read(pos + (word & CL_RING_LEN_MASK),
						  (char *) &st->oldest_stored, CL_RING_TIME_SIZE);
	LWLockRelease(s->lock);
	st->ring_size_bytes = s->size;
	/* older than anything in the ring: see the file header */
	if (pg_atomic_read_u32(&s->wal.holds_replayed) != 0)
		st->oldest_stored = s->wal.started;

	SpinLockAcquire(&s->mutex);
	st->last_flush = s->last_flush;
	strlcpy(st->last_error, s->last_error, CONNLOG_LAST_ERROR_LEN);
	SpinLockRelease(&s->mutex);
}

void
connlog_ring_set_state(ConnlogWorkerState state)
{
	pg_atomic_write_u32(&connlog_shared->worker_state, (uint32) state);
}

/* The worker holds events read back from WAL, or no longer does. */
void
connlog_ring_set_replayed(bool holds)
{
	pg_atomic_write_u32(&connlog_shared->wal.holds_replayed, holds ? 1 : 0);
}

/* connlog_stats.worker_state; doc/connlog.md lists the same words */
const char *
connlog_worker_state_label(ConnlogWorkerState state)
{
	switch (state)
	{
		case CL_STATE_NOT_RUNNING:
			return "not running";
		case CL_STATE_STARTING:
			return "starting";
		case CL_STATE_IDLE:
			return "idle";
		case CL_STATE_WRITING:
			return "writing";
		case CL_STATE_PURGING:
			return "purging";
		case CL_STATE_RETRY_QUEUE_FULL:
			return "retry queue full";
		case CL_STATE_NO_DATABASE:
			return "waiting for database";
		case CL_STATE_NO_ROLE:
			return "waiting for role";
		case CL_STATE_ROLE_NOLOGIN:
			return "role cannot log in";
		case CL_STATE_NO_EXTENSION:
			return "waiting for extension";
		case CL_STATE_NO_PRIVILEGE:
			return "missing privileges";
		case CL_STATE_BROKEN:
			return "cannot prepare statements";
		case CL_STATE_EXITING:
			return "exiting";
	}
	return "unknown";
}
