/*-------------------------------------------------------------------------
 *
 * walshared.h
 *		connlog.durability's types: the mode, the progress stored in
 *		connlog_wal_progress, and the part of shared memory it owns.
 *
 * Only types (and walshared.c's initialization), and nothing of connlog's
 * included, so that ring.h can embed ConnlogWalShared and connlog.h can
 * hand ConnlogProgress to the statements.  See doc/internals.md,
 * "Durability: WAL records, the slot, replay, progress, the keeper".
 *
 * Locking rules of ConnlogWalShared (connlog_shared->wal):
 *	- epoch and started are set at initialization and never change.
 *	- slot_ready, slot_wanted, replaying and holds_replayed are atomics,
 *	  read as hints without a lock.  Only the worker sets slot_ready and
 *	  clears slot_wanted (progress.c); producers set slot_wanted (wal.c).
 *	  replaying is set as a worker attaches (ring.c) and cleared once it
 *	  has replayed, or cannot (progress.c).  holds_replayed is the worker's.
 *	- last_floor is protected by the ring's lock, by rules of its own: see
 *	  ring.c's locking rules.
 *	- wal_woken_at is an atomic that producers advance by compare-and-swap.
 *	- crash_wal_pending, exit_stored and exit_ring_pending are the worker's
 *	  alone (progress.c), apart from their initialization.
 *
 * IDENTIFICATION
 *	  src/walshared.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_WALSHARED_H
#define CONNLOG_WALSHARED_H

#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "port/atomics.h"

/* connlog.durability */
typedef enum ConnlogDurability
{
	CL_DURABILITY_MEMORY,
	CL_DURABILITY_WAL,
	CL_DURABILITY_FLUSH
} ConnlogDurability;

/*
 * connlog.durability's progress, stored in connlog_wal_progress with each
 * write (progress.c): of the WAL-backed events of shared memory's life
 * epoch, those numbered below seq are written; every WAL-backed event not
 * written starts at or after lsn, or belongs to another life.
 */
typedef struct ConnlogProgress
{
	uint64		epoch;
	uint64		seq;
	XLogRecPtr	lsn;
	/* stored by an exiting worker: how many of those were not written */
	bool		at_exit;
	uint64		pending;
} ConnlogProgress;

/* connlog.durability's part of shared memory (ConnlogShared.wal) */
typedef struct ConnlogWalShared
{
	uint64		epoch;			/* this shared memory's life, in WAL records */
	TimestampTz started;		/* when this shared memory was made */
	pg_atomic_uint32 slot_ready;	/* the WAL-retaining slot exists */
	pg_atomic_uint32 slot_wanted;	/* a producer waits for slot_ready */
	pg_atomic_uint32 replaying; /* the worker has not replayed WAL yet */
	pg_atomic_uint32 holds_replayed;	/* the worker holds events read back
										 * from WAL */
	XLogRecPtr	last_floor;		/* the floor of WAL-backed events stored now */
	pg_atomic_uint64 wal_woken_at;	/* when a producer last woke the WAL
									 * writer (a TimestampTz) */
	uint64		crash_wal_pending;	/* set at reinitialization after a crash:
									 * the WAL-backed events the old ring held */
	bool		exit_stored;	/* a worker of this life stored
								 * pending_at_exit ... */
	uint64		exit_ring_pending;	/* ... of which the ring held these */
} ConnlogWalShared;

/* ring.c's initialization of shared memory, in the postmaster */
extern void connlog_wal_shmem_init(ConnlogWalShared *w,
								   uint64 crash_wal_pending);

#endif							/* CONNLOG_WALSHARED_H */
