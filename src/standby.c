/*-------------------------------------------------------------------------
 *
 * standby.c
 *		On a hot standby, keep the WAL that the primary's connlog worker
 *		has not written the events of, so that a promotion loses none.
 *
 * On the primary, the physical replication slot "connlog" keeps every WAL
 * segment from connlog_wal_progress.done_lsn on (wal.c).  Physical slots
 * are not replicated (17's slot synchronization copies logical slots only:
 * compat.h, connlog_slot_create), so a standby removes WAL at its
 * restartpoints as if connlog did not exist, and once promoted its worker
 * cannot read back the events the old primary had acknowledged but not
 * written: the WAL was streamed, replayed as no-ops, and removed.
 *
 * The keeper.  A second background worker, registered next to the main
 * one with BgWorkerStart_ConsistentState, runs only while the server is in
 * recovery (on a primary it exits at once, code 0, and is not restarted).
 * It connects read-only to connlog.database as connlog.role (while either
 * is missing on the standby it waits as the worker does, connect.c,
 * leaving the slot, if any, where it is; it looks every second, so that it
 * connects soon after the primary's CREATE DATABASE is replayed), reads the
 * replicated progress through writer.c's connlog_read_progress() (the same
 * checks that the table is the extension's member, the same session
 * settings), and keeps a physical slot of the same name, "connlog", whose
 * restart_lsn follows that done_lsn: created at it, and moved forward only.
 * Once promoted, the server's own worker (BgWorkerStart_RecoveryFinished)
 * finds the slot, replays from the done_lsn the promoted table holds, and
 * advances the slot as it writes, as on any primary.
 *
 * Why this is safe.  The keeper only ever sets restart_lsn to a done_lsn
 * it read in a committed, replayed row.  done_lsn only grows on the
 * primary, and replay only moves forward, so whatever the standby holds at
 * promotion is at or after what the slot keeps: the slot never keeps less
 * than the promoted worker reads.  Events the old primary wrote already
 * are left out of that replay by (epoch, done_seq), exactly as after a
 * crash restart (wal.c, "Replay"); the promoted server's epoch is its own,
 * so none of the old primary's events is taken for one its ring holds.
 * The slot lagging behind the table (the keeper looks once a second) only
 * keeps more WAL.  The checkpointer honours slots at a restartpoint too
 * (KeepLogSeg in CreateRestartPoint), and a slot is saved on disk and
 * restored before recovery starts, so after the first creation a restarted
 * standby is covered from its first restartpoint on.
 *
 * What it cannot cover:
 *
 *	- the window before the slot first exists.  A fresh standby has only
 *	  the WAL from its base backup's start on: events the primary had not
 *	  written when the backup started are not on the standby at all, until
 *	  the primary writes them.  And from recovery start until the keeper
 *	  has read the progress (once the standby is consistent and accepts
 *	  connections, plus a connection and a query), a restartpoint may
 *	  remove WAL after done_lsn.  SELECT connlog_flush() on the primary
 *	  before pg_basebackup, and wal_keep_size on the standby, close both.
 *	  The keeper warns when it creates the slot at an LSN whose segment is
 *	  gone, which it cannot tell from a gap with no unwritten event in it:
 *	  a base backup starts in a new segment, and done_lsn stays where the
 *	  last event was until the next one comes.
 *	- hot_standby = off: no connections, so no keeper.  The standby then
 *	  removes WAL as before, and a promotion loses the events the primary
 *	  had not written whose WAL is gone (the worker's "cannot replay"
 *	  WARNING gives the bytes).  wal_keep_size large enough for the
 *	  worker's lag (at least connlog.flush_interval's worth of WAL, more
 *	  while it is stalled) is the only substitute.
 *	- cascading standbys: each standby with connlog in
 *	  shared_preload_libraries and hot_standby = on runs its own keeper
 *	  from the same replicated table, so each keeps what it would need if
 *	  promoted; a standby without connlog preloaded keeps nothing.
 *	- max_slot_wal_keep_size: a slot it invalidates keeps nothing, on a
 *	  standby as on the primary; leave it at -1.
 *	- a slot from another history: a data directory copied file by file
 *	  may bring a slot "connlog" whose restart_lsn is past this history's
 *	  done_lsn.  The keeper moves the slot forward only, so such a slot
 *	  keeps too little until done_lsn passes it; drop it, and the keeper
 *	  makes it again.  pg_basebackup copies no slot, and pg_rewind removes
 *	  the rewound server's.
 *
 * The standby replays connlog's records with the redo of connlog's
 * resource manager (wal.c, "The records"), a no-op, so a standby that
 * streams them needs connlog in shared_preload_libraries, as the keeper
 * does anyway; the records need no key, so a promoted worker trusts what
 * it replays as the primary's would.
 *
 * The keeper holds the slot from its first slot operation until it exits,
 * as the primary's worker does (wal.c, "The slot is held"): while it runs,
 * no other session on the standby can move or drop the slot.  At
 * promotion the keeper sees RecoveryInProgress() turn false and exits with
 * code 0 before its next slot operation, which releases the slot; the
 * worker, which takes the slot with ReplicationSlotAcquire(nowait), takes
 * it at its next write should it start before the keeper has exited.
 *
 * IDENTIFICATION
 *	  src/standby.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/memutils.h"

#include "compat.h"
#include "connect.h"
#include "connlog.h"
#include "standby.h"
#include "slot.h"
#include "wal.h"
#include "writer.h"

/*
 * how often the keeper reads the replicated progress, or looks for a
 * missing database or role
 */
#define KEEPER_INTERVAL_MS	1000

static uint32 wait_event_keeper;

/* the restart_lsn the keeper last gave the slot */
static XLogRecPtr kept;

/* the last problem logged, so that a lasting one is logged once */
static char *logged;

/* What the keeper can fail to do, for note_problem() */
typedef enum KeeperProblem
{
	PROBLEM_NONE,
	PROBLEM_READ_PROGRESS,
	PROBLEM_CREATE_SLOT,
	PROBLEM_ADVANCE_SLOT
} KeeperProblem;

/*
 * Log a WARNING for a problem unless it is the one logged last (the same
 * kind and error); PROBLEM_NONE says the problem is over.
 */
static void
note_problem(KeeperProblem problem, const char *error)
{
	static KeeperProblem logged_problem = PROBLEM_NONE;

	if (problem == PROBLEM_NONE)
	{
		if (logged != NULL)
			pfree(logged);
		logged = NULL;
		logged_problem = PROBLEM_NONE;
		return;
	}
	if (problem == logged_problem && logged != NULL &&
		strcmp(logged, error) == 0)
		return;
	ereport(WARNING,
			(problem == PROBLEM_READ_PROGRESS ?
	errmsg("connlog could not read connlog_wal_progress on this standby: %s",
		   error) :
			 problem == PROBLEM_CREATE_SLOT ?
			 errmsg("connlog could not create its replication slot on this standby: %s",
					error) :
			 errmsg("connlog could not advance its replication slot on this standby: %s",
					error),
			 errdetail("Until this is fixed the standby keeps the WAL of the primary's unwritten events only as far as replication slot \"%s\" already does.",
					   CONNLOG_SLOT_NAME)));
	if (logged != NULL)
		pfree(logged);
	logged = MemoryContextStrdup(TopMemoryContext, error);
	logged_problem = problem;
}

/*
 * Read the replicated progress and let the slot follow it.  Every slot
 * operation is preceded by a test of RecoveryInProgress(): once promoted,
 * the slot is the worker's.
 */
static void
keep_turn(void)
{
	ConnlogProgress done;
	ConnlogWriteStatus st;
	char	   *error = NULL;

	st = connlog_read_progress(&done, &error);
	if (st == CL_WRITE_MISSING)
		return;					/* no extension: no WAL-backed events */
	if (st != CL_WRITE_OK)
	{
		note_problem(PROBLEM_READ_PROGRESS, error);
		return;
	}
	if (XLogRecPtrIsInvalid(done.lsn) || done.lsn <= kept ||
		!RecoveryInProgress())
		return;

	if (!connlog_wal_slot_exists())
	{
		XLogSegNo	segno;
		XLogSegNo	oldest = connlog_wal_oldest_segment();

		if (!connlog_wal_slot_create(done.lsn, &error))
		{
			note_problem(PROBLEM_CREATE_SLOT, error);
			return;
		}
		XLByteToSeg(done.lsn, segno, wal_segment_size);
		if (oldest != 0 && segno < oldest)
			ereport(WARNING,
					(errmsg("this standby has no WAL from %X/%X, where connlog's replication slot starts, to the start of its oldest WAL segment",
							LSN_FORMAT_ARGS(done.lsn)),
					 errdetail("Events in that range that the primary has not written yet are lost if this standby is promoted before the primary writes them; a standby made by a base backup has no WAL from before the backup."),
					 errhint("Nothing is missing if the primary had written every event enqueued before the base backup started (SELECT connlog_flush() there before pg_basebackup); wal_keep_size on the standby covers the time until the slot exists.")));
	}
	else if (!connlog_wal_slot_advance(done.lsn, &error))
	{
		note_problem(PROBLEM_ADVANCE_SLOT, error);
		return;
	}
	note_problem(PROBLEM_NONE, NULL);
	kept = done.lsn;
}

static void
reload_config(void)
{
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/*
 * Exit: for good once the server is promoted, and to be started again if
 * it is still in recovery (stopped by pg_terminate_backend, say).
 */
static void
keeper_exit(void)
{
	if (RecoveryInProgress())
		proc_exit(1);
	ereport(LOG,
			(errmsg("connlog standby keeper exits: the server was promoted, and its worker keeps replication slot \"%s\" now",
					CONNLOG_SLOT_NAME)));
	proc_exit(0);
}

/*
 * Waiting to connect (connect.c), once per look: the settings, SIGTERM,
 * and the end of recovery.
 */
static long
connect_wait_turn(void)
{
	reload_config();
	if (ShutdownRequestPending || !RecoveryInProgress())
		keeper_exit();
	return KEEPER_INTERVAL_MS;
}

void
connlog_standby_main(Datum main_arg)
{
	ConnlogConnectWait how;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	/* on a primary the worker keeps the slot */
	if (!RecoveryInProgress())
		proc_exit(0);

	how.who = CL_CONNECTOR_KEEPER;
	how.name = "connlog standby keeper";
	how.wait_event = CONNLOG_WAIT_EVENT(wait_event_keeper, "ConnlogStandby");
	how.turn = connect_wait_turn;
	how.publish = NULL;
	connlog_connect(&how);
	connlog_writer_init_session();
	ereport(LOG,
			(errmsg("connlog standby keeper started for database \"%s\"",
					connlog_database)));

	while (!ShutdownRequestPending && RecoveryInProgress())
	{
		CHECK_FOR_INTERRUPTS();
		reload_config();
		keep_turn();
		pgstat_report_activity(STATE_IDLE, NULL);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 KEEPER_INTERVAL_MS,
					CONNLOG_WAIT_EVENT(wait_event_keeper, "ConnlogStandby"));
		ResetLatch(MyLatch);
	}
	keeper_exit();
}
