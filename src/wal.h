/*-------------------------------------------------------------------------
 *
 * wal.h
 *		connlog.durability: the events' WAL records, the replication slot
 *		that keeps them, and the worker's progress through them (wal.c).
 *
 * IDENTIFICATION
 *	  src/wal.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_WAL_H
#define CONNLOG_WAL_H

#include "access/xlogdefs.h"

#include "connlog.h"

#define CONNLOG_SLOT_NAME		"connlog"
/* with wal, producers wake the WAL writer at most this often (see wal.c) */
#define CONNLOG_WAL_WAKE_MS		10

/*
 * connlog's WAL resource manager (wal.c, "The records").  A WAL record
 * names its resource manager by this number alone, so it is fixed for as
 * long as any WAL holds connlog's records: 129 to 255 are for extensions
 * (128, RM_EXPERIMENTAL_ID, is for development only), and this one is
 * connlog's.
 */
#define CONNLOG_RMGR_ID			187
#define CONNLOG_RMGR_NAME		"connlog"
/* the record of one enqueued event: its info bits */
#define XLOG_CONNLOG_EVENT		0x00
/* a record's data: epoch and seq (uint64 each), then the ring record */
#define CONNLOG_WAL_HEADER_SIZE	(2 * sizeof(uint64))

/* _PG_init, while shared_preload_libraries are loaded */
extern void connlog_wal_register_rmgr(void);

/* producers (connlog_enqueue) */
extern XLogRecPtr connlog_wal_insert(char *msg, uint64 seq, uint32 len);
extern void connlog_wal_flush(XLogRecPtr end);
extern void connlog_wal_check_enqueue(void);

/* the slot, and the WAL it keeps (the worker and the standby's keeper) */
extern XLogSegNo connlog_wal_oldest_segment(void);
extern bool connlog_wal_slot_exists(void);
extern bool connlog_wal_slot_create(XLogRecPtr restart_lsn, char **error);
extern bool connlog_wal_slot_advance(XLogRecPtr lsn, char **error);

/*
 * The worker's side ("The worker's progress" in wal.c).  What the
 * worker's batches hold of WAL-backed events, which keeps the progress
 * back:
 */
typedef struct ConnlogHeld
{
	uint64		next_seq;		/* the ring's first event not read yet */
	uint64		oldest_seq;		/* of this life's WAL-backed events held, the
								 * first; next_seq if none */
	XLogRecPtr	oldest_floor;	/* the lowest LSN floor of the WAL-backed
								 * events held; PG_UINT64_MAX if none */
	bool		replayed;		/* some were read back from WAL */
	uint64		nreplayed;		/* how many were read back from WAL */
} ConnlogHeld;

/* how the worker takes events read back from WAL, and tells what it holds */
typedef void (*ConnlogFeedFn) (const char *data, size_t nbytes,
							   XLogRecPtr floor);
typedef void (*ConnlogHeldFn) (ConnlogHeld *held);

/* what came of connlog_wal_ensure_slot() */
typedef enum ConnlogSlotResult
{
	CL_SLOT_READY,
	CL_SLOT_NOT_CREATED,		/* the slot could not be created */
	CL_SLOT_PROGRESS_NOT_STORED /* nor the progress stored */
} ConnlogSlotResult;

extern bool connlog_wal_replay_pending(void);
extern bool connlog_wal_replay_at_start(ConnlogFeedFn feed,
										ConnlogHeldFn held);
extern bool connlog_wal_tracking(void);
extern bool connlog_wal_slot_requested(void);
extern ConnlogSlotResult connlog_wal_ensure_slot(uint64 next_seq,
												 char **error);
extern void connlog_wal_consumed(XLogRecPtr lsn);
extern ConnlogProgress *connlog_wal_next_progress(const ConnlogHeld *held,
												  ConnlogProgress *p);
extern void connlog_wal_progress_committed(const ConnlogProgress *progress);
extern void connlog_wal_store_exit_progress(const ConnlogHeld *held);
extern long connlog_wal_wake_writer(void);

#endif							/* CONNLOG_WAL_H */
