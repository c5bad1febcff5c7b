/*-------------------------------------------------------------------------
 *
 * walshared.c
 *		Initialize connlog.durability's part of shared memory.
 *
 * ring.c makes shared memory and calls this for the part walshared.h
 * describes (and gives the locking rules of).  It calls nothing of
 * connlog's, so the ring, which is below the WAL side, depends on no
 * module above it.
 *
 * IDENTIFICATION
 *	  src/walshared.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "walshared.h"

/* postmaster memory: how many times shared memory was initialized */
static uint64 epochs_made = 0;

/*
 * In the postmaster, with AddinShmemInitLock held, each time shared memory
 * is made: crash_wal_pending is what the postmaster counted of the old
 * ring's WAL-backed events after a crash (0 otherwise), which the next
 * worker reports on (progress.c).
 */
void
connlog_wal_shmem_init(ConnlogWalShared *w, uint64 crash_wal_pending)
{
	/*
	 * Tells this life's sequence numbers from earlier lives' in WAL records:
	 * it is only compared for equality, so the start time, made unique within
	 * this postmaster, is enough.
	 */
	w->epoch = (uint64) GetCurrentTimestamp() + (epochs_made++);
	w->started = GetCurrentTimestamp();
	pg_atomic_init_u32(&w->slot_ready, 0);
	pg_atomic_init_u32(&w->slot_wanted, 0);
	pg_atomic_init_u32(&w->replaying, 1);
	pg_atomic_init_u32(&w->holds_replayed, 0);
	w->last_floor = InvalidXLogRecPtr;
	pg_atomic_init_u64(&w->wal_woken_at, 0);
	w->crash_wal_pending = crash_wal_pending;
	w->exit_stored = false;
	w->exit_ring_pending = 0;
}
