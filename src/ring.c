/*-------------------------------------------------------------------------
 *
 * ring.c
 *		connlog's shared memory: the byte ring of encoded events, the
 *		worker's presence and progress, the counters, the status of the
 *		last write and the published columns (ConnlogShared, ring.h).
 *
 * Why the ring is built so: doc/internals.md, "The ring".
 *
 * Locking rules:
 *	- ring.lock (an LWLock) protects ring.head, tail, head_seq, tail_seq
 *	  and the worker's latch, pid, connecting and seen.  Producers hold it
 *	  exclusively to check for room, copy a record to head and advance it.
 *	- The bytes in [tail, head) belong to the worker, the only consumer:
 *	  the release that published head published them, so the worker reads
 *	  them, and sets CL_RING_DONE_FLAG in them, without the lock; it takes
 *	  the lock exclusively only to advance tail.  A successor reads the
 *	  flags after taking the lock, which its predecessor took last.
 *	- taken_seq, done_seq and worker.state are atomics only the worker
 *	  (for state, also its exit callback) writes; flush_requested is set
 *	  by anyone and cleared by the worker.  Readers take them as hints.
 *	- The counters are atomics updated without a lock.  Each event's
 *	  enqueued increment happens before any increment of its outcome, and
 *	  readers read the outcomes first, so pending is never negative.
 *	- connlog_stats reads event times from tail on under ring.lock held
 *	  shared; the worker may set a done flag meanwhile, which changes no
 *	  length, so the reader walks the events right.
 *	- status.mutex (a spinlock) protects last_flush and last_error.
 *	- columns is a sequence lock of its own (columns.c).
 *	- connlog.durability's fields (walshared.h): epoch and started are set at
 *	  initialization; holds_replayed is an atomic only the worker writes.
 *	  last_floor only the worker advances, under ring.lock held shared
 *	  (no other shared holder writes it; producers read it holding the
 *	  lock exclusively): a producer stores it beside a WAL-backed event
 *	  and writes the event's WAL record after it releases the lock, so
 *	  floors never decrease in ring order and each record starts at or
 *	  after its floor.  wal_woken_at is advanced by compare-and-swap.
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
connlog_ring_shmem_init(int ring_size_kb, uint64 crash_wal_pending)
{
	bool		found;
	ConnlogShared *s;

	s = ShmemInitStruct("connlog", connlog_ring_shmem_size(ring_size_kb),
						&found);
	connlog_shared = s;
	if (found)
		return;

	s->ring.lock = &(GetNamedLWLockTranche("connlog"))->lock;
	s->ring.size = (uint64) ring_size_kb * 1024;
	s->ring.head = s->ring.tail = 0;
	s->ring.head_seq = s->ring.tail_seq = 0;
	pg_atomic_init_u64(&s->ring.taken_seq, 0);
	s->worker.latch = NULL;
	s->worker.pid = 0;
	for (int i = 0; i < CL_NUM_CONNECTORS; i++)
		s->worker.connecting[i] = false;
	s->worker.seen = false;
	ConditionVariableInit(&s->ring.space_cv);
	ConditionVariableInit(&s->worker.flush_cv);
	pg_atomic_init_u32(&s->columns.gen, 0);
	s->columns.state = CL_COLUMNS_UNKNOWN;
	pg_atomic_init_u64(&s->worker.done_seq, 0);
	pg_atomic_init_u32(&s->worker.flush_requested, 0);
	/* every counter, so that none added later is left uninitialized */
	for (int i = 0; i < CL_NUM_COUNTERS; i++)
		pg_atomic_init_u64(&((pg_atomic_uint64 *) &s->counters)[i], 0);
	connlog_wal_shmem_init(&s->wal, crash_wal_pending);
	pg_atomic_init_u32(&s->worker.state, CL_STATE_NOT_RUNNING);
	SpinLockInit(&s->status.mutex);
	s->status.last_flush = 0;
	s->status.last_error[0] = '\0';
}

/* Copy len bytes into the ring at byte count pos, wrapping at the end. */
static void
ring_write(ConnlogShared *s, uint64 pos, const char *src, uint32 len)
{
	uint64		off = pos % s->ring.size;
	uint64		first = Min((uint64) len, s->ring.size - off);

	memcpy(s->data + off, src, first);
	if (first < len)
		memcpy(s->data, src + first, len - first);
}

void
connlog_ring_read(uint64 pos, char *dst, uint32 len)
{
	ConnlogShared *s = connlog_shared;
	uint64		off = pos % s->ring.size;
	uint64		first = Min((uint64) len, s->ring.size - off);

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
	uint64		head = *(volatile uint64 *) &s->ring.head;

	(void) *(volatile char *) &s->data[head % s->ring.size];
	(void) *(volatile char *) &s->data[(head + len - 1) % s->ring.size];
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
		LWLockAcquire(s->ring.lock, LW_EXCLUSIVE);
		if (s->ring.size - (s->ring.head - s->ring.tail) >= need)
		{
			bool		below_half = (s->ring.head - s->ring.tail) * 2 <= s->ring.size;
			uint64		unread = s->ring.head_seq -
			pg_atomic_read_u64(&s->ring.taken_seq);
			uint64		pos = s->ring.head;
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
			*seq = s->ring.head_seq;
			s->ring.head += need;
			s->ring.head_seq += nrecs;
			pg_atomic_fetch_add_u64(&s->counters.enqueued, nrecs);
			if ((unread < (uint64) wake_events &&
				 unread + nrecs >= (uint64) wake_events) ||
			(below_half && (s->ring.head - s->ring.tail) * 2 > s->ring.size))
				wake = s->worker.latch;
			result = CL_PUT_STORED;
		}
		else
		{
			wake = s->worker.latch;
			if (mode == CL_PUT_DROP)
			{
				pg_atomic_fetch_add_u64(&s->counters.enqueued, nrecs);
				pg_atomic_fetch_add_u64(&s->counters.dropped, nrecs);
				result = CL_PUT_DROPPED;
			}
			else
				result = CL_PUT_FULL;
		}
		LWLockRelease(s->ring.lock);

		if (wake != NULL)
			SetLatch(wake);
		if (result != CL_PUT_FULL || mode != CL_PUT_WAIT || wait_ms <= 0)
			break;

		/* Recheck once after preparing to sleep, so no wakeup is missed. */
		if (!sleeping)
		{
			ConditionVariablePrepareToSleep(&s->ring.space_cv);
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
			(void) ConditionVariableTimedSleep(&s->ring.space_cv,
											   wait_ms - elapsed_ms,
											   wait_event);
		}
	}
	if (sleeping)
		ConditionVariableCancelSleep();
	return result;
}

/*
 * Store nrecs records at once, or none: ring_put().  The caller has
 * checked that they fit in the ring at all (connlog_ring_entries_fit): a
 * wait for room that can never come would only time out.
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
		connlog_shared->ring.size;
}

/* Wake the worker, e.g. for connlog_flush(); a no-op if none runs. */
void
connlog_ring_wake_worker(void)
{
	ConnlogShared *s = connlog_shared;
	Latch	   *latch;

	LWLockAcquire(s->ring.lock, LW_SHARED);
	latch = s->worker.latch;
	LWLockRelease(s->ring.lock);
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

	LWLockAcquire(s->ring.lock, LW_SHARED);
	head = s->ring.head;
	*tail = s->ring.tail;
	*tail_seq = s->ring.tail_seq;
	*head_seq = s->ring.head_seq;
	if (insert_lsn != NULL)
		*insert_lsn = raise_floor(s);
	LWLockRelease(s->ring.lock);
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
	uint64		pos = s->ring.tail;

	while (pos < s->ring.head)
	{
		connlog_ring_read(pos, (char *) word, sizeof(*word));
		if ((*word & CL_RING_LEN_MASK) < CL_RECORD_FIXED_SIZE)
			break;
		if ((*word & (flags | CL_RING_DONE_FLAG)) == flags)
			return pos;
		pos += cl_ring_entry_size(*word);
	}
	return s->ring.head;
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

	LWLockAcquire(s->ring.lock, LW_SHARED);
	pos = first_held(s, CL_RING_WAL_FLAG, &word);
	if (pos < s->ring.head)
		connlog_ring_read(pos + (word & CL_RING_LEN_MASK) + CL_RING_TIME_SIZE,
						  (char *) &first, sizeof(first));
	*insert_lsn = raise_floor(s);
	LWLockRelease(s->ring.lock);
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

	LWLockAcquire(s->ring.lock, LW_EXCLUSIVE);
	s->ring.tail = tail;
	s->ring.tail_seq = tail_seq;
	LWLockRelease(s->ring.lock);
	ConditionVariableBroadcast(&s->ring.space_cv);
}

/* Register the calling process as the worker. */
void
connlog_ring_attach_worker(void)
{
	ConnlogShared *s = connlog_shared;

	LWLockAcquire(s->ring.lock, LW_EXCLUSIVE);
	s->worker.latch = MyLatch;
	s->worker.pid = MyProcPid;
	s->worker.seen = true;
	LWLockRelease(s->ring.lock);
	/* connlog_flush() waits until this worker has replayed WAL (progress.c) */
	pg_atomic_write_u32(&s->wal.replaying, 1);
	pg_atomic_write_u32(&s->worker.state, CL_STATE_STARTING);
	on_shmem_exit(connlog_ring_detach_worker, (Datum) 0);
	/* connlog_flush() callers may be waiting for a worker to appear */
	ConditionVariableBroadcast(&s->worker.flush_cv);
}

void
connlog_ring_detach_worker(int code, Datum arg)
{
	ConnlogShared *s = connlog_shared;

	LWLockAcquire(s->ring.lock, LW_EXCLUSIVE);
	s->worker.latch = NULL;
	s->worker.pid = 0;
	LWLockRelease(s->ring.lock);
	pg_atomic_write_u32(&s->worker.state, CL_STATE_NOT_RUNNING);
	/* let connlog_flush() callers notice there is no worker */
	ConditionVariableBroadcast(&s->worker.flush_cv);
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

	LWLockAcquire(s->ring.lock, LW_EXCLUSIVE);
	was_connecting = s->worker.connecting[who];
	s->worker.connecting[who] = connecting;
	LWLockRelease(s->ring.lock);
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

	LWLockAcquire(s->ring.lock, LW_SHARED);
	*tail = s->ring.tail;
	*tail_seq = s->ring.tail_seq;
	LWLockRelease(s->ring.lock);
	pg_atomic_write_u64(&s->worker.done_seq, *tail_seq);
	return Max(pg_atomic_read_u64(&s->ring.taken_seq), *tail_seq);
}

/* Publish progress and wake connlog_flush() callers. */
void
connlog_ring_set_done(uint64 done_seq)
{
	ConnlogShared *s = connlog_shared;

	if (pg_atomic_read_u64(&s->worker.done_seq) != done_seq)
	{
		pg_atomic_write_u64(&s->worker.done_seq, done_seq);
		ConditionVariableBroadcast(&s->worker.flush_cv);
	}
}

/* Record the outcome of a write: its time, and the error if it failed. */
void
connlog_ring_note_flush(const char *error)
{
	ConnlogShared *s = connlog_shared;
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&s->status.mutex);
	if (error == NULL)
		s->status.last_flush = now;
	else
		strlcpy(s->status.last_error, error, CONNLOG_LAST_ERROR_LEN);
	SpinLockRelease(&s->status.mutex);
}

/* The worker can write again: what stopped it no longer applies. */
void
connlog_ring_clear_error(void)
{
	ConnlogShared *s = connlog_shared;

	SpinLockAcquire(&s->status.mutex);
	s->status.last_error[0] = '\0';
	SpinLockRelease(&s->status.mutex);
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
		pg_atomic_read_u32(&connlog_shared->worker.state);
}

void
connlog_ring_stats(ConnlogStats *st)
{
	ConnlogShared *s = connlog_shared;
	uint32		word;
	uint64		pos;

	connlog_ring_stats_unlocked(st);

	LWLockAcquire(s->ring.lock, LW_SHARED);
	st->ring_used_bytes = s->ring.head - s->ring.tail;
	st->worker_pid = s->worker.pid;
	pos = first_held(s, 0, &word);
	st->oldest_stored = 0;
	if (pos < s->ring.head)
		connlog_ring_read(pos + (word & CL_RING_LEN_MASK),
						  (char *) &st->oldest_stored, CL_RING_TIME_SIZE);
	LWLockRelease(s->ring.lock);
	st->ring_size_bytes = s->ring.size;
	/* older than anything in the ring: see doc/internals.md, "The ring" */
	if (pg_atomic_read_u32(&s->wal.holds_replayed) != 0)
		st->oldest_stored = s->wal.started;

	SpinLockAcquire(&s->status.mutex);
	st->last_flush = s->status.last_flush;
	strlcpy(st->last_error, s->status.last_error, CONNLOG_LAST_ERROR_LEN);
	SpinLockRelease(&s->status.mutex);
}

void
connlog_ring_set_state(ConnlogWorkerState state)
{
	pg_atomic_write_u32(&connlog_shared->worker.state, (uint32) state);
}

/* The worker holds events read back from WAL, or no longer does. */
void
connlog_ring_set_replayed(bool holds)
{
	pg_atomic_write_u32(&connlog_shared->wal.holds_replayed, holds ? 1 : 0);
}

/* The worker has read the events below seq (see the locking rules) */
void
connlog_ring_set_taken(uint64 seq)
{
	pg_atomic_write_u64(&connlog_shared->ring.taken_seq, seq);
}

/* The worker: has connlog_flush() asked for a flush since it last looked? */
bool
connlog_ring_take_flush_request(void)
{
	return pg_atomic_exchange_u32(&connlog_shared->worker.flush_requested,
								  0) != 0;
}

/* Whether _PG_init registered the worker; at each initialization */
void
connlog_ring_set_registered(bool registered)
{
	connlog_shared->worker.registered = registered;
}

bool
connlog_ring_worker_registered(void)
{
	return connlog_shared->worker.registered;
}

/* The ring's bytes */
uint64
connlog_ring_size(void)
{
	return connlog_shared->ring.size;
}

/*
 * What connlog_flush() watches: the ring's head and the worker, read under
 * one acquisition of the lock.
 */
void
connlog_ring_flush_view(ConnlogFlushView *v)
{
	ConnlogShared *s = connlog_shared;

	LWLockAcquire(s->ring.lock, LW_SHARED);
	v->head_seq = s->ring.head_seq;
	v->worker_pid = s->worker.pid;
	v->worker_seen = s->worker.seen;
	LWLockRelease(s->ring.lock);
}

/* Every event below this sequence number is accounted for */
uint64
connlog_ring_done_seq(void)
{
	return pg_atomic_read_u64(&connlog_shared->worker.done_seq);
}

/* What connlog_flush() sleeps on: broadcast as done_seq moves */
ConditionVariable *
connlog_ring_flush_cv(void)
{
	return &connlog_shared->worker.flush_cv;
}

/*
 * Ask the worker for a flush, unless that is asked already (again: a
 * restarted worker may have missed the request).
 */
void
connlog_ring_request_flush(void)
{
	if (pg_atomic_read_u32(&connlog_shared->worker.flush_requested) == 0)
	{
		pg_atomic_write_u32(&connlog_shared->worker.flush_requested, 1);
		connlog_ring_wake_worker();
	}
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
