/*-------------------------------------------------------------------------
 *
 * connect.c
 *		Connect a background worker to connlog.database as connlog.role,
 *		without a restart storm while either is missing.
 *
 * The worker (worker.c) and the standby keeper (standby.c) connect with
 * BackgroundWorkerInitializeConnection(), which a missing database, a
 * missing role or a role without LOGIN makes FATAL.  The postmaster
 * restarts a worker that exited so after its restart interval, so a
 * database that does not exist yet (on a primary set up in the wrong
 * order, or on a standby until the primary's CREATE DATABASE is replayed)
 * would mean a FATAL and a restart every interval, forever.  A process
 * cannot look before it connects: connecting to no database is a
 * connection too, and a process makes only one.
 *
 * So a process marks "connecting" in shared memory before it connects,
 * and clears the mark once connected.  A process that finds the mark set
 * knows its predecessor died connecting: it connects to no database
 * instead, looks in the shared catalogs pg_database and pg_authid every
 * so often (the caller says how often), logs what it waits for, and once
 * nothing is in the way any more clears the mark and exits to be
 * restarted; its successor connects.  Each missing database or role thus
 * costs one failed connection, not one per restart interval.  This works
 * on a hot standby as well: shared catalogs are readable there, and they
 * show a database as soon as its creation is replayed.
 *
 * Each kind of process has a mark of its own (ring.h): at a promotion the
 * keeper may still be connecting while the worker starts, and a worker
 * that took the keeper's failed attempt for its own would wait for
 * nothing, or the other way round.  The marks live in shared memory, so
 * after a crash restart (which reinitializes it) the first attempt fails
 * once more.
 *
 * IDENTIFICATION
 *	  src/connect.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "compat.h"
#include "connlog.h"
#include "connect.h"
#include "runner.h"
#include "wal.h"

pg_noreturn static void wait_to_connect(const ConnlogConnectWait *how);

/*
 * Does a row named name exist in shared catalog relid?  For pg_authid,
 * *canlogin tells whether the role may log in.  A process connected to no
 * database can read shared catalogs only by sequential scan: their indexes
 * need per-database catalogs to open.
 */
static bool
shared_catalog_has(Oid relid, const char *name, bool *canlogin)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TableScanDesc scan = table_beginscan_catalog(rel, 0, NULL);
	HeapTuple	tup;
	bool		found = false;

	while (!found && (tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		if (relid == DatabaseRelationId)
			found = strcmp(NameStr(((Form_pg_database) GETSTRUCT(tup))->datname),
						   name) == 0;
		else
		{
			Form_pg_authid role = (Form_pg_authid) GETSTRUCT(tup);

			found = strcmp(NameStr(role->rolname), name) == 0;
			if (found)
				*canlogin = role->rolcanlogin;
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * What keeps a connection to connlog.database as connlog.role from
 * working: CL_STATE_NO_DATABASE, CL_STATE_NO_ROLE, CL_STATE_ROLE_NOLOGIN
 * (which a background worker's connection is refused for like any other),
 * or CL_STATE_STARTING for nothing.  Runs a transaction of its own.
 */
static ConnlogWorkerState
connect_blocker(void)
{
	bool		canlogin = true;
	ConnlogWorkerState state;

	StartTransactionCommand();
	if (!shared_catalog_has(DatabaseRelationId, connlog_database, NULL))
		state = CL_STATE_NO_DATABASE;
	else if (connlog_role[0] != '\0' &&
			 !shared_catalog_has(AuthIdRelationId, connlog_role, &canlogin))
		state = CL_STATE_NO_ROLE;
	else if (!canlogin)
		state = CL_STATE_ROLE_NOLOGIN;
	else
		state = CL_STATE_STARTING;
	CommitTransactionCommand();
	return state;
}

/* The detail of what a waiting process logs */
static int
errdetail_wait(ConnlogConnector who)
{
	if (who == CL_CONNECTOR_KEEPER)
		return errdetail("Until then this standby keeps the WAL of the primary's unwritten events only as far as replication slot \"%s\" already does; connlog looks again every second.",
						 CONNLOG_SLOT_NAME);
	return errdetail("Events stay in the ring until then; connlog looks again every connlog.flush_interval.");
}

/* Log what process who waits for: state says what is missing */
static void
log_wait(ConnlogConnector who, ConnlogWorkerState state)
{
	bool		keeper = who == CL_CONNECTOR_KEEPER;

	switch (state)
	{
		case CL_STATE_NO_DATABASE:
			ereport(LOG,
					(keeper ?
					 errmsg("connlog standby keeper is waiting: database \"%s\" does not exist",
							connlog_database) :
					 errmsg("connlog worker is waiting: database \"%s\" does not exist",
							connlog_database),
					 errdetail_wait(who)));
			break;
		case CL_STATE_NO_ROLE:
			ereport(LOG,
					(keeper ?
					 errmsg("connlog standby keeper is waiting: role \"%s\" does not exist",
							connlog_role) :
			  errmsg("connlog worker is waiting: role \"%s\" does not exist",
					 connlog_role),
					 errdetail_wait(who)));
			break;
		default:
			ereport(LOG,
					(keeper ?
					 errmsg("connlog standby keeper is waiting: role \"%s\" is not permitted to log in",
							connlog_role) :
					 errmsg("connlog worker is waiting: role \"%s\" is not permitted to log in",
							connlog_role),
					 errdetail_wait(who),
				  errhint("Run ALTER ROLE %s LOGIN, or change connlog.role.",
						  quote_identifier(connlog_role))));
			break;
	}
}

/*
 * The previous process of this kind died connecting: connect to no
 * database, look until nothing is in the way, and exit to be restarted.
 * Each look runs in a memory context emptied before the next.
 */
static void
wait_to_connect(const ConnlogConnectWait *how)
{
	MemoryContext look_cxt;
	ConnlogWorkerState last = CL_STATE_NOT_RUNNING;

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname(how->name);
	look_cxt = AllocSetContextCreate(TopMemoryContext, "connlog connect wait",
									 ALLOCSET_SMALL_SIZES);
	for (;;)
	{
		ConnlogWorkerState state;
		long		sleep_ms;
		char	   *why;

		MemoryContextSwitchTo(look_cxt);
		MemoryContextReset(look_cxt);
		CHECK_FOR_INTERRUPTS();
		sleep_ms = how->turn();

		state = connect_blocker();
		MemoryContextSwitchTo(look_cxt);
		pgstat_report_activity(STATE_IDLE, NULL);
		if (state == CL_STATE_STARTING)
		{
			if (how->who == CL_CONNECTOR_KEEPER)
				ereport(LOG,
						(errmsg("connlog standby keeper restarting to connect to database \"%s\"",
								connlog_database)));
			else
				ereport(LOG,
						(errmsg("connlog worker restarting to connect to database \"%s\"",
								connlog_database)));
			(void) connlog_ring_set_connecting(how->who, false);
			proc_exit(1);
		}
		why = state == CL_STATE_NO_DATABASE ?
			psprintf("database \"%s\" does not exist", connlog_database) :
			state == CL_STATE_NO_ROLE ?
			psprintf("role \"%s\" does not exist", connlog_role) :
			psprintf("role \"%s\" is not permitted to log in", connlog_role);
		if (how->publish != NULL)
			how->publish(state, why);
		if (state != last)
			log_wait(how->who, state);
		last = state;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, how->wait_event);
		ResetLatch(MyLatch);
	}
}

/*
 * Connect to connlog.database as connlog.role, or, if the previous process
 * of this kind died doing so, wait until that can work and exit (see
 * above).  Once connected, the session gets the settings connlog's
 * statements need (runner.c).
 */
void
connlog_connect(const ConnlogConnectWait *how)
{
	if (connlog_ring_set_connecting(how->who, true))
		wait_to_connect(how);
	BackgroundWorkerInitializeConnection(connlog_database,
							   connlog_role[0] != '\0' ? connlog_role : NULL,
										 0);
	(void) connlog_ring_set_connecting(how->who, false);
	pgstat_report_appname(how->name);
	connlog_writer_init_session();
}
