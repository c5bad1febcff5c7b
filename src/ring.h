/*-------------------------------------------------------------------------
 *
 * ring.h
 *		The shared-memory event ring and the counters beside it.
 *
 * See ring.c for the layout and the locking rules.
 *
 * IDENTIFICATION
 *	  src/ring.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_RING_H
#define CONNLOG_RING_H

#include "access/xlogdefs.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "connlog.h"

#define CONNLOG_LAST_ERROR_LEN	256

/*
 * Event counters; doc/connlog.md says what each one means.  Only
 * pg_atomic_uint64 members: ring.c initializes them as an array of
 * CL_NUM_COUNTERS.
 */
typedef struct ConnlogCounters
{
	pg_atomic_uint64 enqueued;
	pg_atomic_uint64 merged;
	pg_atomic_uint64 written;
	pg_atomic_uint64 rejected;
	pg_atomic_uint64 dropped;
	pg_atomic_uint64 batches;
	pg_atomic_uint64 write_errors;
	pg_atomic_uint64 retries;
	pg_atomic_uint64 purged;	/* rows deleted by connlog.retention */
	/* connlog.durability: WAL-backed events stored, and accounted for */
	pg_atomic_uint64 wal_enqueued;
	pg_atomic_uint64 wal_accounted;
} ConnlogCounters;

#define CL_NUM_COUNTERS (sizeof(ConnlogCounters) / sizeof(pg_atomic_uint64))

/*
 * An event is stored in the ring as its record followed by the time it was
 * stored (a TimestampTz, for connlog_stats.lag; see ring.c).  A WAL-backed
 * event (connlog.durability = wal or flush) has this bit set in its length
 * word, and its 8-byte LSN floor after the time: a WAL position its WAL
 * record, written after the event is in the ring, starts at or after (see
 * doc/internals.md, "Order and progress").
 */
#define CL_RING_WAL_FLAG		0x80000000U
#define CL_RING_TIME_SIZE		sizeof(TimestampTz)
#define CL_RING_LSN_SIZE		sizeof(XLogRecPtr)

/*
 * Set by the worker in the length word of an event it has accounted for
 * while an older one is still held (see ring.c): a successor skips it.
 */
#define CL_RING_DONE_FLAG		0x40000000U
#define CL_RING_LEN_MASK		(~(CL_RING_WAL_FLAG | CL_RING_DONE_FLAG))

/* The ring bytes of the event whose length word is word */
static inline uint32
cl_ring_entry_size(uint32 word)
{
	return (word & CL_RING_LEN_MASK) + CL_RING_TIME_SIZE +
		((word & CL_RING_WAL_FLAG) ? CL_RING_LSN_SIZE : 0);
}

/*
 * What the worker is doing, for connlog_stats.worker_state and for the
 * ring-full error to say why the ring is not draining.
 */
typedef enum ConnlogWorkerState
{
	CL_STATE_NOT_RUNNING,
	CL_STATE_STARTING,
	CL_STATE_IDLE,
	CL_STATE_WRITING,
	CL_STATE_PURGING,
	CL_STATE_RETRY_QUEUE_FULL,
	CL_STATE_NO_DATABASE,
	CL_STATE_NO_ROLE,
	CL_STATE_ROLE_NOLOGIN,
	CL_STATE_NO_EXTENSION,
	CL_STATE_NO_PRIVILEGE,
	CL_STATE_BROKEN,
	CL_STATE_EXITING
} ConnlogWorkerState;

/*
 * The background workers that mark "connecting" while they connect to
 * connlog.database (connect.c).  Each has its own mark: the worker and the
 * standby keeper may both be starting at a promotion, and one must not
 * take the other's failed connection for its own.
 */
typedef enum ConnlogConnector
{
	CL_CONNECTOR_WORKER,
	CL_CONNECTOR_KEEPER
} ConnlogConnector;

#define CL_NUM_CONNECTORS	(CL_CONNECTOR_KEEPER + 1)

/*
 * The columns of the table the rows go to that connlog_enqueue's extra may
 * name, as the worker last published them (columns.c,
 * connlog_columns_publish).  names holds each name followed by a NUL.
 */
typedef enum ConnlogColumnsState
{
	CL_COLUMNS_UNKNOWN,			/* none published: the worker checks keys */
	CL_COLUMNS_ANY,				/* connection_logs: every key is kept */
	CL_COLUMNS_LISTED,			/* the names below (a lookup: found) */
	CL_COLUMNS_MISSING			/* a lookup only: not among them */
} ConnlogColumnsState;

#define CL_COLUMN_NAMES_SIZE	4096

typedef struct ConnlogColumns
{
	pg_atomic_uint32 gen;		/* odd while the worker writes */
	ConnlogColumnsState state;
	Oid			relid;			/* the table */
	uint32		len;			/* bytes of names */
	char		names[CL_COLUMN_NAMES_SIZE];
} ConnlogColumns;

/*
 * The ring's own (ring.c): where the events are, and the producers' wait
 * for room.  Changed only by ring.c's functions.
 */
typedef struct ConnlogRing
{
	LWLock	   *lock;			/* see ring.c */
	uint64		size;			/* bytes in data[] */
	uint64		head;			/* next byte to write (monotonic) */
	uint64		tail;			/* oldest byte not yet accounted for */
	uint64		head_seq;		/* sequence number of the next event */
	uint64		tail_seq;		/* sequence number of the oldest event */
	pg_atomic_uint64 taken_seq; /* a worker has read the events below it */
	ConditionVariable space_cv; /* producers waiting for ring space */
} ConnlogRing;

/*
 * The worker's presence and progress.  Changed only by the worker (and
 * the processes that connect, for connecting) through ring.c's
 * connlog_ring_attach_worker() and the functions after it in ring.h; but
 * flush_requested, which anyone sets (connlog_ring_request_flush()).
 */
typedef struct ConnlogWorkerShared
{
	Latch	   *latch;			/* NULL while no worker runs */
	pid_t		pid;
	bool		connecting[CL_NUM_CONNECTORS];	/* connecting to the database */
	bool		seen;			/* a worker has attached since startup */
	bool		registered;		/* set at initialization, never changed */
	ConditionVariable flush_cv; /* connlog_flush() waiting for done_seq */
	pg_atomic_uint64 done_seq;	/* events below this seq are accounted for */
	pg_atomic_uint32 flush_requested;
	pg_atomic_uint32 state;		/* a ConnlogWorkerState */
} ConnlogWorkerShared;

/*
 * The outcome of the worker's last write, for connlog_stats: changed
 * only by connlog_ring_note_flush() and connlog_ring_clear_error().
 */
typedef struct ConnlogStatus
{
	slock_t		mutex;			/* protects the fields below */
	TimestampTz last_flush;
	char		last_error[CONNLOG_LAST_ERROR_LEN];
} ConnlogStatus;

/*
 * connlog's shared memory, by owner: see each struct, and ring.c for the
 * locking rules.
 */
typedef struct ConnlogShared
{
	ConnlogRing ring;
	ConnlogWorkerShared worker;

	ConnlogWalShared wal;		/* connlog.durability's, see walshared.h */

	ConnlogCounters counters;	/* connlog_count() */

	ConnlogColumns columns;		/* what extra may name */

	ConnlogStatus status;

	char		data[FLEXIBLE_ARRAY_MEMBER];
} ConnlogShared;

/* A consistent reading of the counters for connlog_stats */
typedef struct ConnlogStats
{
	uint64		enqueued;
	uint64		merged;
	uint64		written;
	uint64		rejected;
	uint64		dropped;
	uint64		pending;
	uint64		batches;
	uint64		write_errors;
	uint64		retries;
	uint64		purged;
	uint64		ring_used_bytes;
	uint64		ring_size_bytes;
	TimestampTz last_flush;
	char		last_error[CONNLOG_LAST_ERROR_LEN];
	pid_t		worker_pid;
	ConnlogWorkerState worker_state;
	TimestampTz oldest_stored;	/* of the events not accounted for; 0 if none */
} ConnlogStats;

/* One consistent reading of the ring's head and the worker: see ring.c */
typedef struct ConnlogFlushView
{
	uint64		head_seq;		/* the sequence number of the next event */
	pid_t		worker_pid;		/* 0 if no worker runs */
	bool		worker_seen;	/* a worker has attached since startup */
} ConnlogFlushView;

extern ConnlogShared *connlog_shared;

extern Size connlog_ring_shmem_size(int ring_size_kb);
extern void connlog_ring_shmem_init(int ring_size_kb,
									uint64 crash_wal_pending);

typedef enum ConnlogPutResult
{
	CL_PUT_STORED,
	CL_PUT_FULL,
	CL_PUT_DROPPED
} ConnlogPutResult;

/* producers */
extern ConnlogPutResult connlog_ring_put_many(const char *recs, uint32 len,
											  uint32 nrecs,
											  ConnlogPutMode mode,
											  int wake_events, long wait_ms,
											  uint32 wait_event, bool wal,
											  uint64 *seq);
extern bool connlog_ring_entries_fit(uint64 len, uint32 nrecs, bool wal);
extern ConnlogColumnsState connlog_columns_find(const char *key, uint32 len,
												Oid *relid);
extern void connlog_ring_wake_worker(void);

/* the worker (the only consumer) */
extern uint64 connlog_ring_snapshot(uint64 *tail, uint64 *tail_seq,
									uint64 *head_seq, XLogRecPtr *insert_lsn);
extern XLogRecPtr connlog_ring_first_wal_floor(XLogRecPtr *insert_lsn);
extern void connlog_ring_read(uint64 pos, char *dst, uint32 len);
extern void connlog_ring_mark_done(uint64 from, uint64 to);
extern void connlog_ring_release(uint64 tail, uint64 tail_seq);
extern void connlog_ring_attach_worker(void);
extern bool connlog_ring_set_connecting(ConnlogConnector who, bool connecting);
extern void connlog_ring_detach_worker(int code, Datum arg);
extern uint64 connlog_ring_resume(uint64 *tail, uint64 *tail_seq);
extern void connlog_ring_set_done(uint64 done_seq);
extern void connlog_ring_note_flush(const char *error);
extern void connlog_ring_clear_error(void);
extern void connlog_ring_set_state(ConnlogWorkerState state);
extern void connlog_ring_set_replayed(bool holds);
extern void connlog_ring_set_taken(uint64 seq);
extern bool connlog_ring_take_flush_request(void);
extern void connlog_columns_publish(ConnlogColumnsState state, Oid relid,
									const char *names, uint32 len);
extern const char *connlog_worker_state_label(ConnlogWorkerState state);

/* at initialization, in the postmaster */
extern void connlog_ring_set_registered(bool registered);

/* readers */
extern void connlog_ring_stats(ConnlogStats *st);
extern void connlog_ring_stats_unlocked(ConnlogStats *st);
extern uint64 connlog_ring_size(void);
extern bool connlog_ring_worker_registered(void);
extern void connlog_ring_flush_view(ConnlogFlushView *v);
extern uint64 connlog_ring_done_seq(void);
extern ConditionVariable *connlog_ring_flush_cv(void);
extern void connlog_ring_request_flush(void);

/* The counters, which anyone adds to with connlog_count() */
static inline ConnlogCounters *
connlog_counters(void)
{
	return &connlog_shared->counters;
}

static inline void
connlog_count(pg_atomic_uint64 *counter, uint64 n)
{
	if (n > 0)
		pg_atomic_fetch_add_u64(counter, n);
}

#endif							/* CONNLOG_RING_H */
