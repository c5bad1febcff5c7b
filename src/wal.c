/*-------------------------------------------------------------------------
 *
 * wal.c
 *		connlog.durability's WAL records: connlog's resource manager, the
 *		producers' insert of one record per event, flush mode's flush and
 *		wait for synchronous standbys, waking the WAL writer, and the
 *		producers' wait for the slot.
 *
 * A producer (connlog_enqueue) stores the event in the ring first, then,
 * with the ring lock released, writes its record with connlog_wal_insert;
 * under flush it then calls connlog_wal_flush.  Before its first
 * WAL-backed event it waits in connlog_wal_check_enqueue until the worker
 * has made the slot that keeps the WAL (progress.c sets slot_ready).  The
 * worker calls connlog_wal_wake_writer once per turn.
 *
 * Shared state: connlog_shared->wal.epoch (read only), wal_woken_at (an
 * atomic producers advance by compare-and-swap), slot_ready (read) and
 * slot_wanted (set); walshared.h gives the rules.  Everything else here
 * is the calling process's own.
 *
 * Why a resource manager and not logical messages, what may be asked of
 * the WAL writer, and how a flush-mode enqueue waits for synchronous
 * standbys: doc/internals.md, "The records", "What may be asked of the WAL
 * writer" and "Synchronous replication".
 *
 * IDENTIFICATION
 *	  src/wal.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/rmgr.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xloginsert.h"
#include "access/xlogreader.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "postmaster/walwriter.h"
#include "replication/slot.h"
#include "replication/syncrep.h"
#include "replication/walsender_private.h"
#include "storage/condition_variable.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

#include "batch.h"
#include "compat.h"
#include "connlog.h"
#include "ring.h"
#include "wal.h"

static uint32 wait_event_slot;

/* batch.c, which makes no server calls, has timestamptz's range built in */
StaticAssertDecl(CL_MIN_EVENT_TIME == MIN_TIMESTAMP &&
				 CL_END_EVENT_TIME == END_TIMESTAMP,
   "CL_MIN_EVENT_TIME and CL_END_EVENT_TIME must match timestamptz's range");

#define USECS_PER_MSEC	1000
/* how often a producer waiting for the slot looks again, at most */
#define SLOT_WAIT_POLL_MS	100

/* the worker's: wal_enqueued when it last woke the WAL writer */
static uint64 wal_enqueued_seen;

/* ---------------------------------------------------------------------
 * The resource manager
 * ---------------------------------------------------------------------
 */

/*
 * Redo: nothing.  The record changes no page; the worker reads it back
 * from WAL itself (replay.c), in its own process, where the ring can be
 * refilled safely.
 */
static void
connlog_rmgr_redo(XLogReaderState *record)
{
}

static void
connlog_rmgr_desc(StringInfo buf, XLogReaderState *record)
{
	const char *data = XLogRecGetData(record);
	uint32		len = XLogRecGetDataLen(record);
	uint64		epoch;
	uint64		seq;
	ClEvent		ev;

	if ((XLogRecGetInfo(record) & ~XLR_INFO_MASK) != XLOG_CONNLOG_EVENT ||
		len < CONNLOG_WAL_HEADER_SIZE)
	{
		appendStringInfo(buf, "malformed, %u bytes", len);
		return;
	}
	memcpy(&epoch, data, sizeof(epoch));
	memcpy(&seq, data + sizeof(epoch), sizeof(seq));
	appendStringInfo(buf, "epoch %llu seq %llu",
					 (unsigned long long) epoch, (unsigned long long) seq);
	if (!cl_decode(data + CONNLOG_WAL_HEADER_SIZE,
				   len - CONNLOG_WAL_HEADER_SIZE, &ev))
		appendStringInfoString(buf, "; malformed event");
	else if (ev.status < lengthof(connlog_status_labels))
		appendStringInfo(buf, "; %s", connlog_status_labels[ev.status]);
}

static const char *
connlog_rmgr_identify(uint8 info)
{
	if ((info & ~XLR_INFO_MASK) == XLOG_CONNLOG_EVENT)
		return "EVENT";
	return NULL;
}

#ifdef CONNLOG_HAVE_CUSTOM_RMGR
static RmgrData connlog_rmgr = {
	.rm_name = CONNLOG_RMGR_NAME,
	.rm_redo = connlog_rmgr_redo,
	.rm_desc = connlog_rmgr_desc,
	.rm_identify = connlog_rmgr_identify,
};
#endif

/*
 * Called by _PG_init while shared_preload_libraries are loaded, which is
 * the only time RegisterCustomRmgr accepts (and in every process, since
 * the postmaster's table is inherited).
 */
void
connlog_wal_register_rmgr(void)
{
#ifdef CONNLOG_HAVE_CUSTOM_RMGR
	RegisterCustomRmgr(CONNLOG_RMGR_ID, &connlog_rmgr);
#endif
}

/*
 * The end of the WAL generated when the insert position was insert (a
 * value of GetXLogInsertRecPtr()): insert itself, unless it is the
 * position after a page header, where no record has been reserved yet.
 * See doc/internals.md, "What may be asked of the WAL writer".
 */
XLogRecPtr
connlog_wal_insert_end(XLogRecPtr insert)
{
	if (XLogSegmentOffset(insert, wal_segment_size) == SizeOfXLogLongPHD)
		return insert - SizeOfXLogLongPHD;
	if (insert % XLOG_BLCKSZ == SizeOfXLogShortPHD)
		return insert - SizeOfXLogShortPHD;
	return insert;
}

/*
 * Write the WAL record of the event the ring numbered seq, whose record of
 * len bytes follows CONNLOG_WAL_HEADER_SIZE bytes of room at msg; returns
 * the WAL record's end LSN.  Called after the ring lock is released.
 *
 * With wal, the record must not make the transaction's commit wake the WAL
 * writer: a commit that wrote WAL calls XLogSetAsyncXactLSN(), which sets
 * the WAL writer's latch whenever a full page is not flushed yet, which
 * under load is every commit, and the wakeups cost more than the record
 * (bench/RESULTS.md, "Measurements behind the design").  So the record is
 * kept out of XactLastRecEnd, and the WAL writer is woken directly
 * (XLogSetAsyncXactLSN, as a commit would, with the record's end) at most
 * every CONNLOG_WAL_WAKE_MS by whichever producer comes first; the records
 * of the last events of a burst get theirs from the worker, which looks
 * again within CONNLOG_WAL_WAKE_MS while WAL-backed events come in
 * (connlog_wal_wake_writer, below).  A record so waits in the WAL buffers
 * about that long, plus the writer's own time to write it.  With flush
 * the enqueue flushes its record itself, after which the commit finds
 * nothing to wake the writer for.
 */
XLogRecPtr
connlog_wal_insert(char *msg, uint64 seq, uint32 len)
{
	ConnlogShared *s = connlog_shared;
	XLogRecPtr	saved = XactLastRecEnd;
	XLogRecPtr	end;

	memcpy(msg, &s->wal.epoch, sizeof(s->wal.epoch));
	memcpy(msg + sizeof(s->wal.epoch), &seq, sizeof(seq));
	XLogBeginInsert();
	XLogRegisterData(msg, CONNLOG_WAL_HEADER_SIZE + len);
	end = XLogInsert(CONNLOG_RMGR_ID, XLOG_CONNLOG_EVENT);
	if (connlog_durability == CL_DURABILITY_WAL)
	{
		TimestampTz now = GetCurrentTimestamp();
		uint64		last = pg_atomic_read_u64(&s->wal.wal_woken_at);

		XactLastRecEnd = saved;
		if (now - (TimestampTz) last >= CONNLOG_WAL_WAKE_MS * USECS_PER_MSEC &&
			pg_atomic_compare_exchange_u64(&s->wal.wal_woken_at, &last,
										   (uint64) now))
			XLogSetAsyncXactLSN(end);
	}
	return end;
}

/*
 * Are synchronous standbys defined, as SyncRepWaitForLSN decides it?  The
 * flag changed in 15.13: sync_standbys_status, whose SYNC_STANDBY_INIT
 * says whether the checkpointer has read synchronous_standby_names yet
 * (until it has, the backend's own setting decides, as in syncrep.c).
 * Read without SyncRepLock the answer may be stale, as in syncrep.c's
 * own first test.
 */
static bool
sync_standbys_defined(void)
{
	volatile WalSndCtlData *ctl = WalSndCtl;

#ifdef SYNC_STANDBY_DEFINED
	if ((ctl->sync_standbys_status & SYNC_STANDBY_INIT) == 0)
		return SyncRepStandbyNames != NULL && SyncRepStandbyNames[0] != '\0';
	return (ctl->sync_standbys_status & SYNC_STANDBY_DEFINED) != 0;
#else
	return ctl->sync_standbys_defined;
#endif
}

/*
 * After a wait for synchronous replication: have the synchronous standbys
 * confirmed WAL up to lsn at the level of queue mode, or is none defined
 * any more (which released the wait)?
 */
static bool
syncrep_done(XLogRecPtr lsn, int mode)
{
	bool		done;

	LWLockAcquire(SyncRepLock, LW_SHARED);
	done = !sync_standbys_defined() || lsn <= WalSndCtl->lsn[mode];
	LWLockRelease(SyncRepLock);
	return done;
}

static void
syncrep_wait_context(void *arg)
{
	XLogRecPtr	lsn = *(XLogRecPtr *) arg;

	errcontext("waiting for the synchronous standby to confirm the WAL record of a connlog event, which ends at %X/%X",
			   LSN_FORMAT_ARGS(lsn));
}

/*
 * connlog.durability = flush: flush the event's WAL record, which ends at
 * end, and wait for the synchronous standbys as a commit in this session
 * would (see doc/internals.md, "Synchronous replication").  Returns
 * normally, with a WARNING, if the wait is canceled; a terminated backend
 * exits afterwards.
 */
void
connlog_wal_flush(XLogRecPtr end)
{
	ErrorContextCallback errcallback;
	int			mode;

	XLogFlush(end);

	switch (synchronous_commit)
	{
		case SYNCHRONOUS_COMMIT_REMOTE_WRITE:
			mode = SYNC_REP_WAIT_WRITE;
			break;
		case SYNCHRONOUS_COMMIT_REMOTE_FLUSH:
			mode = SYNC_REP_WAIT_FLUSH;
			break;
		case SYNCHRONOUS_COMMIT_REMOTE_APPLY:
			mode = SYNC_REP_WAIT_APPLY;
			break;
		default:
			return;				/* off and local: the local flush is all */
	}
	/* SyncRepWaitForLSN's own first test, so that its absence costs no lock */
	if (!SyncRepRequested() || !sync_standbys_defined())
		return;

	errcallback.callback = syncrep_wait_context;
	errcallback.arg = &end;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	HOLD_INTERRUPTS();
	SyncRepWaitForLSN(end, true);
	error_context_stack = errcallback.previous;

	if (!syncrep_done(end, mode))
		ereport(WARNING,
		 (errcode(ProcDiePending ? ERRCODE_ADMIN_SHUTDOWN : ERRCODE_WARNING),
		  errmsg("connlog event is kept locally but might not have been replicated to the synchronous standby"),
		  errdetail("The wait for synchronous replication of its WAL record, which ends at %X/%X, was canceled; the event will be written.",
					LSN_FORMAT_ARGS(end))));
	RESUME_INTERRUPTS();
	/* a die the wait gave up for ends the session now */
	CHECK_FOR_INTERRUPTS();
}

/*
 * A producer in wal or flush mode: check the settings the mode needs, and
 * wait until the worker has the slot that keeps the WAL.
 */
void
connlog_wal_check_enqueue(void)
{
	ConnlogShared *s = connlog_shared;
	TimestampTz start;

	if (wal_level < WAL_LEVEL_REPLICA || max_replication_slots < 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("connlog.durability = \"%s\" requires wal_level replica or logical and max_replication_slots of at least 1",
				connlog_durability == CL_DURABILITY_FLUSH ? "flush" : "wal"),
				 errdetail("The WAL of connlog's events is kept by the replication slot \"%s\".",
						   CONNLOG_SLOT_NAME),
				 errhint("Change those settings, or set connlog.durability to \"memory\".")));
#ifndef CONNLOG_HAVE_CUSTOM_RMGR
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
		errmsg("connlog.durability = \"%s\" requires PostgreSQL 15 or later",
			   connlog_durability == CL_DURABILITY_FLUSH ? "flush" : "wal"),
	  errdetail("connlog's WAL records need a custom WAL resource manager."),
			 errhint("Set connlog.durability to \"memory\".")));
#endif
	if (pg_atomic_read_u32(&s->wal.slot_ready) != 0)
		return;

	start = GetCurrentTimestamp();
	ConditionVariablePrepareToSleep(&s->ring.space_cv);
	while (pg_atomic_read_u32(&s->wal.slot_ready) == 0)
	{
		long		elapsed_ms = (long) ((GetCurrentTimestamp() - start) /
										 USECS_PER_MSEC);

		if (elapsed_ms >= connlog_enqueue_timeout_ms)
		{
			ConnlogStats st;

			ConditionVariableCancelSleep();
			connlog_ring_stats(&st);
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("connlog has no replication slot to keep the WAL of its events"),
					 st.worker_pid == 0 ?
					 errdetail("The connlog worker, which creates the slot \"%s\", is not running.",
							   CONNLOG_SLOT_NAME) :
					 st.last_error[0] != '\0' ?
					 errdetail("The connlog worker has not created the slot \"%s\" within connlog.enqueue_timeout (%d ms): %s",
							   CONNLOG_SLOT_NAME, connlog_enqueue_timeout_ms,
							   st.last_error) :
					 errdetail("The connlog worker, busy with other work, has not created the slot \"%s\" within connlog.enqueue_timeout (%d ms).",
							   CONNLOG_SLOT_NAME, connlog_enqueue_timeout_ms),
					 errhint("See connlog_stats.last_error and the server log, or set connlog.durability to \"memory\".")));
		}
		pg_atomic_write_u32(&s->wal.slot_wanted, 1);
		connlog_ring_wake_worker();
		(void) ConditionVariableTimedSleep(&s->ring.space_cv,
										   Min(SLOT_WAIT_POLL_MS,
									connlog_enqueue_timeout_ms - elapsed_ms),
										   CONNLOG_WAIT_EVENT(wait_event_slot,
															  "ConnlogSlot"));
	}
	ConditionVariableCancelSleep();
}

/*
 * With wal, producers wake the WAL writer at most every CONNLOG_WAL_WAKE_MS
 * (see connlog_wal_insert), so the WAL records of the last
 * events of a burst may have no one to wake it for them: the worker does,
 * once per turn if WAL-backed events came in since the last.  Returns how
 * long the worker may sleep before it looks again: CONNLOG_WAL_WAKE_MS
 * after such events, else wal_writer_delay, which bounds how long a record
 * can wait.
 */
long
connlog_wal_wake_writer(void)
{
	uint64		n = pg_atomic_read_u64(&connlog_shared->counters.wal_enqueued);

	if (n == wal_enqueued_seen)
		return WalWriterDelay;
	wal_enqueued_seen = n;
	/* the end of generated WAL, not the insert position */
	XLogSetAsyncXactLSN(connlog_wal_insert_end(GetXLogInsertRecPtr()));
	return CONNLOG_WAL_WAKE_MS;
}
