/*-------------------------------------------------------------------------
 *
 * progress.h
 *		The worker's progress through WAL-backed events: replay at start,
 *		the progress stored with each write and at exit, the slot that
 *		follows it (progress.c).
 *
 * IDENTIFICATION
 *	  src/progress.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_PROGRESS_H
#define CONNLOG_PROGRESS_H

#include "access/xlogdefs.h"

#include "walshared.h"

/*
 * What the worker's batches hold of WAL-backed events, which keeps the
 * progress back:
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

/* the worker */
extern bool connlog_wal_replay_pending(void);
extern bool connlog_wal_replay_at_start(ConnlogFeedFn feed,
										ConnlogHeldFn held);
extern void connlog_wal_set_replayed(void);
extern bool connlog_wal_tracking(void);
extern bool connlog_wal_slot_requested(void);
extern ConnlogSlotResult connlog_wal_ensure_slot(uint64 next_seq,
												 char **error);
extern void connlog_wal_consumed(XLogRecPtr lsn);
extern ConnlogProgress *connlog_wal_next_progress(const ConnlogHeld *held,
												  ConnlogProgress *p);
extern void connlog_wal_progress_committed(const ConnlogProgress *progress);
extern void connlog_wal_store_exit_progress(const ConnlogHeld *held);

/* anyone, the postmaster too */
extern uint64 connlog_wal_pending(uint64 pending);
extern bool connlog_wal_replaying(void);

#endif							/* CONNLOG_PROGRESS_H */
