/*-------------------------------------------------------------------------
 *
 * wal.c
 *		connlog.durability: WAL records for enqueued events, the replication
 *		slot that keeps them, reading them back after a crash, and the
 *		worker's progress through them.
 *
 * memory (the default) keeps an event only in the shared-memory ring, so a
 * crash restart loses what the ring and the worker held.  wal writes one
 * WAL record per event as well, without waiting; flush also waits until
 * that record is flushed (XLogFlush, which group-commits: one fdatasync
 * serves every backend waiting behind it), and then for the synchronous
 * standbys as a commit would (below, "Synchronous replication").
 *
 * The records.  Each event's record belongs to connlog's own WAL resource
 * manager (RegisterCustomRmgr, CONNLOG_RMGR_ID, named "connlog"), written
 * with XLogBeginInsert/XLogRegisterData/XLogInsert: its data is the epoch
 * and sequence number below (8 bytes each) and the event's ring record
 * (batch.h).  Nothing but connlog's C code can write such a record: SQL
 * has no function that writes a record of a chosen resource manager.
 *
 * Why not a logical message.  Replay writes as the worker's role, by
 * default a superuser, into an audit table, so only connlog may write what
 * replay turns into rows.  pg_logical_emit_message() is executable by
 * PUBLIC and writes any payload under any prefix; a MAC under a key kept
 * in the data directory would tell connlog's messages from others only
 * for as long as the key stays secret, and everyone who can copy the data
 * directory can read it: pg_basebackup hands it to any REPLICATION role.
 * A key kept out of base backups would leave a promoted standby unable to
 * verify what it replays.  A resource manager needs no secret: who can
 * write its records is decided by the code that is loaded.  So replay
 * reads only connlog's records and ignores logical messages altogether,
 * including those with prefix "connlog" in the form a MAC-keyed connlog
 * wrote: it cannot tell those from forgeries (whoever once held the key
 * can write them), so it counts the ones after done_lsn that the stored
 * progress does not say are written and logs one WARNING that they were
 * not written.  doc/connlog.md tells operators to stop the server cleanly,
 * which drains the ring, before installing this library over that one.
 *
 * What the resource manager costs: recovery must be able to redo every
 * record it meets, and PostgreSQL refuses to start ("resource manager with
 * ID ... not registered") if the library is not in shared_preload_libraries
 * while WAL to be replayed holds connlog's records: crash recovery after
 * the last checkpoint, a standby, point-in-time recovery from an archive
 * or a base backup.  Redo itself does nothing (the records change no page;
 * the worker reads them back itself, below); rm_desc and rm_identify let
 * pg_walinspect, which runs in the server, show them ("EVENT epoch ... seq
 * ..."), and pg_waldump shows them as "custom187".  doc/connlog.md,
 * "Removing connlog", gives the order that leaves no such WAL behind:
 * memory mode, connlog_flush(), CHECKPOINT, a clean stop, then the setting.
 * Each record costs the same insert as a logical message would.
 *
 * A record is still held to what connlog_enqueue checks before it becomes
 * a row (event_refused: batch.c's cl_event_refused and the database
 * encoding): the resource manager proves who wrote the bytes, not that a
 * bug did not make them anything, and the worker writes them as a
 * superuser.  A record that fails is counted, not written and not counted
 * as enqueued; the replay logs one WARNING with the counts.
 *
 * The records are not marked XLOG_MARK_UNIMPORTANT, as logical messages
 * are: an event is data, and archive_timeout or a checkpoint of an
 * otherwise idle server must not skip the WAL that holds it.
 *
 * A standby replays the records as no-ops (and so needs the library
 * loaded, which its keeper needs anyway, standby.c); connlog_enqueue is
 * refused there.
 *
 * Order and progress.  A producer stores the event in the ring first and
 * writes its WAL record after it has released the ring lock, so that
 * producers' WAL inserts run side by side.  Inserting under the lock would
 * keep ring order and LSN order the same, but every other producer would
 * wait on the lock while one inserts, which costs wal about a third of its
 * rate (bench/RESULTS.md, "Measurements behind the design").  Ring order
 * and LSN order therefore differ a little, and no single LSN can say which
 * events are written.  Instead:
 *
 *	- each WAL record carries the event's ring sequence number and the
 *	  epoch of the shared memory that numbered it (set at each
 *	  (re)initialisation, see ring.c);
 *	- each ring entry carries an LSN floor that its WAL record starts at or
 *	  after, and floors never decrease in ring order (ring.c's locking
 *	  rules say how);
 *	- the worker stores, in the same transaction as each upsert or
 *	  connection_logs_rejected insert, the progress (epoch, done_seq,
 *	  done_lsn) that holds once that transaction commits, in the one-row
 *	  table connlog_wal_progress: of epoch's events those numbered below
 *	  done_seq are written, and every WAL-backed event not written starts
 *	  at or after done_lsn.  done_seq is the first sequence number of the
 *	  oldest batch still held (or what the worker has consumed the ring to);
 *	  done_lsn is the floor of that batch's first WAL-backed event, or of
 *	  the next one in the ring, which is at least the floor of the last one
 *	  consumed.  Both only grow.
 *
 * Replay.  When the worker starts (after a crash restart, and after any
 * other start too) it reads WAL from done_lsn up to the insert position
 * with an XLogReader over local WAL, picks the records of connlog's
 * resource manager, leaves out those of epoch numbered below done_seq
 * (written) and all
 * those of the current epoch (the ring frees an event only once it is
 * accounted for, ring.c: so each of this life's events is either
 * accounted for or still in the ring), and writes the rest before it
 * drains the ring.  Until the
 * replayed batches are written the stored progress stays as it was read,
 * since their events are not numbered in this epoch.  So after a crash an
 * event is written again only if its batch was written while an older one
 * was still held (a failed batch waiting for its retry, or halves of a
 * failed batch being split): connection rows are idempotent, web events
 * are skipped when their row exists, a rejected row may be stored twice.
 * Replayed events count in enqueued (the counters started from zero with
 * the new shared memory) when their batch is accounted for, so the
 * accounting identity holds, and a worker that exits before that and
 * replays them again does not count them twice.
 *
 * What a crash loses.  An event is in the ring before its WAL record
 * exists: a crash between the two (a few microseconds) loses it, and with
 * flush its enqueue had not returned.  With wal, records still in the WAL
 * buffers are lost too.  The postmaster counts the WAL-backed events the
 * old ring held, and the worker logs how many of those it did not find.
 *
 * What each mode costs is measured by bench/run and bench/durability
 * (bench/RESULTS.md, "Durability").
 *
 * What may be asked of the WAL writer.  A request to write or flush WAL
 * must not lie past the end of the WAL generated so far: the WAL writer
 * PANICs on one ("xlog write request ... is past end of log"), and
 * XLogFlush fails it.  GetXLogInsertRecPtr() is not such an end: when the
 * insert position sits exactly on a page boundary it returns the position
 * after the next page's header, where the next record would start, and
 * that page does not exist yet.  So a producer asks for the end of its own
 * record (what XLogInsert returns, as a commit uses XactLastRecEnd), and
 * where the worker has no record of its own (waking the writer for the
 * producers, flushing before its replay) it asks for insert_end(): the
 * insert position taken back before that page header, which is the end of
 * the last record reserved, the very position WaitXLogInsertionsToFinish
 * takes as the end of generated WAL.  Every other LSN connlog keeps is
 * where records start at or after (floors, done_lsn, the slot's
 * restart_lsn), for which the position after a page header is right.
 *
 * The checkpoint window.  Crash recovery starts at the last checkpoint's
 * redo pointer, but connlog does not rely on recovery to see its records:
 * the worker reads them itself from done_lsn, and a physical replication
 * slot named "connlog", whose restart_lsn the worker advances only to a
 * committed done_lsn, keeps every WAL segment from done_lsn on.  A
 * checkpoint therefore never removes WAL an unwritten event still needs;
 * nothing has to be re-logged.  The slot is created by the worker when the
 * first producer asks for it (a producer in wal or flush mode waits, up to
 * connlog.enqueue_timeout, until it exists, so no WAL-backed event exists
 * unprotected); its restart_lsn is then the insert position, which is also
 * stored as done_lsn.  It needs max_replication_slots >= 1 and wal_level
 * replica or logical (a physical slot stops the server from starting at
 * wal_level minimal).  Advancing it, like pg_replication_slot_advance(),
 * only marks it dirty: the checkpointer saves it, and after a crash the
 * slot on disk is older, which keeps more WAL, never less.
 *
 * The slot is held.  The worker acquires the slot when it first needs it
 * and keeps it acquired until it exits, as a walsender holds its slot, so
 * that pg_replication_slot_advance() and pg_drop_replication_slot() from
 * another session fail ("replication slot "connlog" is active for PID
 * ...") for as long as the worker lives.  An error in a slot operation
 * leaves it held (run_guarded); the server releases it when the process
 * exits (ReplicationSlotShmemExit, a before_shmem_exit callback of every
 * process), whatever the exit.  A REPLICATION role can still move or drop
 * it while no worker holds it: between a worker's exit and its
 * successor's start, and while the worker waits for its database, role
 * or extension.  Since connlog only ever sets restart_lsn to a committed
 * done_lsn, a restart_lsn past the stored done_lsn is someone else's move,
 * and the worker detects it as it acquires the slot (slot_hold): at start,
 * before its replay, it sets restart_lsn back to done_lsn, then reads
 * what WAL is left.  If none is missing nothing was lost and the WARNING
 * says so; otherwise the events whose WAL is gone are counted in
 * "dropped" (and in "enqueued", as replayed events are, so the accounting
 * identity holds) with a WARNING that names the move.  How many: those
 * the last exiting worker counted in pending_at_exit (less, in the same
 * shared memory's life, the ones still in the ring, which the next worker
 * writes from there, exit_ring_pending), or after a crash those the
 * postmaster counted, less those read back from what WAL is left.  That is
 * exact when nothing was enqueued between the last write and the exit
 * (see "pg_upgrade" below); without either count all the WARNING can say
 * is how much WAL is gone.  A move the worker meets after its start (it
 * could not acquire the slot then: the keeper still held it at a
 * promotion, say) is set back and reported without a count: the events
 * it concerns are in the ring or held, and are written unless the server
 * crashes first.  REPLICATION roles are therefore trusted for
 * completeness, as for any slot (doc/connlog.md, "Security").
 *
 * Synchronous replication.  After its local flush a commit waits for
 * the synchronous standbys as its session's synchronous_commit asks:
 * remote_write, on (remote flush) or remote_apply; local and off do not
 * wait.  A flush-mode enqueue must do the same for its record, or an event
 * its caller was told is safe may exist on one machine only: the record is
 * non-transactional and assigns no xid, so the enqueue's transaction has no
 * commit record and its commit waits for nothing.  connlog_wal_flush calls
 * the server's SyncRepWaitForLSN rather than waiting on its own: the wait
 * queue, the walsenders' wakeups and the reaction to changed
 * synchronous_standby_names are all static in syncrep.c, and a copy would
 * have to poll.  It calls it as RecordTransactionCommit does, with
 * interrupts held (SyncRepWaitForLSN asserts that: a cancel or die must end
 * the wait, never throw out of it with the process still queued) and with
 * commit = true, because with false it caps the wait at remote flush and
 * remote_apply would not be honoured.  The standby reports the replay of a
 * connlog record although, unlike a commit record under remote_apply, it
 * does not ask for that feedback: the startup process makes the WAL
 * receiver reply whenever it has replayed all it received and waits for
 * more (WaitForWALToBecomeAvailable), and a busy standby replies with each
 * flush anyway.
 *
 * A cancel (pg_cancel_backend, statement_timeout) ends the wait, and
 * SyncRepWaitForLSN reports a WARNING whose detail says that "the
 * transaction has already committed locally": not connlog's situation,
 * and not connlog's to reword.  So connlog gives that WARNING an error
 * context naming the record, and once the wait is over checks, as
 * syncrep.c does before it queues, whether the synchronous standbys have
 * confirmed the record (WalSndCtl->lsn of the mode) or none is defined any
 * more (emptying synchronous_standby_names releases every waiter, and a
 * commit released so gets no WARNING either).  If neither, it adds its own
 * WARNING: the event is kept locally and will be written, but its record
 * may not be on the standby.  The enqueue then returns normally, as a
 * commit does: the event is in the ring and in flushed local WAL and
 * cannot be taken back.  A die (pg_terminate_backend, a fast shutdown)
 * or the postmaster's death ends the wait the same way, except that
 * SyncRepWaitForLSN has then stopped output to the client after its own
 * WARNING (connlog's goes to the server log only) and leaves
 * ProcDiePending set: the CHECK_FOR_INTERRUPTS after RESUME_INTERRUPTS
 * ends the session before connlog_enqueue returns.  That event is still
 * written, as a terminated commit stays committed; its caller got no
 * success, only the WARNING.
 *
 * Where this cannot help: slots are not replicated, so a standby keeps
 * the WAL after done_lsn only through a slot of its own, which standby.c
 * keeps; a promoted standby without it (hot_standby = off, or promoted
 * before its keeper made the slot) may lack that WAL.  The worker then
 * warns with the number of bytes it had to skip (or, if the row counts
 * them, the number of events lost, see below), and goes on.  With the
 * library removed from shared_preload_libraries the server starts only
 * if no WAL it replays holds connlog's records (see "The records"), and
 * the slot then keeps WAL from done_lsn forever: drop it with
 * pg_drop_replication_slot('connlog').
 *
 * pg_upgrade.  It starts the old and the new server with -b
 * (IsBinaryUpgrade), and copies the old cluster's relation files into the
 * new one, but none of its WAL or its slots (no version copies a physical one).
 * In binary-upgrade mode connlog registers no worker (connlog.c), only its
 * resource manager: nothing may write into a cluster being upgraded, and
 * replaying the old server's WAL there while pg_dump reads its schema
 * would write rows behind pg_upgrade's back.  So WAL-backed
 * events that the old server's last worker did not write are gone once
 * pg_upgrade has run; the worker cannot prevent that, since nothing tells
 * it an upgrade follows the shutdown, so it makes the loss loud and exact:
 *
 *	- at exit (shutdown_drain; any exit, since any may be the last) the
 *	  worker stores with the progress pending_at_exit, the WAL-backed
 *	  events not written: those of the ring not accounted for and those
 *	  read back from WAL it still holds.  Its next write stores NULL
 *	  there again, so a non-NULL count is always one an exiting worker
 *	  stored.  A clean shutdown that leaves some also logs, from the
 *	  postmaster, how many, with a hint that pg_upgrade loses them.
 *	- the new cluster's first worker reads the copied row: done_lsn is an
 *	  LSN of the old cluster, below the new cluster's WAL (pg_upgrade
 *	  starts it at a later segment with pg_resetwal), there is no slot,
 *	  and the epoch is the old one's.  It creates the slot (at done_lsn,
 *	  which keeps nothing that is not there), finds the WAL from done_lsn
 *	  gone, and reads the new cluster's WAL after it, which holds no
 *	  connlog record of the old cluster.  report_gone() then says how many
 *	  events pending_at_exit counted and were not read back: a WARNING
 *	  if any, otherwise one LOG line, so a clean upgrade with nothing
 *	  pending warns about nothing.  Without a count (a 1.1 row, or a
 *	  worker that could not store it at exit, which it warned about) all
 *	  it can say is how many bytes of WAL are missing.  Having read
 *	  nothing back, the worker stores this life's progress at once, so
 *	  the old row is not reported on again at the next start.
 *
 * The count is exact when nothing is enqueued after the worker's last
 * write (in a fast shutdown a backend may still enqueue before it exits),
 * and counts a batch half written as pending, as the postmaster does.
 * doc/connlog.md, "Updating and upgrading", tells what to do first: stop
 * the server once connlog_stats shows nothing pending, or start it again
 * to let the worker write what its log says is left.
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
#include "access/xlogutils.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "postmaster/walwriter.h"
#include "replication/message.h"
#include "replication/slot.h"
#include "replication/syncrep.h"
#include "replication/walsender_private.h"
#include "storage/condition_variable.h"
#include "storage/fd.h"
#include "storage/lwlock.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "batch.h"
#include "compat.h"
#include "connlog.h"
#include "ring.h"
#include "wal.h"
#include "statements.h"

static uint32 wait_event_slot;

/* batch.c, which makes no server calls, has timestamptz's range built in */
StaticAssertDecl(CL_MIN_EVENT_TIME == MIN_TIMESTAMP &&
				 CL_END_EVENT_TIME == END_TIMESTAMP,
   "CL_MIN_EVENT_TIME and CL_END_EVENT_TIME must match timestamptz's range");

#define USECS_PER_MSEC	1000
/* how often a producer waiting for the slot looks again, at most */
#define SLOT_WAIT_POLL_MS	100

/*
 * Logical messages in the form a MAC-keyed connlog wrote: prefix
 * "connlog", then epoch, seq, a 16-byte MAC and the ring record.  Replay
 * only counts them (see "The records" above).
 */
#define LEGACY_PREFIX		"connlog"
#define LEGACY_HEADER_SIZE	(2 * sizeof(uint64) + 16)

/* ---------------------------------------------------------------------
 * The resource manager
 * ---------------------------------------------------------------------
 */

/*
 * Redo: nothing.  The record changes no page; the worker reads it back
 * from WAL itself ("Replay" above), in its own process, where the ring can
 * be refilled safely.
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
 * See "What may be asked of the WAL writer" above.
 */
static XLogRecPtr
insert_end(XLogRecPtr insert)
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

	memcpy(msg, &s->epoch, sizeof(s->epoch));
	memcpy(msg + sizeof(s->epoch), &seq, sizeof(seq));
	XLogBeginInsert();
	XLogRegisterData(msg, CONNLOG_WAL_HEADER_SIZE + len);
	end = XLogInsert(CONNLOG_RMGR_ID, XLOG_CONNLOG_EVENT);
	if (connlog_durability == CL_DURABILITY_WAL)
	{
		TimestampTz now = GetCurrentTimestamp();
		uint64		last = pg_atomic_read_u64(&s->wal_woken_at);

		XactLastRecEnd = saved;
		if (now - (TimestampTz) last >= CONNLOG_WAL_WAKE_MS * USECS_PER_MSEC &&
			pg_atomic_compare_exchange_u64(&s->wal_woken_at, &last,
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
 * would (see "Synchronous replication" above).  Returns normally, with a
 * WARNING, if the wait is canceled; a terminated backend exits afterwards.
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
	if (pg_atomic_read_u32(&s->slot_ready) != 0)
		return;

	start = GetCurrentTimestamp();
	ConditionVariablePrepareToSleep(&s->ring.space_cv);
	while (pg_atomic_read_u32(&s->slot_ready) == 0)
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
		pg_atomic_write_u32(&s->slot_wanted, 1);
		connlog_ring_wake_worker();
		(void) ConditionVariableTimedSleep(&s->ring.space_cv,
										   Min(SLOT_WAIT_POLL_MS,
									connlog_enqueue_timeout_ms - elapsed_ms),
										   CONNLOG_WAIT_EVENT(wait_event_slot,
															  "ConnlogSlot"));
	}
	ConditionVariableCancelSleep();
}

/* ---------------------------------------------------------------------
 * The slot (worker only)
 * ---------------------------------------------------------------------
 */

bool
connlog_wal_slot_exists(void)
{
	return SearchNamedReplicationSlot(CONNLOG_SLOT_NAME, true) != NULL;
}

/*
 * The slot's restart_lsn when this process acquired it, and whether an
 * operation of run_guarded just did (see "The slot is held" above).
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

/* ReplicationSlotCreate acquires the slot it makes: it stays held */
static void
slot_create(XLogRecPtr restart_lsn)
{
	connlog_slot_create(CONNLOG_SLOT_NAME);
	slot_found = restart_lsn;
	SpinLockAcquire(&MyReplicationSlot->mutex);
	MyReplicationSlot->data.restart_lsn = restart_lsn;
	SpinLockRelease(&MyReplicationSlot->mutex);
	ReplicationSlotMarkDirty();
	ReplicationSlotSave();
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
	{
		SpinLockAcquire(&MyReplicationSlot->mutex);
		MyReplicationSlot->data.restart_lsn = lsn;
		SpinLockRelease(&MyReplicationSlot->mutex);
		/* saved by the next checkpoint, like pg_replication_slot_advance */
		ReplicationSlotMarkDirty();
	}
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
 * never connlog's (see "The slot is held" above).  slot_found says where
 * it was found.
 */
static void
slot_hold_at(XLogRecPtr lsn)
{
	slot_hold();
	if (MyReplicationSlot->data.restart_lsn > lsn)
	{
		SpinLockAcquire(&MyReplicationSlot->mutex);
		MyReplicationSlot->data.restart_lsn = lsn;
		SpinLockRelease(&MyReplicationSlot->mutex);
		ReplicationSlotMarkDirty();
		ReplicationSlotSave();
	}
	ReplicationSlotsComputeRequiredLSN();
}

/* ---------------------------------------------------------------------
 * Replay (worker only)
 * ---------------------------------------------------------------------
 */

/*
 * Would connlog_enqueue have accepted the event of this ring record?  Its
 * resource manager says connlog wrote it, but replay writes as a
 * superuser what a bug could make anything, so it holds the event to
 * enqueue's rules again: batch.c's, and the texts valid in the database's
 * encoding (the worker's database is the only one enqueue accepts events
 * in).  NULL if it would, else why not.
 */
static const char *
event_refused(const char *rec, uint32 len)
{
	ClEvent		ev;
	const char *why;
	const ClText *texts[] = {&ev.workspace_name, &ev.agent_name,
	&ev.user_agent, &ev.slug_or_port, &ev.disconnect_reason, &ev.type_text};

	if (!cl_decode(rec, len, &ev))
		return "the record is malformed";
	if ((why = cl_event_refused(&ev)) != NULL)
		return why;
	for (int i = 0; i < lengthof(texts); i++)
		if (texts[i]->len > 0 &&
			!pg_verify_mbstr(GetDatabaseEncoding(), texts[i]->data,
							 texts[i]->len, true))
			return "a text field is not valid in the database encoding";
	if (ev.extra_len > 0)
	{
		const char *pos = ev.extra;
		ClExtraItem it;

		while (cl_extra_next(&pos, ev.extra + ev.extra_len, &it))
			if (!pg_verify_mbstr(GetDatabaseEncoding(), it.key, it.key_len,
								 true) ||
				!pg_verify_mbstr(GetDatabaseEncoding(), it.value,
								 it.value_len, true))
				return "a key or value of extra is not valid in the database encoding";
	}
	return NULL;
}

/* The first segment still in pg_wal, of any timeline; 0 if none. */
XLogSegNo
connlog_wal_oldest_segment(void)
{
	DIR		   *dir = AllocateDir(XLOGDIR);
	struct dirent *de;
	XLogSegNo	oldest = 0;

	while ((de = ReadDir(dir, XLOGDIR)) != NULL)
	{
		TimeLineID	tli;
		XLogSegNo	segno;

		if (!IsXLogFileName(de->d_name))
			continue;
		XLogFromFileName(de->d_name, &tli, &segno, wal_segment_size);
		if (oldest == 0 || segno < oldest)
			oldest = segno;
	}
	FreeDir(dir);
	return oldest;
}

/*
 * WAL from done->lsn to gone_to is not here, and nrecords events were read
 * back from what is.  If the worker that stored done counted its events
 * left unwritten, say how many of them are lost (none: nothing to report
 * but a LOG line); else all that is known is how much WAL is missing.  See
 * "pg_upgrade" above.
 */
static void
report_gone(const ConnlogProgress *done, XLogRecPtr gone_to, uint64 nrecords)
{
	if (!done->at_exit)
		ereport(WARNING,
				(errmsg("connlog cannot replay %llu bytes of WAL from %X/%X to %X/%X: it was removed",
						(unsigned long long) (gone_to - done->lsn),
						LSN_FORMAT_ARGS(done->lsn), LSN_FORMAT_ARGS(gone_to)),
				 errdetail("WAL-backed events in that range that were not written yet are lost."),
				 errhint("This happens when a standby whose connlog keeper did not hold replication slot \"%s\" is promoted (see README.md, \"Durability\"), after pg_upgrade (which does not keep WAL), or when the slot was dropped.",
						 CONNLOG_SLOT_NAME)));
	else if (done->pending > nrecords)
		ereport(WARNING,
				(errmsg("connlog lost %llu WAL-backed events that were not written when its worker last exited",
						(unsigned long long) (done->pending - nrecords)),
				 errdetail("connlog_wal_progress says %llu WAL-backed events were not written yet, in WAL from %X/%X on; that WAL is not in this cluster up to %X/%X, and %llu of the events were read back.",
						   (unsigned long long) done->pending,
						LSN_FORMAT_ARGS(done->lsn), LSN_FORMAT_ARGS(gone_to),
						   (unsigned long long) nrecords),
				 errhint("pg_upgrade does not keep WAL, and a promoted standby may not have it.  Before pg_upgrade, start the old server and let connlog write its events.")));
	else
		ereport(LOG,
				(errmsg("connlog has no WAL from %X/%X to %X/%X, where connlog_wal_progress points, and no event was left unwritten there",
					 LSN_FORMAT_ARGS(done->lsn), LSN_FORMAT_ARGS(gone_to))));
}

/* what an abort leaves to its caller: the WAL segment the reader opened */
static void
close_segment(void *arg)
{
	XLogReaderState *xr = (XLogReaderState *) arg;

	if (xr != NULL && xr->seg.ws_file >= 0)
		wal_segment_close(xr);
}

/*
 * Read connlog's records among the WAL records that start at or after
 * done->lsn and end at or before upto (an insert position), leaving out
 * the events done says are written and all those of this life (see
 * "Replay" above).  Returns the others' ring records back to back,
 * palloc'd in the caller's context; *nrecords and *nbytes say how many,
 * *nskipped how many were left out, and *last_end is the end of the last
 * WAL record read (done->lsn if none): no connlog record ending at or
 * before it was missed.  WAL that is gone is skipped: *gone_to_out is
 * where what is left starts (InvalidXLogRecPtr if nothing is gone), for
 * the caller to report.  An error while reading ends the replay with a
 * WARNING.
 */
static char *
read_records(const ConnlogProgress *done, XLogRecPtr upto,
			 XLogRecPtr *last_end, uint64 *nrecords, uint64 *nskipped,
			 size_t *nbytes, XLogRecPtr *gone_to_out)
{
	XLogRecPtr	from = done->lsn;
	MemoryContext caller_cxt = CurrentMemoryContext;
	StringInfoData out;
	XLogReaderState *volatile xr = NULL;
	XLogRecPtr	start = from;
	volatile uint64 nlegacy = 0;
	volatile uint64 ninvalid = 0;
	const char *volatile first_refusal = NULL;
	volatile XLogRecPtr gone_to = InvalidXLogRecPtr;
	const char *why;

	initStringInfo(&out);
	*nrecords = *nskipped = 0;
	*last_end = from;

	/*
	 * WAL up to upto may still sit in the WAL buffers (connlog.durability =
	 * wal).  upto is an insert position: flush only to the end of the WAL
	 * generated by then (see "What may be asked of the WAL writer").
	 */
	upto = insert_end(upto);
	XLogFlush(upto);

	StartTransactionCommand();
	PG_TRY();
	{
		XLogSegNo	oldest = connlog_wal_oldest_segment();
		XLogSegNo	fromseg;
		XLogRecPtr	first;

		XLByteToSeg(from, fromseg, wal_segment_size);
		if (oldest != 0 && fromseg < oldest)
		{
			/* reported below, once the count of what was read is known */
			XLogSegNoOffsetToRecPtr(oldest, 0, wal_segment_size, start);
			gone_to = *last_end = Min(start, upto);
		}
		if (start < upto)
		{
			xr = XLogReaderAllocate(wal_segment_size, NULL,
					   XL_ROUTINE(.page_read = &read_local_xlog_page_no_wait,
								  .segment_open = &wal_segment_open,
								  .segment_close = &wal_segment_close),
							palloc0(sizeof(ReadLocalXLogPageNoWaitPrivate)));
			if (xr == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_OUT_OF_MEMORY),
						 errmsg("out of memory while allocating a WAL reading processor")));
			first = XLogFindNextRecord(xr, start);
			while (!XLogRecPtrIsInvalid(first) && xr->EndRecPtr < upto)
			{
				char	   *errormsg = NULL;
				XLogRecord *rec = XLogReadRecord(xr, &errormsg);

				if (rec == NULL)
				{
					if (errormsg != NULL)
						ereport(WARNING,
						(errmsg("connlog stopped replaying WAL at %X/%X: %s",
								LSN_FORMAT_ARGS(xr->EndRecPtr), errormsg)));
					break;
				}
				if (xr->EndRecPtr > upto)
					break;
				*last_end = xr->EndRecPtr;
				if (XLogRecGetRmid(xr) == CONNLOG_RMGR_ID)
				{
					const char *data = XLogRecGetData(xr);
					uint32		len = XLogRecGetDataLen(xr);
					uint64		epoch;
					uint64		seq;

					if ((XLogRecGetInfo(xr) & ~XLR_INFO_MASK) != XLOG_CONNLOG_EVENT ||
						len < CONNLOG_WAL_HEADER_SIZE)
					{
						if (ninvalid++ == 0)
							first_refusal = "the record is malformed";
						continue;
					}
					memcpy(&epoch, data, sizeof(epoch));
					memcpy(&seq, data + sizeof(epoch), sizeof(seq));
					len -= CONNLOG_WAL_HEADER_SIZE;
					if ((epoch == done->epoch && seq < done->seq) ||
						epoch == connlog_shared->epoch)
						(*nskipped)++;	/* written, or the ring has it */
					else if ((why = event_refused(data + CONNLOG_WAL_HEADER_SIZE,
												  len)) != NULL)
					{
						if (ninvalid++ == 0)
							first_refusal = why;
					}
					else
					{
						MemoryContext old = MemoryContextSwitchTo(caller_cxt);

						appendBinaryStringInfo(&out,
											   data + CONNLOG_WAL_HEADER_SIZE,
											   len);
						MemoryContextSwitchTo(old);
						(*nrecords)++;
					}
				}
				else if (XLogRecGetRmid(xr) == RM_LOGICALMSG_ID &&
				(XLogRecGetInfo(xr) & ~XLR_INFO_MASK) == XLOG_LOGICAL_MESSAGE)
				{
					/* never written: only counted (see "The records") */
					xl_logical_message *m = (xl_logical_message *) XLogRecGetData(xr);
					uint64		epoch;
					uint64		seq;

					if (m->prefix_size != sizeof(LEGACY_PREFIX) ||
						memcmp(m->message, LEGACY_PREFIX,
							   sizeof(LEGACY_PREFIX)) != 0 ||
						m->message_size < LEGACY_HEADER_SIZE)
						continue;
					memcpy(&epoch, m->message + m->prefix_size, sizeof(epoch));
					memcpy(&seq, m->message + m->prefix_size + sizeof(epoch),
						   sizeof(seq));
					if (!(epoch == done->epoch && seq < done->seq))
						nlegacy++;
				}
			}
			XLogReaderFree(xr);
			xr = NULL;
		}
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata = connlog_abort_caught(caller_cxt, close_segment,
												 xr);

		ereport(WARNING,
				(errmsg("connlog stopped replaying WAL at %X/%X: %s",
						LSN_FORMAT_ARGS(*last_end), edata->message),
				 errdetail("WAL-backed events after that point that were not written yet are lost.")));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller_cxt);
	*gone_to_out = gone_to;
	if (ninvalid > 0)
		ereport(WARNING,
				(errmsg("connlog did not write %llu events of its WAL records between %X/%X and %X/%X",
						(unsigned long long) ninvalid, LSN_FORMAT_ARGS(from),
						LSN_FORMAT_ARGS(*last_end)),
				 errdetail("connlog_enqueue would refuse their events (the first: %s).",
						   first_refusal)));
	if (nlegacy > 0)
		ereport(WARNING,
				(errmsg("connlog did not write %llu events from logical messages with prefix \"%s\" between %X/%X and %X/%X",
						(unsigned long long) nlegacy, LEGACY_PREFIX,
						LSN_FORMAT_ARGS(from), LSN_FORMAT_ARGS(*last_end)),
				 errdetail("connlog writes only the records of its own WAL resource manager \"%s\".  Any role can write logical messages with pg_logical_emit_message(), and those a connlog library signed with the key in file \"connlog_wal.key\" can be forged by anyone who has read that file.",
						   CONNLOG_RMGR_NAME),
				 errhint("Stop the server cleanly, which writes the pending events, before replacing the connlog library.")));
	*nbytes = out.len;
	return out.data;
}

/* ---------------------------------------------------------------------
 * The worker's progress (worker only)
 *
 * The worker reads connlog_wal_progress once, when it can first write,
 * and writes the WAL-backed events after it that no committed write
 * accounted for (connlog_wal_replay_at_start).  From then on, while the
 * slot exists, it stores with every write the progress that then holds
 * and lets the slot follow it.  progress_state:
 *
 *	UNREAD	 --replay-->		 OFF (no slot: nothing to track)
 *	UNREAD	 --replay-->		 TRACKED (the slot exists)
 *	OFF		 --a producer asks for the slot-->	TRACKED
 *
 * consumed_lsn: no WAL-backed event the worker has not taken from the
 * ring starts before it.  replay_from: the progress read at start, which
 * stays the one stored while batches read back from WAL are held.
 * stored: the progress the last committed write stored; slot_done: the
 * slot's restart_lsn as last advanced.
 * ---------------------------------------------------------------------
 */

typedef enum ProgressState
{
	PROGRESS_UNREAD,			/* connlog_wal_progress not read yet */
	PROGRESS_OFF,				/* read; there is no slot */
	PROGRESS_TRACKED			/* the slot exists: stored with each write */
} ProgressState;

/* how long the exiting worker's one-row UPDATE may take */
#define EXIT_PROGRESS_TIMEOUT_MS	1000

static ProgressState progress_state = PROGRESS_UNREAD;
static XLogRecPtr consumed_lsn;
static ConnlogProgress replay_from;
static ConnlogProgress stored;
static XLogRecPtr slot_done;
static uint64 wal_enqueued_seen;	/* see connlog_wal_wake_writer() */
static char *slot_error_logged;

bool
connlog_wal_replay_pending(void)
{
	return progress_state == PROGRESS_UNREAD;
}

/* Is the progress tracked, and stored with each write? */
bool
connlog_wal_tracking(void)
{
	return progress_state == PROGRESS_TRACKED;
}

/* No WAL-backed event the worker has not taken starts before lsn. */
void
connlog_wal_consumed(XLogRecPtr lsn)
{
	consumed_lsn = Max(consumed_lsn, lsn);
}

/*
 * The progress is tracked from now on: tell producers, who wait for the
 * slot before they write WAL-backed events (see "The slot" above).
 */
static void
start_tracking(void)
{
	progress_state = PROGRESS_TRACKED;
	pg_atomic_write_u32(&connlog_shared->slot_ready, 1);
	pg_atomic_write_u32(&connlog_shared->slot_wanted, 0);
	ConditionVariableBroadcast(&connlog_shared->ring.space_cv);
}

/*
 * The progress a write should store with it, in *p, given what the
 * worker's batches hold once that write commits; NULL for none.  Events
 * read back from WAL are not numbered in this life, so while any is held
 * the seq stored stays replay_from's.  Both the stored progress and the
 * new one hold, so the later lsn does too (no event not written starts
 * before either), and within one life so does the larger seq.  The
 * stored lsn therefore never goes back, nor does the slot that follows
 * it.
 */
ConnlogProgress *
connlog_wal_next_progress(const ConnlogHeld *held, ConnlogProgress *p)
{
	if (progress_state != PROGRESS_TRACKED)
		return NULL;
	p->epoch = connlog_shared->epoch;
	p->seq = held->oldest_seq;
	p->lsn = Min(consumed_lsn, held->oldest_floor);
	p->at_exit = false;
	p->pending = 0;
	if (held->replayed)
	{
		p->epoch = replay_from.epoch;
		p->seq = replay_from.seq;
	}
	p->lsn = Max(p->lsn, stored.lsn);
	if (p->epoch == stored.epoch)
	{
		p->seq = Max(p->seq, stored.seq);
		if (p->seq == stored.seq && p->lsn == stored.lsn)
			return NULL;
	}
	return p;
}

/*
 * Acquire the slot, setting it back to lsn if it was moved past it (see
 * "The slot is held" above); *moved_to is where it was found if so, else
 * InvalidXLogRecPtr.  Without a valid lsn there is nothing to compare: the
 * slot is only held.  False, with *error, if it cannot be acquired.
 */
static bool
take_slot(XLogRecPtr lsn, XLogRecPtr *moved_to, char **error)
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

/*
 * At start, the slot was found moved from done->lsn to moved_to and set
 * back; WAL from done->lsn to gone_to is gone (InvalidXLogRecPtr: none
 * is), and nrecords events were read back from what is left.  Log it, and
 * return how many events the move cost, counted in dropped by the caller:
 * those the last exiting worker (or, after a crash, the postmaster) left
 * unwritten, less those still in the ring and those read back; 0 if that
 * cannot be known, which the WARNING then says.
 */
static uint64
report_moved(const ConnlogProgress *done, XLogRecPtr moved_to,
			 XLogRecPtr gone_to, uint64 nrecords)
{
	ConnlogShared *s = connlog_shared;
	uint64		left;
	uint64		lost;

	if (XLogRecPtrIsInvalid(gone_to))
	{
		ereport(WARNING,
				(errmsg("replication slot \"%s\" was moved from %X/%X to %X/%X by another session",
						CONNLOG_SLOT_NAME, LSN_FORMAT_ARGS(done->lsn),
						LSN_FORMAT_ARGS(moved_to)),
				 errdetail("connlog set it back to %X/%X; no WAL had been removed since, so no event was lost.",
						   LSN_FORMAT_ARGS(done->lsn)),
				 errhint("While no connlog worker holds the slot, superusers and roles with REPLICATION can move or drop it.")));
		return 0;
	}
	if (done->at_exit)
	{
		left = done->pending;
		/* in the same life the ring still has its part: it is written */
		if (s->exit_stored)
			left -= Min(left, s->exit_ring_pending);
	}
	else if (s->crash_wal_pending > 0)
	{
		left = s->crash_wal_pending;
		s->crash_wal_pending = 0;	/* reported here, not as the crash's */
	}
	else
	{
		ereport(WARNING,
				(errmsg("replication slot \"%s\" was moved from %X/%X to %X/%X by another session; the WAL-backed events not written yet in the %llu bytes of WAL removed since are lost",
						CONNLOG_SLOT_NAME, LSN_FORMAT_ARGS(done->lsn),
						LSN_FORMAT_ARGS(moved_to),
						(unsigned long long) (gone_to - done->lsn)),
				 errdetail("connlog cannot tell how many: no worker stored a count of the events it left unwritten.  %llu events were read back from the WAL that is left.",
						   (unsigned long long) nrecords),
				 errhint("While no connlog worker holds the slot, superusers and roles with REPLICATION can move or drop it.")));
		return 0;
	}
	lost = left > nrecords ? left - nrecords : 0;
	ereport(WARNING,
			(errmsg("replication slot \"%s\" was moved from %X/%X to %X/%X by another session; %llu events were lost",
					CONNLOG_SLOT_NAME, LSN_FORMAT_ARGS(done->lsn),
					LSN_FORMAT_ARGS(moved_to), (unsigned long long) lost),
			 errdetail("The WAL from %X/%X to %X/%X was removed while no connlog worker held the slot; %llu WAL-backed events were not written yet, %llu were read back from the WAL that is left, and the lost ones are counted as dropped.",
					   LSN_FORMAT_ARGS(done->lsn), LSN_FORMAT_ARGS(gone_to),
					   (unsigned long long) left,
					   (unsigned long long) nrecords),
			 errhint("While no connlog worker holds the slot, superusers and roles with REPLICATION can move or drop it.")));
	return lost;
}

/* A write that stored progress has committed: let the slot follow. */
void
connlog_wal_progress_committed(const ConnlogProgress *progress)
{
	char	   *error;

	if (progress == NULL)
		return;
	stored = *progress;
	if (stored.lsn <= slot_done)
		return;

	/*
	 * Not held since the start (another process held it then): acquiring it
	 * now tells whether it moved meanwhile.  The events that concern are in
	 * the ring or held, and are written unless the server crashes first.
	 */
	if (MyReplicationSlot == NULL && connlog_wal_slot_exists())
	{
		XLogRecPtr	moved_to;

		if (take_slot(slot_done, &moved_to, &error) &&
			!XLogRecPtrIsInvalid(moved_to))
			ereport(WARNING,
					(errmsg("replication slot \"%s\" was moved from %X/%X to %X/%X by another session",
							CONNLOG_SLOT_NAME, LSN_FORMAT_ARGS(slot_done),
							LSN_FORMAT_ARGS(moved_to)),
					 errdetail("connlog set it back.  Events whose WAL was removed meanwhile are still written, but are lost if the server crashes first."),
					 errhint("While no connlog worker holds the slot, superusers and roles with REPLICATION can move or drop it.")));
	}
	if (connlog_wal_slot_advance(stored.lsn, &error))
	{
		slot_done = stored.lsn;
		return;
	}
	/* logged once for as long as it stays the same */
	if (slot_error_logged == NULL || strcmp(slot_error_logged, error) != 0)
	{
		ereport(WARNING,
			 (errmsg("connlog could not advance replication slot \"%s\": %s",
					 CONNLOG_SLOT_NAME, error),
			  errdetail("The slot keeps more WAL than needed until this is fixed.")));
		if (slot_error_logged != NULL)
			pfree(slot_error_logged);
		slot_error_logged = MemoryContextStrdup(TopMemoryContext, error);
	}
}

/*
 * At start, once the extension is there: read connlog_wal_progress and
 * hand the WAL-backed events after it that are neither written nor in the
 * ring to feed, which writes them (see "Replay" above).  held says what
 * the worker holds.  Returns false, with nothing done, if the extension
 * is missing.
 */
bool
connlog_wal_replay_at_start(ConnlogFeedFn feed, ConnlogHeldFn held)
{
	ConnlogProgress done;
	ConnlogHeld h;
	XLogRecPtr	first;
	XLogRecPtr	insert_lsn;
	XLogRecPtr	last_end;
	uint64		nrecords = 0;
	uint64		nskipped = 0;
	size_t		nbytes = 0;
	char	   *error;
	char	   *data = NULL;
	ConnlogWriteStatus st;
	ConnlogShared *s = connlog_shared;
	XLogRecPtr	moved_to = InvalidXLogRecPtr;
	XLogRecPtr	gone_to = InvalidXLogRecPtr;

	st = connlog_read_progress(&done, &error);
	if (st == CL_WRITE_MISSING)
		return false;
	progress_state = PROGRESS_OFF;
	if (st != CL_WRITE_OK)
	{
		ereport(WARNING,
		   (errmsg("connlog could not read connlog_wal_progress: %s", error),
			errdetail("WAL-backed events that were not written before the worker started are not replayed.")));
		memset(&done, 0, sizeof(done));
	}
	stored = replay_from = done;
	slot_done = done.lsn;
	first = connlog_ring_first_wal_floor(&insert_lsn);

	if (!XLogRecPtrIsInvalid(done.lsn))
	{
		if (!connlog_wal_slot_exists())
		{
			if (!connlog_wal_slot_create(done.lsn, &error))
				ereport(WARNING,
						(errmsg("connlog could not create replication slot \"%s\": %s",
								CONNLOG_SLOT_NAME, error)));
		}
		else if (!take_slot(done.lsn, &moved_to, &error))
			/* at a promotion the keeper may not have exited yet: LOG only */
			ereport(LOG,
					(errmsg("connlog could not acquire replication slot \"%s\" yet: %s",
							CONNLOG_SLOT_NAME, error),
					 errdetail("connlog tries again as it writes.")));
		last_end = done.lsn;
		if (done.lsn < insert_lsn)
			data = read_records(&done, insert_lsn, &last_end,
								&nrecords, &nskipped, &nbytes, &gone_to);
		if (!XLogRecPtrIsInvalid(moved_to))
		{
			uint64		lost = report_moved(&done, moved_to, gone_to,
											nrecords);

			/* as replayed events count (flush.c), so the identity holds */
			connlog_count(&s->counters.enqueued, lost);
			connlog_count(&s->counters.dropped, lost);
		}
		else if (!XLogRecPtrIsInvalid(gone_to))
			report_gone(&done, gone_to, nrecords);

		/*
		 * The ring's own events were left out of the replay: they may start
		 * before last_end, but not before the oldest one's floor.
		 */
		consumed_lsn = XLogRecPtrIsInvalid(first) ? last_end : Min(last_end, first);
		start_tracking();
		if (done.lsn < insert_lsn)
		{
			/* the replayed batches store progress as they are written */
			feed(data, nbytes, done.lsn);
			pfree(data);
			ereport(LOG,
					(errmsg("connlog replayed %llu events from WAL between %X/%X and %X/%X",
							(unsigned long long) nrecords,
					   LSN_FORMAT_ARGS(done.lsn), LSN_FORMAT_ARGS(last_end)),
					 nskipped > 0 ?
					 errdetail("%llu events in that WAL were left out: written already, or still in the ring.",
							   (unsigned long long) nskipped) : 0));
		}

		/*
		 * Nothing read back is held: store this life's progress now, so that
		 * a row an exiting worker (or another cluster, see "pg_upgrade"
		 * above) stored is not read, and reported on, again.
		 */
		if (nrecords == 0)
		{
			ConnlogProgress p;

			held(&h);
			if (connlog_wal_next_progress(&h, &p) != NULL &&
				connlog_write_progress(&p, &error) == CL_WRITE_OK)
				connlog_wal_progress_committed(&p);
		}
	}
	else if (st == CL_WRITE_OK && connlog_wal_slot_exists())
	{
		/*
		 * The slot is there but no progress was ever stored (say, the
		 * extension was created afresh).  No WAL-backed event can be in the
		 * ring yet: producers wait for slot_ready, which is set below.
		 */
		ConnlogProgress p;

		held(&h);
		memset(&p, 0, sizeof(p));
		p.epoch = s->epoch;
		p.seq = h.next_seq;
		p.lsn = insert_lsn;
		consumed_lsn = insert_lsn;
		if (connlog_write_progress(&p, &error) == CL_WRITE_OK)
		{
			stored = p;
			start_tracking();
		}
	}

	/* what the postmaster counted when the crash reset shared memory */
	if (s->crash_wal_pending > 0)
	{
		if (s->crash_wal_pending > nrecords)
			ereport(WARNING,
					(errmsg("connlog lost %llu WAL-backed events whose WAL had not been written when the server crashed",
					 (unsigned long long) (s->crash_wal_pending - nrecords)),
					 errdetail("%llu WAL-backed events were not written yet at the crash; %llu were read back from WAL.",
							   (unsigned long long) s->crash_wal_pending,
							   (unsigned long long) nrecords)));
		else
			ereport(LOG,
					(errmsg("connlog read back from WAL all %llu WAL-backed events that were not written yet at the crash",
							(unsigned long long) s->crash_wal_pending)));
		s->crash_wal_pending = 0;
	}
	pg_atomic_write_u32(&s->replaying, 0);
	ConditionVariableBroadcast(connlog_ring_flush_cv());
	return true;
}

/* Has a producer asked for the slot (its first WAL-backed event)? */
bool
connlog_wal_slot_requested(void)
{
	return progress_state != PROGRESS_UNREAD &&
		pg_atomic_read_u32(&connlog_shared->slot_wanted) != 0 &&
		pg_atomic_read_u32(&connlog_shared->slot_ready) == 0;
}

/*
 * A producer asked for the slot: create it at the insert position, and
 * store that as the progress, before any WAL-backed event exists.
 * next_seq is the ring's first event the worker has not read.  On
 * failure *error says why (NULL: the extension is missing).
 */
ConnlogSlotResult
connlog_wal_ensure_slot(uint64 next_seq, char **error)
{
	XLogRecPtr	insert_lsn = GetXLogInsertRecPtr();

	*error = NULL;
	if (!connlog_wal_slot_exists() &&
		!connlog_wal_slot_create(insert_lsn, error))
		return CL_SLOT_NOT_CREATED;
	consumed_lsn = Max(consumed_lsn, insert_lsn);
	if (XLogRecPtrIsInvalid(stored.lsn))
	{
		ConnlogProgress p;

		memset(&p, 0, sizeof(p));
		p.epoch = connlog_shared->epoch;
		p.seq = next_seq;
		p.lsn = insert_lsn;
		if (connlog_write_progress(&p, error) != CL_WRITE_OK)
			return CL_SLOT_PROGRESS_NOT_STORED;
		stored = p;
		slot_done = insert_lsn;
	}
	start_tracking();
	return CL_SLOT_READY;
}

/*
 * As the worker exits: store, with the progress, how many WAL-backed
 * events are not written: those of the ring not accounted for (a batch
 * half written counts whole, as the postmaster counts it) and those read
 * back from WAL that it holds.  A cluster that has the row but not the
 * WAL (pg_upgrade) reports that many as lost (see "pg_upgrade" above).
 */
void
connlog_wal_store_exit_progress(const ConnlogHeld *held)
{
	ConnlogStats st;
	ConnlogCounters *c = &connlog_shared->counters;
	ConnlogProgress p;
	int64		n;
	char	   *error;

	if (progress_state != PROGRESS_TRACKED)
		return;
	connlog_ring_stats(&st);
	n = (int64) (pg_atomic_read_u64(&c->wal_enqueued) -
				 pg_atomic_read_u64(&c->wal_accounted));
	n = Max(0, Min(n, (int64) st.pending));
	/* the ring's part, which a successor in this life finds there */
	connlog_shared->exit_ring_pending = (uint64) n;
	connlog_shared->exit_stored = true;
	n += held->nreplayed;
	if (connlog_wal_next_progress(held, &p) == NULL)
		p = stored;
	p.at_exit = true;
	p.pending = (uint64) n;
	/* one row's UPDATE, not bounded by what is left of shutdown_timeout */
	connlog_writer_set_timeout(EXIT_PROGRESS_TIMEOUT_MS);
	if (connlog_write_progress(&p, &error) == CL_WRITE_OK)
		connlog_wal_progress_committed(&p);
	else if (error != NULL)
		ereport(WARNING,
				(errmsg("connlog could not store in connlog_wal_progress how many WAL-backed events it leaves unwritten: %s",
						error),
				 errdetail("A cluster made from this one by pg_upgrade cannot tell how many such events it lost.")));
	else
		ereport(WARNING,
				(errmsg("connlog could not store in connlog_wal_progress how many WAL-backed events it leaves unwritten: extension connlog is not installed"),
				 errdetail("A cluster made from this one by pg_upgrade cannot tell how many such events it lost.")));
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
	/* see "What may be asked of the WAL writer" above */
	XLogSetAsyncXactLSN(insert_end(GetXLogInsertRecPtr()));
	return CONNLOG_WAL_WAKE_MS;
}
