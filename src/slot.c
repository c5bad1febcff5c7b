/*-------------------------------------------------------------------------
 *
 * slot.c
 *		The physical replication slot "connlog", which keeps the WAL of
 *		WAL-backed events not written yet: made, held, advanced and set
 *		back by the worker (progress.c) and, on a hot standby, by the
 *		keeper (standby.c); and the oldest WAL segment still there.
 *
 * A process that touches the slot acquires it and keeps it until it exits,
 * as a walsender holds its slot, so that no other session can move or drop
 * it meanwhile; the server releases it when the process exits.  Each slot
 * operation runs in a transaction of its own and catches its ERROR (slot
 * in use, all slots in use) into a message for the caller, which must
 * carry on.
 *
 * Shared state: the slot itself, under the server's own locking
 * (MyReplicationSlot->mutex for restart_lsn).  slot_found and
 * slot_acquired are this process's.
 *
 * Why a slot, why it is held, and what connlog does when someone moved it:
 * doc/internals.md, "The slot".
 *
 * IDENTIFICATION
 *	  src/slot.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "replication/slot.h"
#include "storage/fd.h"

#include "compat.h"
#include "slot.h"
#include "wal.h"
#include "runner.h"


bool
connlog_wal_slot_exists(void)
{
	return SearchNamedReplicationSlot(CONNLOG_SLOT_NAME, true) != NULL;
}

/*
 * The slot's restart_lsn when this process acquired it, and whether an
 * operation of run_guarded just did (see above).
 */
static XLogRecPtr slot_found;
static bool slot_acquired;

/*
 * Acquire the slot unless this process holds it already; it stays held
 * until the process exits.
 */
static void
slot_hold(void)
{
	if (MyReplicationSlot != NULL)
		return;
	connlog_slot_acquire(CONNLOG_SLOT_NAME, true);
	SpinLockAcquire(&MyReplicationSlot->mutex);
	slot_found = MyReplicationSlot->data.restart_lsn;
	SpinLockRelease(&MyReplicationSlot->mutex);
	slot_acquired = true;
}

/*
 * Run fn in a transaction of its own, catching its error into *error: the
 * slot functions raise ERRORs (slot in use, all slots in use), and the
 * worker must carry on.  A slot acquired before the error stays held.
 */
static bool
run_guarded(void (*fn) (XLogRecPtr), XLogRecPtr lsn, char **error)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	volatile bool ok = true;

	*error = NULL;
	slot_acquired = false;
	StartTransactionCommand();
	PG_TRY();
	{
		fn(lsn);
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata = connlog_abort_caught(caller_cxt, NULL, NULL);

		*error = psprintf("%s", edata->message);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller_cxt);
	return ok;
}

/*
 * Set the held slot's restart_lsn; save it to disk at once if save, else
 * the next checkpoint does, as after pg_replication_slot_advance().
 */
static void
set_restart_lsn(XLogRecPtr lsn, bool save)
{
	SpinLockAcquire(&MyReplicationSlot->mutex);
	MyReplicationSlot->data.restart_lsn = lsn;
	SpinLockRelease(&MyReplicationSlot->mutex);
	ReplicationSlotMarkDirty();
	if (save)
		ReplicationSlotSave();
}

/* ReplicationSlotCreate acquires the slot it makes: it stays held */
static void
slot_create(XLogRecPtr restart_lsn)
{
	connlog_slot_create(CONNLOG_SLOT_NAME);
	slot_found = restart_lsn;
	set_restart_lsn(restart_lsn, true);
	ReplicationSlotsComputeRequiredLSN();
}

/* Create the slot, keeping WAL from restart_lsn on. */
bool
connlog_wal_slot_create(XLogRecPtr restart_lsn, char **error)
{
	if (!run_guarded(slot_create, restart_lsn, error))
		return false;
	ereport(LOG,
			(errmsg("connlog created replication slot \"%s\" to keep the WAL of events not written yet",
					CONNLOG_SLOT_NAME),
	errdetail("It keeps WAL from %X/%X on; connlog advances it as it writes.",
			  LSN_FORMAT_ARGS(restart_lsn))));
	return true;
}

static void
slot_advance(XLogRecPtr lsn)
{
	slot_hold();
	if (MyReplicationSlot->data.restart_lsn < lsn)
		set_restart_lsn(lsn, false);
	ReplicationSlotsComputeRequiredLSN();
}

/*
 * Let the slot release WAL before lsn, a done_lsn that has committed.  If
 * the slot is gone (someone dropped it while no connlog process held it),
 * make it again from lsn.
 */
bool
connlog_wal_slot_advance(XLogRecPtr lsn, char **error)
{
	if (!connlog_wal_slot_exists())
	{
		ereport(WARNING,
				(errmsg("replication slot \"%s\" was dropped while connlog.durability needs it; connlog creates it again",
						CONNLOG_SLOT_NAME)));
		return connlog_wal_slot_create(lsn, error);
	}
	return run_guarded(slot_advance, lsn, error);
}

/*
 * Hold the slot, and if someone moved its restart_lsn past lsn, where
 * connlog left it, set it back there and save that at once: a move is
 * never connlog's (doc/internals.md, "The slot").  slot_found says
 * where it was found.
 */
static void
slot_hold_at(XLogRecPtr lsn)
{
	slot_hold();
	if (MyReplicationSlot->data.restart_lsn > lsn)
		set_restart_lsn(lsn, true);
	ReplicationSlotsComputeRequiredLSN();
}

/*
 * Is the WAL from lsn on still in pg_wal?  If its segment is gone, the
 * start of the oldest segment left (of any timeline); else
 * InvalidXLogRecPtr.
 */
XLogRecPtr
connlog_wal_gone_to(XLogRecPtr lsn)
{
	DIR		   *dir = AllocateDir(XLOGDIR);
	struct dirent *de;
	XLogSegNo	oldest = 0;
	XLogSegNo	segno;
	XLogRecPtr	start;

	while ((de = ReadDir(dir, XLOGDIR)) != NULL)
	{
		TimeLineID	tli;

		if (!IsXLogFileName(de->d_name))
			continue;
		XLogFromFileName(de->d_name, &tli, &segno, wal_segment_size);
		if (oldest == 0 || segno < oldest)
			oldest = segno;
	}
	FreeDir(dir);
	XLByteToSeg(lsn, segno, wal_segment_size);
	if (oldest == 0 || segno >= oldest)
		return InvalidXLogRecPtr;
	XLogSegNoOffsetToRecPtr(oldest, 0, wal_segment_size, start);
	return start;
}

/*
 * Acquire the slot, setting it back to lsn if it was moved past it (see
 * slot_hold_at); *moved_to is where it was found if so, else
 * InvalidXLogRecPtr.  Without a valid lsn there is nothing to compare: the
 * slot is only held.  False, with *error, if it cannot be acquired.
 */
bool
connlog_wal_slot_take(XLogRecPtr lsn, XLogRecPtr *moved_to, char **error)
{
	*moved_to = InvalidXLogRecPtr;
	if (XLogRecPtrIsInvalid(lsn))
		return run_guarded(slot_advance, lsn, error);
	if (!run_guarded(slot_hold_at, lsn, error))
		return false;
	if (slot_acquired && slot_found > lsn)
		*moved_to = slot_found;
	return true;
}
