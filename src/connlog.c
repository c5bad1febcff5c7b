/*-------------------------------------------------------------------------
 *
 * connlog.c
 *		Module entry point: _PG_init(), the shared memory hooks, and the
 *		registration of the worker and the standby keeper.
 *
 * The settings are defined in settings.c, the SQL functions live in
 * enqueue.c and status.c, and shared memory's layout in ring.c.  What is
 * here runs in the postmaster: it keeps, in postmaster memory, what must
 * survive a crash's reinitialization of shared memory (how many events
 * the old ring held, whether the worker is registered).
 *
 * IDENTIFICATION
 *	  src/connlog.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "postmaster/bgworker_internals.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "compat.h"
#include "connlog.h"
#include "guard.h"
#include "ring.h"
#include "progress.h"
#include "standby.h"
#include "wal.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * The WAL-backed events the ring held when shared memory was last
 * reinitialized after a crash (the worker reports how many of them it
 * could not read back); postmaster memory, so it survives into the new
 * shared memory (see connlog_shmem_startup).
 */
static uint64 crash_wal_pending;

/*
 * Whether _PG_init registered the worker; postmaster memory, copied into
 * shared memory at each (re)initialization (connlog_shmem_startup).
 */
static bool worker_registered = false;

#ifdef CONNLOG_HAVE_SHMEM_REQUEST_HOOK
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

#ifdef CONNLOG_HAVE_SHMEM_REQUEST_HOOK
static void
connlog_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(add_size(connlog_ring_shmem_size(connlog_ring_size_kb),
									connlog_guard_shmem_size()));
	RequestNamedLWLockTranche("connlog", 1);
}
#endif

/*
 * The detail of connlog_postmaster_shmem_exit()'s messages: why shared
 * memory goes away (a crash, or shutdown), and for WAL-backed events, how
 * the worker gets them back.
 */
static int
errdetail_shmem_exit(bool crash, bool wal_backed)
{
	if (!wal_backed)
		return crash ?
			errdetail("Shared memory is being reinitialized after a crash.") :
			errdetail("The server is shutting down.");
	return crash ?
		errdetail("Shared memory is being reinitialized after a crash; the worker reads the events back from WAL.  With connlog.durability = wal, those whose WAL had not been written when the crash came are lost: the worker logs how many.") :
		errdetail("The server is shutting down; the worker reads the events back from WAL when it starts again.");
}

/*
 * In the postmaster, when shared memory goes away: at shutdown, and before
 * it is made afresh after a crash.  Events not yet written die with it;
 * say how many.  The lock may be held by a dead process, so read without
 * it: the count is for the log only.
 */
static void
connlog_postmaster_shmem_exit(int code, Datum arg)
{
	ConnlogStats st;
	uint64		wal_pending;
	uint64		mem_pending;
	bool		crash = (code != 0);

	if (connlog_shared == NULL)
		return;
	connlog_ring_stats_unlocked(&st);
	wal_pending = connlog_wal_pending(st.pending);
	mem_pending = st.pending - wal_pending;
	connlog_shared = NULL;
	if (mem_pending > 0)
		ereport(WARNING,
				(errmsg("connlog lost %llu events that were not written yet",
						(unsigned long long) mem_pending),
				 errdetail_shmem_exit(crash, false)));
	if (wal_pending > 0)
		ereport(LOG,
				(errmsg("connlog will replay %llu WAL-backed events that were not written yet",
						(unsigned long long) wal_pending),
				 errdetail_shmem_exit(crash, true),
				 crash ? 0 :
				 errhint("pg_upgrade does not keep WAL: to upgrade without losing them, start the server again and stop it once connlog_stats shows nothing pending.")));
	if (crash)
		crash_wal_pending = wal_pending;
}

static void
connlog_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	connlog_ring_shmem_init(connlog_ring_size_kb,
							crash_wal_pending);
	connlog_ring_set_registered(worker_registered);
	crash_wal_pending = 0;
	connlog_guard_shmem_init();
	LWLockRelease(AddinShmemInitLock);

	/*
	 * Registered after the shared memory itself, so it runs before that is
	 * detached; shmem_exit() forgets it, and each reinitialization comes back
	 * here.
	 */
	if (!IsUnderPostmaster)
		on_shmem_exit(connlog_postmaster_shmem_exit, (Datum) 0);
}

/*
 * Register a background worker of this library; returns whether the
 * postmaster took it.  RegisterBackgroundWorker() only logs, at LOG, when
 * it refuses (max_worker_processes is exhausted by the libraries loaded
 * before this one), and returns nothing; a registration puts the worker at
 * the head of the postmaster's list, so that tells.
 */
static bool
register_worker(const char *function, const char *name,
				BgWorkerStartTime start_time, int restart_time)
{
	BackgroundWorker worker;
	ConnlogBgworkerNode *head = BackgroundWorkerList.head.next;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = start_time;
	worker.bgw_restart_time = restart_time;
	strlcpy(worker.bgw_library_name, "connlog", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, function, BGW_MAXLEN);
	strlcpy(worker.bgw_name, name, BGW_MAXLEN);
	strlcpy(worker.bgw_type, name, BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
	return BackgroundWorkerList.head.next != head;
}

void
_PG_init(void)
{
	/*
	 * The ring lives in shared memory sized at server start, so there is
	 * nothing to do when loaded any other way; the SQL functions then say so.
	 */
	if (!process_shared_preload_libraries_in_progress)
		return;
	connlog_define_settings();

#ifdef CONNLOG_HAVE_SHMEM_REQUEST_HOOK
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = connlog_shmem_request;
#else
	RequestAddinShmemSpace(add_size(connlog_ring_shmem_size(connlog_ring_size_kb),
									connlog_guard_shmem_size()));
	RequestNamedLWLockTranche("connlog", 1);
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = connlog_shmem_startup;

	/*
	 * Registered even in binary-upgrade mode: recovery, there as anywhere,
	 * must be able to replay connlog's records (doc/internals.md, "The
	 * records").
	 */
	connlog_wal_register_rmgr();

	/*
	 * pg_upgrade starts both the old and the new server with -b.  The worker
	 * must not write into a cluster being upgraded (it would replay WAL into
	 * the old one while its schema is dumped, and write into the new one
	 * before its data files are copied in), and no one enqueues there;
	 * without a worker, connlog_enqueue refuses events.  See
	 * doc/internals.md, "pg_upgrade".
	 */
	if (IsBinaryUpgrade)
		return;

	/*
	 * A standby must not write: start only once recovery has finished.  An
	 * unregistered worker would let connlog_enqueue accept events that nobody
	 * writes until the ring fills: without it connlog_enqueue refuses every
	 * event (check_can_enqueue), and the log says why at once.
	 */
	worker_registered = register_worker("connlog_worker_main",
										"connlog worker",
										BgWorkerStart_RecoveryFinished, 1);
	if (!worker_registered)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("connlog could not register its background worker"),
				 errdetail("connlog_enqueue refuses every event while no worker can write them."),
		errhint("Raise max_worker_processes (now %d) and restart the server.",
				max_worker_processes)));

	/*
	 * A hot standby's keeper of the WAL the primary's worker needs (see
	 * standby.c); an exit in recovery is retried slowly, in case whatever
	 * ended it lasts (a missing database or role is waited for instead,
	 * connect.c).  Without it the server runs as before, but as a standby it
	 * keeps nothing for connlog: say so.
	 */
	if (!register_worker("connlog_standby_main", "connlog standby keeper",
						 BgWorkerStart_ConsistentState, 10))
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("connlog could not register its standby keeper"),
				 errdetail("As a standby, this server does not keep the WAL of the events the primary has not written; a promotion may lose them."),
		errhint("Raise max_worker_processes (now %d) and restart the server.",
				max_worker_processes)));
}
