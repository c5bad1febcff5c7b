/*-------------------------------------------------------------------------
 *
 * standby.c
 *		On a hot standby, keep the WAL that the primary's connlog worker
 *		has not written the events of, so that a promotion loses none.
 *
 * The keeper is a second background worker, registered next to the main
 * one with BgWorkerStart_ConsistentState.  It runs only while the server
 * is in recovery: on a primary it exits at once, code 0, and is not
 * restarted.  It connects to connlog.database as connlog.role (connect.c,
 * waiting while either is missing on the standby), and once a second
 * reads the replicated connlog_wal_progress (statements.c) and lets the
 * physical slot "connlog" follow its done_lsn (slot.c): created at it,
 * moved forward only.  Once promoted, the server's own worker finds the
 * slot and replays from there (progress.c).
 *
 * Every slot operation is preceded by a test of RecoveryInProgress(): once
 * promoted, the slot is the worker's.  The keeper holds the slot from its
 * first slot operation until it exits, which releases it; at promotion it
 * exits with code 0 before its next slot operation.
 *
 * Shared state: only the slot, under the server's own locking, and the
 * keeper's "connecting" mark (connect.c).  kept and the last problem
 * logged are the keeper's own.
 *
 * Why this is safe, and what it cannot cover (the window before the slot
 * exists, hot_standby = off, max_slot_wal_keep_size, a slot from another
 * history): doc/internals.md, "The standby's keeper".
 *
 * IDENTIFICATION
 *	  src/standby.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
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
#include "once.h"
#include "standby.h"
#include "slot.h"
#include "wal.h"
#include "statements.h"

/*
 * how often the keeper reads the replicated progress, or looks for a
 * missing database or role
 */
#define KEEPER_INTERVAL_MS	1000

static uint32 wait_event_keeper;

/* the restart_lsn the keeper last gave the slot */
static XLogRecPtr kept;

/* the last problem logged, so that a lasting one is logged once */
static ConnlogLogOnce logged;

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
 * kind and error: what is remembered is both, since the same error text
 * may come from reading the progress and from a slot operation);
 * PROBLEM_NONE says the problem is over.
 */
static void
note_problem(KeeperProblem problem, const char *error)
{
	char	   *key;
	bool		news;

	if (problem == PROBLEM_NONE)
	{
		(void) connlog_log_once(&logged, NULL);
		return;
	}
	key = psprintf("%d\n%s", (int) problem, error);
	news = connlog_log_once(&logged, key);
	pfree(key);
	if (!news)
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
		if (!connlog_wal_slot_create(done.lsn, &error))
		{
			note_problem(PROBLEM_CREATE_SLOT, error);
			return;
		}
		if (!XLogRecPtrIsInvalid(connlog_wal_gone_to(done.lsn)))
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

/* How the keeper waits to connect; the wait event is set at start */
static ConnlogConnectWait connect_wait = {
	.who = CL_CONNECTOR_KEEPER,
	.name = "connlog standby keeper",
	.turn = connect_wait_turn,
	.publish = NULL,
};

void
connlog_standby_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	/* on a primary the worker keeps the slot */
	if (!RecoveryInProgress())
		proc_exit(0);

	connect_wait.wait_event =
		CONNLOG_WAIT_EVENT(wait_event_keeper, "ConnlogStandby");
	connlog_connect(&connect_wait);
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
