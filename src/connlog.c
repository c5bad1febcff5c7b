/*-------------------------------------------------------------------------
 *
 * connlog.c
 *		Module entry point: settings, shared memory hooks, worker
 *		registration, and the SQL-callable functions.
 *
 * connlog_enqueue() is the hot path.  It validates its arguments, encodes
 * the event (batch.c) into a stack buffer and copies it into the ring
 * (ring.c); it touches no table and takes no lock a writer holds, and
 * with connlog.durability = memory (the default) it writes no WAL (see
 * wal.c for the other modes).  Everything per-backend that needs the catalogs (the database
 * name check, enum OID to label) is looked up once and cached, so a call
 * costs about what SELECT 1 costs.
 *
 * IDENTIFICATION
 *	  src/connlog.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "access/xlog.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_enum.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "common/int.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "postmaster/bgworker_internals.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/array.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/inet.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
#include "utils/varlena.h"

#include "batch.h"
#include "compat.h"
#include "connlog.h"
#include "guard.h"
#include "ring.h"
#include "standby.h"
#include "progress.h"
#include "wal.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* GUCs */
char	   *connlog_database = NULL;
char	   *connlog_role = NULL;
char	   *connlog_target_table = NULL;
char	   *connlog_table = NULL;
int			connlog_ring_size_kb = 16384;
int			connlog_batch_size = 1000;
int			connlog_flush_interval_ms = 5000;
int			connlog_max_retries = 3;
int			connlog_retry_interval_ms = 1000;
int			connlog_retry_queue_size = 10;
int			connlog_shutdown_timeout_ms = 10000;
int			connlog_statement_timeout_ms = 60000;
int			connlog_enqueue_timeout_ms = 10000;
int			connlog_overflow = CL_PUT_WAIT;
bool		connlog_log_events = false;
int			connlog_retention_s = 0;
int			connlog_purge_batch_size = 10000;
int			connlog_purge_interval_ms = 600000;
int			connlog_durability = CL_DURABILITY_MEMORY;

bool		connlog_is_worker = false;

static const struct config_enum_entry durability_options[] = {
	{"memory", CL_DURABILITY_MEMORY, false},
	{"wal", CL_DURABILITY_WAL, false},
	{"flush", CL_DURABILITY_FLUSH, false},
	{NULL, 0, false}
};

/*
 * What the ring held when shared memory was last reinitialized after a
 * crash, split into memory-only and WAL-backed events; postmaster memory,
 * so it survives into the new shared memory (see connlog_shmem_startup).
 */
static uint64 crash_mem_pending;
static uint64 crash_wal_pending;

/*
 * Whether _PG_init registered the worker; postmaster memory, copied into
 * shared memory at each (re)initialization (connlog_shmem_startup).
 */
static bool worker_registered = false;

static const struct config_enum_entry overflow_options[] = {
	{"wait", CL_PUT_WAIT, false},
	{"error", CL_PUT_ERROR, false},
	{"drop", CL_PUT_DROP, false},
	{NULL, 0, false}
};

#ifdef CONNLOG_HAVE_SHMEM_REQUEST_HOOK
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* how long connlog_flush() waits for the first worker to start */
#define FLUSH_WORKER_GRACE_MS	3000

static uint32 wait_event_ring_full;
static uint32 wait_event_flush;

/* connlog_enqueue's arguments, by position */
enum
{
	ARG_ID,
	ARG_EVENT_TIME,
	ARG_ORGANIZATION_ID,
	ARG_WORKSPACE_OWNER_ID,
	ARG_WORKSPACE_ID,
	ARG_WORKSPACE_NAME,
	ARG_AGENT_NAME,
	ARG_TYPE,
	ARG_STATUS,
	ARG_CONNECTION_ID,
	ARG_IP,
	ARG_CODE,
	ARG_USER_AGENT,
	ARG_USER_ID,
	ARG_SLUG_OR_PORT,
	ARG_DISCONNECT_REASON,
	ARG_EXTRA,					/* from 1.3 */
	NUM_ARGS
};

static const char *const arg_names[NUM_ARGS] = {
	"id", "event_time", "organization_id", "workspace_owner_id",
	"workspace_id", "workspace_name", "agent_name", "type", "status",
	"connection_id", "ip", "code", "user_agent", "user_id", "slug_or_port",
	"disconnect_reason", "extra"
};

PG_FUNCTION_INFO_V1(connlog_enqueue);
PG_FUNCTION_INFO_V1(connlog_enqueue_1_2);
PG_FUNCTION_INFO_V1(connlog_enqueue_1_3);
PG_FUNCTION_INFO_V1(connlog_enqueue_batch);
PG_FUNCTION_INFO_V1(connlog_flush);
PG_FUNCTION_INFO_V1(connlog_stats);
PG_FUNCTION_INFO_V1(connlog_stats_1_1);
PG_FUNCTION_INFO_V1(connlog_stats_1_2);

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
				 code != 0 ?
		   errdetail("Shared memory is being reinitialized after a crash.") :
				 errdetail("The server is shutting down.")));
	if (wal_pending > 0)
		ereport(LOG,
				(errmsg("connlog will replay %llu WAL-backed events that were not written yet",
						(unsigned long long) wal_pending),
				 code != 0 ?
				 errdetail("Shared memory is being reinitialized after a crash; the worker reads the events back from WAL.  With connlog.durability = wal, those whose WAL had not been written when the crash came are lost: the worker logs how many.") :
				 errdetail("The server is shutting down; the worker reads the events back from WAL when it starts again."),
				 code != 0 ? 0 :
				 errhint("pg_upgrade does not keep WAL: to upgrade without losing them, start the server again and stop it once connlog_stats shows nothing pending.")));
	if (code != 0)
	{
		crash_mem_pending = mem_pending;
		crash_wal_pending = wal_pending;
	}
}

static void
connlog_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	connlog_ring_shmem_init(connlog_ring_size_kb, crash_mem_pending,
							crash_wal_pending);
	connlog_shared->worker_registered = worker_registered;
	crash_mem_pending = crash_wal_pending = 0;
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

/*
 * connlog.target_table (and connlog.table, its deprecated alias): empty,
 * or a schema-qualified table name.  The worker's search_path is
 * pg_catalog, so an unqualified name could only mean a system table; say
 * so at once rather than when the worker looks.
 */
static bool
check_table(char **newval, void **extra, GucSource source)
{
	char	   *schema;
	char	   *relname;

	if ((*newval)[0] == '\0')
		return true;
	if (!connlog_table_name(*newval, &schema, &relname))
	{
		GUC_check_errdetail("The value must be a schema-qualified table name, such as \"public.connection_logs\".");
		return false;
	}
	return true;
}

/*
 * The table the rows go to: connlog.target_table, or while that is empty,
 * connlog.table, its deprecated alias (TABLE is a reserved word, so
 * ALTER SYSTEM SET connlog.table is a syntax error unless quoted).  A
 * configuration that sets only the alias must keep writing where it says
 * when the library is upgraded, rather than silently into the extension's
 * own table, so the alias still counts; the worker warns about it
 * (writer.c).  Empty: the extension's own connection_logs.
 */
const char *
connlog_effective_table(void)
{
	if (connlog_target_table != NULL && connlog_target_table[0] != '\0')
		return connlog_target_table;
	if (connlog_table != NULL)
		return connlog_table;
	return "";
}

/*
 * connlog.table reads as the table in use, connlog_effective_table(), so
 * that what reads the setting by its deprecated name (the query functions
 * of a database whose extension is not yet updated, a monitoring query)
 * reads the same table the worker writes into.
 */
static const char *
show_table_alias(void)
{
	return connlog_effective_table();
}

/*
 * Split connlog.target_table's (or connlog.table's) value into its schema
 * and table names, as SQL would (quotes, case folding).  Returns false unless it is exactly a
 * schema and a table.  The names are palloc'd.
 */
bool
connlog_table_name(const char *value, char **schema, char **relname)
{
	char	   *copy = pstrdup(value);
	List	   *names;
	bool		ok;

	ok = SplitIdentifierString(copy, '.', &names) &&
		list_length(names) == 2;
	if (ok)
	{
		*schema = pstrdup(linitial(names));
		*relname = pstrdup(lsecond(names));
	}
	list_free(names);
	pfree(copy);
	return ok;
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

	DefineCustomStringVariable("connlog.database",
							   "Database the connlog worker writes to; events can be enqueued only there.",
							   NULL, &connlog_database, "postgres",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("connlog.role",
	"Role the connlog worker writes as; empty means the bootstrap superuser.",
							   NULL, &connlog_role, "",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("connlog.target_table",
					 "Table the connlog worker writes connection rows into.",
							   "Empty means the extension's own connection_logs (or connlog.table, if that is set); otherwise a schema-qualified table name.",
							   &connlog_target_table, "",
							   PGC_SIGHUP, 0, check_table, NULL, NULL);
	DefineCustomStringVariable("connlog.table",
		"Deprecated name of connlog.target_table, used while that is empty.",
		 "Reads as the table in use: connlog.target_table when that is set.",
							   &connlog_table, "",
							   PGC_SIGHUP, 0, check_table, NULL,
							   show_table_alias);
	DefineCustomIntVariable("connlog.ring_size",
				"Size of the shared-memory ring that holds enqueued events.",
							NULL, &connlog_ring_size_kb, 16384, 64,
							4 * 1024 * 1024,
							PGC_POSTMASTER, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("connlog.batch_size",
							"Rows written by one upsert at most.",
							NULL, &connlog_batch_size, 1000, 1, 100000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("connlog.flush_interval",
							"Longest time an event waits in a partial batch.",
							NULL, &connlog_flush_interval_ms, 5000, 1,
							INT_MAX, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("connlog.max_retries",
					   "Times a failed batch is retried before it is split.",
							NULL, &connlog_max_retries, 3, 0, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("connlog.retry_interval",
							"Time between retries of a failed batch.",
							NULL, &connlog_retry_interval_ms, 1000, 1,
							INT_MAX, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("connlog.retry_queue_size",
							"Failed batches held for retry; while full the worker stops draining the ring.",
							NULL, &connlog_retry_queue_size, 10, 1, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("connlog.shutdown_timeout",
	 "Time the worker spends writing the ring's contents when told to exit.",
							NULL, &connlog_shutdown_timeout_ms, 10000, 0,
							INT_MAX, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("connlog.statement_timeout",
		  "Longest time one statement of the worker may run; 0 disables it.",
							"A statement still running connlog.shutdown_timeout after it was cancelled ends the worker, which the postmaster restarts.",
							&connlog_statement_timeout_ms, 60000, 0,
							INT_MAX, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("connlog.enqueue_timeout",
							"Time connlog_enqueue waits for ring space when connlog.overflow is \"wait\".",
							NULL, &connlog_enqueue_timeout_ms, 10000, 0,
							INT_MAX, PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("connlog.overflow",
	 "What connlog_enqueue does when the ring is full: wait, error or drop.",
							 NULL, &connlog_overflow, CL_PUT_WAIT,
							 overflow_options, PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("connlog.log_events",
			   "Also writes every event to the server log as one JSON line.",
							 NULL, &connlog_log_events, false,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("connlog.retention",
					   "Age past which rows of connection_logs are deleted.",
							"Rows whose connect_time is older than this are deleted, from connlog.target_table when it is set; 0 keeps them forever.",
							&connlog_retention_s, 0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("connlog.purge_batch_size",
			 "Rows deleted per transaction when applying connlog.retention.",
						  NULL, &connlog_purge_batch_size, 10000, 1, 1000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("connlog.purge_interval",
							"Time between two runs of connlog.retention.",
							NULL, &connlog_purge_interval_ms, 600000, 1000,
							INT_MAX, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("connlog.durability",
							 "What of an accepted event survives a crash.",
							 "memory: nothing the worker has not written; wal: a WAL record, not waited for; flush: a WAL record flushed (and replicated as a commit is) before connlog_enqueue returns.", &connlog_durability, CL_DURABILITY_MEMORY,
							 durability_options, PGC_SUSET, 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("connlog");

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
	 * must be able to replay connlog's records (wal.c, "The records").
	 */
	connlog_wal_register_rmgr();

	/*
	 * pg_upgrade starts both the old and the new server with -b.  The worker
	 * must not write into a cluster being upgraded (it would replay WAL into
	 * the old one while its schema is dumped, and write into the new one
	 * before its data files are copied in), and no one enqueues there;
	 * without a worker, connlog_enqueue refuses events.  See wal.c,
	 * "pg_upgrade".
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

static void
require_shared_memory(void)
{
	if (connlog_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		   errmsg("connlog must be loaded via \"shared_preload_libraries\""),
				 errhint("Add connlog to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/* Refuse to accept work for a worker that was never registered. */
static void
require_worker(void)
{
	require_shared_memory();
	if (IsBinaryUpgrade)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		   errmsg("connlog does not accept events in binary-upgrade mode")));
	if (!connlog_shared->worker_registered)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("connlog worker is not registered"),
				 errdetail("The server could not register the connlog background worker at startup, so no event would be written."),
		errhint("Raise max_worker_processes (now %d) and restart the server.",
				max_worker_processes)));
}

/*
 * Refuse events that no worker would write: without a registered worker,
 * on a standby, and in any database but connlog.database.  The database
 * check needs the catalog, so its answer is kept for the life of the
 * backend.
 */
static void
check_can_enqueue(void)
{
	static int	database_ok = -1;

	require_worker();
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
			  errmsg("cannot enqueue connection log events during recovery"),
				 errhint("Call connlog_enqueue on the primary server.")));
	if (database_ok < 0)
	{
		char	   *name = get_database_name(MyDatabaseId);

		database_ok = (name != NULL && strcmp(name, connlog_database) == 0);
	}
	if (!database_ok)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			  errmsg("connlog_enqueue can only be called in database \"%s\"",
					 connlog_database),
				 errdetail("The connlog worker writes to the database named by connlog.database; this is database \"%s\".",
						   get_database_name(MyDatabaseId))));
}

/*
 * Map an enum value's OID to its position in labels.  OIDs of enum values
 * never change meaning, so a small per-backend cache is always right, even
 * across DROP and CREATE EXTENSION (new values get new OIDs).
 */
static uint8
enum_index(Oid value, const char *const *labels, int nlabels)
{
	static struct
	{
		Oid			oid;
		uint8		index;
	}			cache[16];
	static int	ncache = 0;
	HeapTuple	tup;
	const char *label;
	int			index = -1;

	for (int i = 0; i < ncache; i++)
		if (cache[i].oid == value)
			return cache[i].index;

	tup = SearchSysCache1(ENUMOID, ObjectIdGetDatum(value));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid internal value for enum: %u", value)));
	label = NameStr(((Form_pg_enum) GETSTRUCT(tup))->enumlabel);
	for (int i = 0; i < nlabels; i++)
		if (strcmp(label, labels[i]) == 0)
			index = i;
	if (index < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			  errmsg("connlog does not know the enum value \"%s\"", label)));
	ReleaseSysCache(tup);
	if (ncache < lengthof(cache))
	{
		cache[ncache].oid = value;
		cache[ncache].index = (uint8) index;
		ncache++;
	}
	return (uint8) index;
}

static void
get_uuid(FunctionCallInfo fcinfo, int arg, uint8 *dst)
{
	memcpy(dst, PG_GETARG_UUID_P(arg)->data, UUID_LEN);
}

/*
 * A text value of argument name; too long a field is reported with the
 * event's size.
 */
static void
set_text(text *t, const char *name, ClText *dst)
{
	size_t		len = VARSIZE_ANY_EXHDR(t);

	if (len > CL_MAX_RECORD)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("connection log event is too large"),
				 errdetail("Argument \"%s\" is %zu bytes; connlog stores at most %d bytes per event.",
						   name, len, CL_MAX_RECORD)));
	dst->data = VARDATA_ANY(t);
	dst->len = (uint16) len;
}

static void
get_text(FunctionCallInfo fcinfo, int arg, ClText *dst)
{
	set_text(PG_GETARG_TEXT_PP(arg), arg_names[arg], dst);
}

/*
 * The type argument of connlog_enqueue from 1.2 on (and of
 * connlog_enqueue_batch), which is text: any value of 1 to
 * CL_MAX_TYPE_LEN bytes (batch.h says why that bound).  func names the
 * function in the errors.
 */
static void
set_type_text(text *t, const char *func, ClEvent *ev)
{
	size_t		len = VARSIZE_ANY_EXHDR(t);

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"type\" of %s must not be empty", func)));
	if (len > CL_MAX_TYPE_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
		   errmsg("argument \"type\" of %s must not be longer than %d bytes",
				  func, CL_MAX_TYPE_LEN),
				 errdetail("The value given is %zu bytes long.", len)));
	cl_set_type(ev, VARDATA_ANY(t), (uint16) len);
}

/*
 * extra (connlog_enqueue's jsonb argument, from 1.3): values for the
 * columns of the table the rows go to beyond connlog's sixteen, by name.
 *
 * A key must be able to name such a column: 1 to CL_MAX_EXTRA_KEY bytes,
 * and none of the sixteen (those have arguments of their own).  Once the
 * worker has published the columns of its table (connlog_columns_find),
 * a key must also name one of them: connection_logs keeps any key (in its
 * column extra); an application's table (connlog.target_table) only its
 * own writable columns.  A key the list lacks is looked up in the
 * catalog too, so a column added since the worker last prepared its
 * statements is taken at once.  Before anything is published, the
 * worker checks each key when it writes, and isolates an event whose key
 * names no column, with the reason.  None of this runs for a NULL extra.
 */
static bool
column_writable(Oid relid, const char *name)
{
	HeapTuple	tup = SearchSysCacheAttName(relid, name);
	bool		ok;

	if (!HeapTupleIsValid(tup))
		return false;
	ok = ((Form_pg_attribute) GETSTRUCT(tup))->attnum > 0 &&
		((Form_pg_attribute) GETSTRUCT(tup))->attgenerated == '\0' &&
		((Form_pg_attribute) GETSTRUCT(tup))->attidentity !=
		ATTRIBUTE_IDENTITY_ALWAYS;
	ReleaseSysCache(tup);
	return ok;
}

static void
check_extra_key(const char *func, const char *key, int len)
{
	char	   *name = pnstrdup(key, len);
	Oid			relid;
	char	   *relname;

	if (len == 0 || len > CL_MAX_EXTRA_KEY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		errmsg("key \"%s\" of argument \"extra\" of %s is not a column name",
			   name, func),
				 errdetail("A key names a column: it is 1 to %d bytes long.",
						   CL_MAX_EXTRA_KEY)));
	if (cl_extra_reserved_key(key, len))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key \"%s\" of argument \"extra\" of %s names a column of connlog's own",
						name, func),
			 errhint("Pass the value as argument \"%s\" of connlog_enqueue.",
					 name)));
	if (connlog_columns_find(key, (uint32) len, &relid) != CL_COLUMNS_MISSING ||
		column_writable(relid, name) ||
		(relname = get_rel_name(relid)) == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("key \"%s\" of argument \"extra\" of %s names no column of table %s",
					name, func,
	 quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
								relname)),
			 errdetail("extra carries values for the columns of the table connlog writes to beyond connlog's own; that table has no column of that name that connlog can write.")));
}

/*
 * Encode extra in the record's format (batch.h) into out: each key whose
 * value is not JSON null, in jsonb's order, which the record's is.
 */
static void
encode_extra(Jsonb *jb, const char *func, StringInfo out)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	const char *key = NULL;
	int			key_len = 0;

	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"extra\" of %s must be a JSON object",
						func)));
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		const char *value;
		size_t		value_len;
		uint8		kind;
		uint8		klen;
		uint16		vlen;

		if (tok == WJB_KEY)
		{
			key = v.val.string.val;
			key_len = v.val.string.len;
			check_extra_key(func, key, key_len);
			continue;
		}
		if (tok != WJB_VALUE)
			continue;
		switch (v.type)
		{
			case jbvNull:
				continue;
			case jbvString:
				kind = CL_EXTRA_STRING;
				value = v.val.string.val;
				value_len = v.val.string.len;
				break;
			case jbvNumeric:
				kind = CL_EXTRA_NUMBER;
				value = DatumGetCString(DirectFunctionCall1(numeric_out,
											NumericGetDatum(v.val.numeric)));
				value_len = strlen(value);
				break;
			case jbvBool:
				kind = CL_EXTRA_BOOL;
				value = v.val.boolean ? "true" : "false";
				value_len = strlen(value);
				break;
			default:
				kind = CL_EXTRA_JSON;
				value = JsonbToCString(NULL, v.val.binary.data,
									   v.val.binary.len);
				value_len = strlen(value);
				break;
		}
		if (value_len > CL_MAX_RECORD)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("connection log event is too large"),
					 errdetail("The value of key \"%s\" of argument \"extra\" is %zu bytes; connlog stores at most %d bytes per event.",
							   pnstrdup(key, key_len), value_len,
							   CL_MAX_RECORD)));
		klen = (uint8) key_len;
		vlen = (uint16) value_len;
		appendBinaryStringInfo(out, (char *) &klen, 1);
		appendBinaryStringInfo(out, key, key_len);
		appendBinaryStringInfo(out, (char *) &kind, 1);
		appendBinaryStringInfo(out, (char *) &vlen, 2);
		appendBinaryStringInfo(out, value, vlen);
		if (out->len > CL_MAX_RECORD)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("connection log event is too large"),
					 errdetail("Argument \"extra\" needs more than %d bytes; connlog stores at most %d bytes per event.",
							   CL_MAX_RECORD, CL_MAX_RECORD)));
	}
}

/*
 * Optional arguments that carry no value are stored as NULL, as coder's
 * BatchUpsertConnectionLogs does with its Go zero values: an empty string
 * and the all-zero UUID.  For connection_id this matters beyond storage:
 * the zero UUID would otherwise make unrelated web events merge.
 */
static bool
uuid_arg_present(FunctionCallInfo fcinfo, int arg)
{
	static const uint8 zero[UUID_LEN] = {0};

	return !PG_ARGISNULL(arg) &&
		memcmp(PG_GETARG_UUID_P(arg)->data, zero, UUID_LEN) != 0;
}

static bool
text_arg_present(FunctionCallInfo fcinfo, int arg)
{
	return !PG_ARGISNULL(arg) &&
		VARSIZE_ANY_EXHDR(PG_GETARG_DATUM(arg)) > 0;
}

/*
 * Why the worker is not keeping up, for the ring-full and flush-timeout
 * errors: its published state, or what its process is waiting for.  The
 * errdetail_ and errhint_ functions below write each case's sentences out
 * in full, as the message style guide asks.
 */
/* the class part of a wait_event_info (PG_WAIT_LOCK, ...: wait_event.h) */
#define CL_WAIT_CLASS_MASK	0xFF000000U

typedef enum WorkerTrouble
{
	TROUBLE_NONE,				/* nothing known stops it */
	TROUBLE_NOT_RUNNING,
	TROUBLE_NOT_WRITING,		/* waiting for a database, role, extension,
								 * privilege, or statements it can prepare */
	TROUBLE_RETRY_QUEUE_FULL,
	TROUBLE_LOCK				/* its write waits for a lock */
} WorkerTrouble;

typedef struct WorkerStatus
{
	WorkerTrouble trouble;
	ConnlogStats st;
	const char *lock;			/* TROUBLE_LOCK: the lock's wait event */
} WorkerStatus;

static void
worker_status(WorkerStatus *w)
{
	connlog_ring_stats(&w->st);
	w->trouble = TROUBLE_NONE;
	w->lock = NULL;
	switch (w->st.worker_pid == 0 ? CL_STATE_NOT_RUNNING : w->st.worker_state)
	{
		case CL_STATE_NOT_RUNNING:
			w->trouble = TROUBLE_NOT_RUNNING;
			break;
		case CL_STATE_NO_DATABASE:
		case CL_STATE_NO_ROLE:
		case CL_STATE_ROLE_NOLOGIN:
		case CL_STATE_NO_EXTENSION:
		case CL_STATE_NO_PRIVILEGE:
		case CL_STATE_BROKEN:
			w->trouble = TROUBLE_NOT_WRITING;
			break;
		case CL_STATE_RETRY_QUEUE_FULL:
			w->trouble = TROUBLE_RETRY_QUEUE_FULL;
			break;
		case CL_STATE_WRITING:
		case CL_STATE_PURGING:
			{
				PGPROC	   *proc = BackendPidGetProc(w->st.worker_pid);
				uint32		wait = proc != NULL ? proc->wait_event_info : 0;

				if ((wait & CL_WAIT_CLASS_MASK) == PG_WAIT_LOCK)
				{
					w->trouble = TROUBLE_LOCK;
					w->lock = pgstat_get_wait_event(wait);
				}
			}
			break;
		default:
			break;
	}
}

/* The ring-full error's detail: why, then why the call gave up. */
static int
errdetail_ring_full(const WorkerStatus *w)
{
	const char *state = connlog_worker_state_label(w->st.worker_state);
	int			ms = connlog_enqueue_timeout_ms;

	if (connlog_overflow == CL_PUT_WAIT)
		switch (w->trouble)
		{
			case TROUBLE_NOT_RUNNING:
				return errdetail("The connlog worker is not running. No space came free within connlog.enqueue_timeout (%d ms).",
								 ms);
			case TROUBLE_NOT_WRITING:
				return errdetail("The connlog worker is not writing (%s): %s. No space came free within connlog.enqueue_timeout (%d ms).",
								 state, w->st.last_error, ms);
			case TROUBLE_RETRY_QUEUE_FULL:
				return errdetail("Writes keep failing and the worker's retry queue is full (connlog.retry_queue_size batches); the last error was: %s. No space came free within connlog.enqueue_timeout (%d ms).",
								 w->st.last_error, ms);
			case TROUBLE_LOCK:
				return errdetail("The connlog worker's write is waiting for a %s lock. No space came free within connlog.enqueue_timeout (%d ms).",
								 w->lock, ms);
			case TROUBLE_NONE:
				break;
		}
	else
		switch (w->trouble)
		{
			case TROUBLE_NOT_RUNNING:
				return errdetail("The connlog worker is not running. connlog.overflow is \"error\".");
			case TROUBLE_NOT_WRITING:
				return errdetail("The connlog worker is not writing (%s): %s. connlog.overflow is \"error\".",
								 state, w->st.last_error);
			case TROUBLE_RETRY_QUEUE_FULL:
				return errdetail("Writes keep failing and the worker's retry queue is full (connlog.retry_queue_size batches); the last error was: %s. connlog.overflow is \"error\".",
								 w->st.last_error);
			case TROUBLE_LOCK:
				return errdetail("The connlog worker's write is waiting for a %s lock. connlog.overflow is \"error\".",
								 w->lock);
			case TROUBLE_NONE:
				break;
		}
	return connlog_overflow == CL_PUT_WAIT ?
		errdetail("Events are enqueued faster than the connlog worker writes them. No space came free within connlog.enqueue_timeout (%d ms).",
				  ms) :
		errdetail("Events are enqueued faster than the connlog worker writes them. connlog.overflow is \"error\".");
}

/* The flush-timeout error's detail: what is left, then why. */
static int
errdetail_flush_timeout(const WorkerStatus *w, uint64 left)
{
	unsigned long long n = (unsigned long long) left;

	switch (w->trouble)
	{
		case TROUBLE_NOT_RUNNING:
			return errdetail("%llu events enqueued before the call are not written yet. The connlog worker is not running.",
							 n);
		case TROUBLE_NOT_WRITING:
			return errdetail("%llu events enqueued before the call are not written yet. The connlog worker is not writing (%s): %s.",
						   n, connlog_worker_state_label(w->st.worker_state),
							 w->st.last_error);
		case TROUBLE_RETRY_QUEUE_FULL:
			return errdetail("%llu events enqueued before the call are not written yet. Writes keep failing and the worker's retry queue is full (connlog.retry_queue_size batches); the last error was: %s.",
							 n, w->st.last_error);
		case TROUBLE_LOCK:
			return errdetail("%llu events enqueued before the call are not written yet. The connlog worker's write is waiting for a %s lock.",
							 n, w->lock);
		case TROUBLE_NONE:
			break;
	}
	return errdetail("%llu events enqueued before the call are not written yet.",
					 n);
}

/*
 * What to do about it.  When nothing is known to stop the worker, a full
 * ring asks for room or speed, a flush timeout for a look at the log.
 */
static int
errhint_worker_trouble(const WorkerStatus *w, bool ring_full)
{
	switch (w->trouble)
	{
		case TROUBLE_NOT_RUNNING:
			return errhint("The server log says why the worker exited; the postmaster starts it again.");
		case TROUBLE_NOT_WRITING:
			return errhint("Correct what connlog_stats.last_error names. The worker looks again every connlog.flush_interval.");
		case TROUBLE_RETRY_QUEUE_FULL:
			return errhint("Correct what makes the writes fail; connlog_stats.last_error and the server log name it.");
		case TROUBLE_LOCK:
			return errhint("A session holds a lock on the table connlog writes to; pg_locks shows which.");
		case TROUBLE_NONE:
			break;
	}
	return ring_full ?
		errhint("Raise connlog.ring_size to absorb bursts, or connlog.batch_size to write faster.") :
		errhint("See connlog_stats.last_error and the server log.");
}

/*
 * connlog_enqueue(id, event_time, ..., disconnect_reason) returns void
 *
 * Not STRICT: NULLs in the optional arguments are normal, and a NULL in a
 * required one deserves an error that names it, not a silent no-op.
 *
 * Three entry points: connlog_enqueue takes the type as a connection_type
 * (1.0 and 1.1, and the overload 1.2 and 1.3 keep for callers that cast to
 * it), connlog_enqueue_1_2 as text, and connlog_enqueue_1_3 as text with
 * extra, a seventeenth argument.  A NULL extra costs one test.
 */
static Datum
enqueue(FunctionCallInfo fcinfo, bool type_is_text)
{
	ClEvent		ev;

	/* room for the WAL record's header before the ring record */
	char		buf[CONNLOG_WAL_HEADER_SIZE + 1024];
	char	   *msg = buf;
	char	   *rec = buf + CONNLOG_WAL_HEADER_SIZE;
	size_t		len;
	bool		wal = connlog_durability != CL_DURABILITY_MEMORY;
	uint64		seq;

	/* the worker would wait on its own ring: see guard.c */
	if (unlikely(connlog_is_worker))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		errmsg("connlog_enqueue cannot be called from connlog's own worker"),
				 errdetail("Code of the table connlog writes to, such as a trigger, called it while the worker wrote rows there.")));
	check_can_enqueue();
	for (int i = ARG_ID; i <= ARG_STATUS; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("argument \"%s\" of connlog_enqueue must not be null",
					   arg_names[i])));

	memset(&ev, 0, sizeof(ev));
	ev.event_time = PG_GETARG_TIMESTAMPTZ(ARG_EVENT_TIME);
	if (TIMESTAMP_NOT_FINITE(ev.event_time))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		errmsg("argument \"event_time\" of connlog_enqueue must be finite")));
	get_uuid(fcinfo, ARG_ID, ev.id);
	get_uuid(fcinfo, ARG_ORGANIZATION_ID, ev.organization_id);
	get_uuid(fcinfo, ARG_WORKSPACE_OWNER_ID, ev.workspace_owner_id);
	get_uuid(fcinfo, ARG_WORKSPACE_ID, ev.workspace_id);
	get_text(fcinfo, ARG_WORKSPACE_NAME, &ev.workspace_name);
	get_text(fcinfo, ARG_AGENT_NAME, &ev.agent_name);
	if (type_is_text)
		set_type_text(PG_GETARG_TEXT_PP(ARG_TYPE), "connlog_enqueue", &ev);
	else
		ev.type = enum_index(PG_GETARG_OID(ARG_TYPE), connlog_type_labels,
							 CL_NUM_TYPES);
	ev.status = enum_index(PG_GETARG_OID(ARG_STATUS), connlog_status_labels,
						   2);

	if (uuid_arg_present(fcinfo, ARG_CONNECTION_ID))
	{
		ev.flags |= CL_HAS_CONNECTION_ID;
		get_uuid(fcinfo, ARG_CONNECTION_ID, ev.connection_id);
	}
	if (!PG_ARGISNULL(ARG_IP))
	{
		inet	   *ip = PG_GETARG_INET_PP(ARG_IP);

		ev.flags |= CL_HAS_IP;
		ev.ip_family = ip_family(ip) == PGSQL_AF_INET ? 4 : 6;
		ev.ip_bits = ip_bits(ip);
		memcpy(ev.ip_addr, ip_addr(ip), ip_addrsize(ip));
	}
	if (!PG_ARGISNULL(ARG_CODE))
	{
		ev.flags |= CL_HAS_CODE;
		ev.code = PG_GETARG_INT32(ARG_CODE);
	}
	if (text_arg_present(fcinfo, ARG_USER_AGENT))
	{
		ev.flags |= CL_HAS_USER_AGENT;
		get_text(fcinfo, ARG_USER_AGENT, &ev.user_agent);
	}
	if (uuid_arg_present(fcinfo, ARG_USER_ID))
	{
		ev.flags |= CL_HAS_USER_ID;
		get_uuid(fcinfo, ARG_USER_ID, ev.user_id);
	}
	if (text_arg_present(fcinfo, ARG_SLUG_OR_PORT))
	{
		ev.flags |= CL_HAS_SLUG_OR_PORT;
		get_text(fcinfo, ARG_SLUG_OR_PORT, &ev.slug_or_port);
	}
	if (text_arg_present(fcinfo, ARG_DISCONNECT_REASON))
	{
		ev.flags |= CL_HAS_REASON;
		get_text(fcinfo, ARG_DISCONNECT_REASON, &ev.disconnect_reason);
	}
	if (PG_NARGS() > ARG_EXTRA && !PG_ARGISNULL(ARG_EXTRA))
	{
		StringInfoData extra;

		initStringInfo(&extra);
		encode_extra(PG_GETARG_JSONB_P(ARG_EXTRA), "connlog_enqueue", &extra);
		if (extra.len > 0)
		{
			ev.extra = extra.data;
			ev.extra_len = (uint32) extra.len;
		}
	}

	len = cl_encoded_size(&ev);
	if (len > CL_MAX_RECORD)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("connection log event is too large"),
				 errdetail("The event needs %zu bytes; connlog stores at most %d bytes per event.",
						   len, CL_MAX_RECORD)));
	if (CONNLOG_WAL_HEADER_SIZE + len > sizeof(buf))
	{
		msg = palloc(CONNLOG_WAL_HEADER_SIZE + len);
		rec = msg + CONNLOG_WAL_HEADER_SIZE;
	}
	cl_encode(&ev, len, rec);
	if (wal)
		connlog_wal_check_enqueue();

	switch (connlog_ring_put(rec, (uint32) len,
							 (ConnlogPutMode) connlog_overflow,
							 connlog_batch_size, connlog_enqueue_timeout_ms,
							 CONNLOG_WAIT_EVENT(wait_event_ring_full,
												"ConnlogRingFull"),
							 wal, &seq))
	{
		case CL_PUT_STORED:

			/*
			 * Outside the ring lock, so producers' WAL inserts run side by
			 * side and their flushes group-commit (see wal.c).
			 */
			if (wal)
			{
				XLogRecPtr	end = connlog_wal_insert(msg, seq, (uint32) len);

				if (connlog_durability == CL_DURABILITY_FLUSH)
					connlog_wal_flush(end);
			}
			break;
		case CL_PUT_DROPPED:
			break;
		case CL_PUT_FULL:
			{
				WorkerStatus w;

				worker_status(&w);
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
						 errmsg("connlog ring is full"),
						 errdetail_ring_full(&w),
						 errhint_worker_trouble(&w, true)));
			}
	}
	PG_RETURN_VOID();
}

Datum
connlog_enqueue(PG_FUNCTION_ARGS)
{
	return enqueue(fcinfo, false);
}

Datum
connlog_enqueue_1_2(PG_FUNCTION_ARGS)
{
	return enqueue(fcinfo, true);
}

Datum
connlog_enqueue_1_3(PG_FUNCTION_ARGS)
{
	return enqueue(fcinfo, true);
}

/*
 * connlog_enqueue_batch(id uuid[], connect_time timestamptz[], ...,
 * disconnect_time timestamptz[]) returns bigint
 *
 * A drop-in for coder's BatchUpsertConnectionLogs: the same seventeen
 * arrays, in its order, one element per row it would upsert, enqueued as
 * events instead.  coder merges a connection's connect and disconnect in
 * its batcher before it upserts, so an element stands for up to two
 * events: a connect at connect_time, a disconnect at disconnect_time.
 * The zero time ('0001-01-01 00:00:00+00', Go's zero value) and NULL mean
 * none; a disconnect_time equal to connect_time (coder's standalone
 * disconnect) is one disconnect.  An element without a connection_id (a
 * web event) never merges, so it must be one event: a disconnect_time
 * later than its connect_time is refused.  code counts only where
 * code_valid is true; empty texts and zero UUIDs are NULL, as in
 * connlog_enqueue, which validates each event the same way.
 *
 * All or nothing: every element is checked and encoded first, then all
 * events go into the ring at once (connlog_ring_put_many), so an error
 * leaves nothing enqueued.  Returns the number of events enqueued.
 */
enum
{
	BATCH_ID,
	BATCH_CONNECT_TIME,
	BATCH_ORGANIZATION_ID,
	BATCH_WORKSPACE_OWNER_ID,
	BATCH_WORKSPACE_ID,
	BATCH_WORKSPACE_NAME,
	BATCH_AGENT_NAME,
	BATCH_TYPE,
	BATCH_CODE,
	BATCH_CODE_VALID,
	BATCH_IP,
	BATCH_USER_AGENT,
	BATCH_USER_ID,
	BATCH_SLUG_OR_PORT,
	BATCH_CONNECTION_ID,
	BATCH_DISCONNECT_REASON,
	BATCH_DISCONNECT_TIME,
	BATCH_NARGS
};

static const char *const batch_arg_names[BATCH_NARGS] = {
	"id", "connect_time", "organization_id", "workspace_owner_id",
	"workspace_id", "workspace_name", "agent_name", "type", "code",
	"code_valid", "ip", "user_agent", "user_id", "slug_or_port",
	"connection_id", "disconnect_reason", "disconnect_time"
};

/* Go's zero time.Time, 0001-01-01 00:00:00+00, as a TimestampTz */
#define GO_ZERO_TIME	INT64CONST(-63082281600000000)

typedef struct BatchElement
{
	int			index;			/* counted from 1 */
} BatchElement;

static void
batch_element_context(void *arg)
{
	errcontext("element %d of the arrays of connlog_enqueue_batch",
			   ((BatchElement *) arg)->index);
}

static bool
batch_uuid_present(Datum d, bool isnull)
{
	static const uint8 zero[UUID_LEN] = {0};

	return !isnull && memcmp(DatumGetUUIDP(d)->data, zero, UUID_LEN) != 0;
}

static bool
batch_text_present(Datum d, bool isnull)
{
	return !isnull && VARSIZE_ANY_EXHDR(DatumGetPointer(d)) > 0;
}

/* A time of an element, or CL_NO_TIME for none (NULL or Go's zero) */
static int64
batch_time(Datum d, bool isnull, const char *name)
{
	TimestampTz t;

	if (isnull || DatumGetTimestampTz(d) == GO_ZERO_TIME)
		return CL_NO_TIME;
	t = DatumGetTimestampTz(d);
	if (TIMESTAMP_NOT_FINITE(t))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("argument \"%s\" of connlog_enqueue_batch must be finite",
				   name)));
	return t;
}

/* Append ev's record to buf; checks the size limit as connlog_enqueue does */
static void
batch_append(StringInfo buf, const ClEvent *ev)
{
	size_t		len = cl_encoded_size(ev);

	if (len > CL_MAX_RECORD)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("connection log event is too large"),
				 errdetail("The event needs %zu bytes; connlog stores at most %d bytes per event.",
						   len, CL_MAX_RECORD)));
	enlargeStringInfo(buf, (int) len);
	cl_encode(ev, len, buf->data + buf->len);
	buf->len += (int) len;
}

Datum
connlog_enqueue_batch(PG_FUNCTION_ARGS)
{
	Datum	   *values[BATCH_NARGS];
	bool	   *nulls[BATCH_NARGS];
	int			n = -1;
	StringInfoData recs;
	uint32		nrecs = 0;
	BatchElement elem;
	ErrorContextCallback callback;
	bool		wal = connlog_durability != CL_DURABILITY_MEMORY;
	uint64		seq;

	check_can_enqueue();
	for (int a = 0; a < BATCH_NARGS; a++)
	{
		ArrayType  *arr;
		int16		typlen;
		bool		typbyval;
		char		typalign;
		int			count;

		if (PG_ARGISNULL(a))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument \"%s\" of connlog_enqueue_batch must not be null",
							batch_arg_names[a])));
		arr = PG_GETARG_ARRAYTYPE_P(a);
		if (ARR_NDIM(arr) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("argument \"%s\" of connlog_enqueue_batch must be a one-dimensional array",
							batch_arg_names[a])));
		get_typlenbyvalalign(ARR_ELEMTYPE(arr), &typlen, &typbyval, &typalign);
		deconstruct_array(arr, ARR_ELEMTYPE(arr), typlen, typbyval, typalign,
						  &values[a], &nulls[a], &count);
		if (n < 0)
			n = count;
		else if (count != n)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("the arrays of connlog_enqueue_batch must all have the same length"),
					 errdetail("Argument \"%s\" has %d elements and argument \"%s\" has %d.",
							   batch_arg_names[0], n, batch_arg_names[a],
							   count)));
	}

	initStringInfo(&recs);
	callback.callback = batch_element_context;
	callback.arg = &elem;
	callback.previous = error_context_stack;
	error_context_stack = &callback;
	for (int i = 0; i < n; i++)
	{
		ClEvent		ev;
		int64		connect_time;
		int64		disconnect_time;
		bool		has_code;

		elem.index = i + 1;
		for (int a = 0; a <= BATCH_TYPE; a++)
			if (nulls[a][i] && a != BATCH_CONNECT_TIME)
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("argument \"%s\" of connlog_enqueue_batch must not have a null element",
								batch_arg_names[a])));
		memset(&ev, 0, sizeof(ev));
		memcpy(ev.id, DatumGetUUIDP(values[BATCH_ID][i])->data, UUID_LEN);
		memcpy(ev.organization_id,
			DatumGetUUIDP(values[BATCH_ORGANIZATION_ID][i])->data, UUID_LEN);
		memcpy(ev.workspace_owner_id,
			   DatumGetUUIDP(values[BATCH_WORKSPACE_OWNER_ID][i])->data,
			   UUID_LEN);
		memcpy(ev.workspace_id,
			   DatumGetUUIDP(values[BATCH_WORKSPACE_ID][i])->data, UUID_LEN);
		set_text(DatumGetTextPP(values[BATCH_WORKSPACE_NAME][i]),
				 "workspace_name", &ev.workspace_name);
		set_text(DatumGetTextPP(values[BATCH_AGENT_NAME][i]), "agent_name",
				 &ev.agent_name);
		set_type_text(DatumGetTextPP(values[BATCH_TYPE][i]),
					  "connlog_enqueue_batch", &ev);
		if (batch_uuid_present(values[BATCH_CONNECTION_ID][i],
							   nulls[BATCH_CONNECTION_ID][i]))
		{
			ev.flags |= CL_HAS_CONNECTION_ID;
			memcpy(ev.connection_id,
				   DatumGetUUIDP(values[BATCH_CONNECTION_ID][i])->data,
				   UUID_LEN);
		}
		if (!nulls[BATCH_IP][i])
		{
			inet	   *ip = DatumGetInetPP(values[BATCH_IP][i]);

			ev.flags |= CL_HAS_IP;
			ev.ip_family = ip_family(ip) == PGSQL_AF_INET ? 4 : 6;
			ev.ip_bits = ip_bits(ip);
			memcpy(ev.ip_addr, ip_addr(ip), ip_addrsize(ip));
		}
		if (batch_text_present(values[BATCH_USER_AGENT][i],
							   nulls[BATCH_USER_AGENT][i]))
		{
			ev.flags |= CL_HAS_USER_AGENT;
			set_text(DatumGetTextPP(values[BATCH_USER_AGENT][i]),
					 "user_agent", &ev.user_agent);
		}
		if (batch_uuid_present(values[BATCH_USER_ID][i],
							   nulls[BATCH_USER_ID][i]))
		{
			ev.flags |= CL_HAS_USER_ID;
			memcpy(ev.user_id, DatumGetUUIDP(values[BATCH_USER_ID][i])->data,
				   UUID_LEN);
		}
		if (batch_text_present(values[BATCH_SLUG_OR_PORT][i],
							   nulls[BATCH_SLUG_OR_PORT][i]))
		{
			ev.flags |= CL_HAS_SLUG_OR_PORT;
			set_text(DatumGetTextPP(values[BATCH_SLUG_OR_PORT][i]),
					 "slug_or_port", &ev.slug_or_port);
		}

		connect_time = batch_time(values[BATCH_CONNECT_TIME][i],
								  nulls[BATCH_CONNECT_TIME][i],
								  "connect_time");
		disconnect_time = batch_time(values[BATCH_DISCONNECT_TIME][i],
									 nulls[BATCH_DISCONNECT_TIME][i],
									 "disconnect_time");
		if (connect_time == CL_NO_TIME && disconnect_time == CL_NO_TIME)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("an element of connlog_enqueue_batch must have a connect_time or a disconnect_time")));
		if (connect_time != CL_NO_TIME && disconnect_time != CL_NO_TIME &&
			connect_time != disconnect_time &&
			!(ev.flags & CL_HAS_CONNECTION_ID))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("an element of connlog_enqueue_batch without a connection_id must not have both a connect_time and a later disconnect_time"),
					 errdetail("Events without a connection_id are never merged, so such an element cannot become one row.")));

		/*
		 * code goes with the disconnect, or with the connect of an element
		 * that has none: a web event's HTTP status, which coder gives with
		 * the event's only time
		 */
		has_code = !nulls[BATCH_CODE_VALID][i] &&
			DatumGetBool(values[BATCH_CODE_VALID][i]) &&
			!nulls[BATCH_CODE][i];
		if (has_code && disconnect_time == CL_NO_TIME)
		{
			ev.flags |= CL_HAS_CODE;
			ev.code = DatumGetInt32(values[BATCH_CODE][i]);
		}

		/* the connect, unless the element is a standalone disconnect */
		if (connect_time != CL_NO_TIME && connect_time != disconnect_time)
		{
			ev.event_time = connect_time;
			ev.status = CL_STATUS_CONNECTED;
			batch_append(&recs, &ev);
			nrecs++;
		}
		if (disconnect_time == CL_NO_TIME)
			continue;

		/* the disconnect, which also carries code and disconnect_reason */
		if (has_code)
		{
			ev.flags |= CL_HAS_CODE;
			ev.code = DatumGetInt32(values[BATCH_CODE][i]);
		}
		if (batch_text_present(values[BATCH_DISCONNECT_REASON][i],
							   nulls[BATCH_DISCONNECT_REASON][i]))
		{
			ev.flags |= CL_HAS_REASON;
			set_text(DatumGetTextPP(values[BATCH_DISCONNECT_REASON][i]),
					 "disconnect_reason", &ev.disconnect_reason);
		}
		ev.event_time = disconnect_time;
		ev.status = CL_STATUS_DISCONNECTED;
		batch_append(&recs, &ev);
		nrecs++;
	}
	error_context_stack = callback.previous;

	if (nrecs == 0)
		PG_RETURN_INT64(0);
	if (!connlog_ring_entries_fit((uint64) recs.len, nrecs, wal))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%u connection log events do not fit in the connlog ring at once",
						nrecs),
				 errdetail("They need more than connlog.ring_size, %d kB.",
						   connlog_ring_size_kb),
				 errhint("Call connlog_enqueue_batch with fewer elements.")));
	if (wal)
		connlog_wal_check_enqueue();
	switch (connlog_ring_put_many(recs.data, (uint32) recs.len, nrecs,
								  (ConnlogPutMode) connlog_overflow,
								  connlog_batch_size,
								  connlog_enqueue_timeout_ms,
								  CONNLOG_WAIT_EVENT(wait_event_ring_full,
													 "ConnlogRingFull"),
								  wal, &seq))
	{
		case CL_PUT_STORED:
			if (wal)
			{
				char	   *msg = palloc(CONNLOG_WAL_HEADER_SIZE + CL_MAX_RECORD);
				XLogRecPtr	end = InvalidXLogRecPtr;
				uint32		off = 0;

				for (uint32 r = 0; r < nrecs; r++)
				{
					uint32		rlen = cl_record_length(recs.data + off);

					memcpy(msg + CONNLOG_WAL_HEADER_SIZE, recs.data + off, rlen);
					end = connlog_wal_insert(msg, seq + r, rlen);
					off += rlen;
				}
				if (connlog_durability == CL_DURABILITY_FLUSH)
					connlog_wal_flush(end);
			}
			break;
		case CL_PUT_DROPPED:
			break;
		case CL_PUT_FULL:
			{
				WorkerStatus w;

				worker_status(&w);
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
						 errmsg("connlog ring is full"),
						 errdetail_ring_full(&w),
						 errhint_worker_trouble(&w, true)));
			}
	}
	PG_RETURN_INT64((int64) nrecs);
}

/*
 * connlog_flush(timeout interval) returns void
 *
 * Wake the worker and wait until every event enqueued before the call has
 * been accounted for (done_seq has passed the ring's head as it was).
 */
Datum
connlog_flush(PG_FUNCTION_ARGS)
{
	Interval   *timeout;
	ConnlogShared *s;
	int64		timeout_us;
	TimestampTz start;
	uint64		target;
	pid_t		pid;
	bool		seen;

	/* the worker would wait for itself: see guard.c */
	if (connlog_is_worker)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		  errmsg("connlog_flush cannot be called from connlog's own worker"),
				 errdetail("Code of the table connlog writes to, such as a trigger, called it while the worker wrote rows there.")));
	require_worker();
	/* version 1.0 declared the function STRICT; 1.1 lets NULL reach here */
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			errmsg("argument \"timeout\" of connlog_flush must not be null"),
				 errhint("Omit the argument to wait up to 30 seconds.")));
	timeout = PG_GETARG_INTERVAL_P(0);
	s = connlog_shared;
	/* a timeout too long to count in microseconds is a mistake, not forever */
	if (INTERVAL_NOT_FINITE(timeout) ||
		pg_mul_s64_overflow((int64) timeout->month * DAYS_PER_MONTH + timeout->day,
							USECS_PER_DAY, &timeout_us) ||
		pg_add_s64_overflow(timeout_us, timeout->time, &timeout_us))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("connlog_flush timeout is out of range")));
	if (timeout_us < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("connlog_flush timeout must not be negative")));

	LWLockAcquire(s->lock, LW_SHARED);
	target = s->head_seq;
	LWLockRelease(s->lock);

	start = GetCurrentTimestamp();
	ConditionVariablePrepareToSleep(&s->flush_cv);
	for (;;)
	{
		int64		waited_us = GetCurrentTimestamp() - start;

		LWLockAcquire(s->lock, LW_SHARED);
		pid = s->worker_pid;
		seen = s->worker_seen;
		LWLockRelease(s->lock);

		/*
		 * No worker.  One that ran before is being restarted by the
		 * postmaster, so wait for it like for a busy one.  If none has run
		 * since startup, allow a moment for the first to start before saying
		 * it is not running (on a standby it never will).
		 */
		if (pid == 0 && !seen &&
			waited_us >= Min(timeout_us, FLUSH_WORKER_GRACE_MS * INT64CONST(1000)))
		{
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("connlog worker is not running"),
					 errhint("The worker starts with the server once recovery has finished; see the server log.")));
		}
		if (pid != 0 && pg_atomic_read_u64(&s->done_seq) >= target &&
			!connlog_wal_replaying())
			break;
		if (waited_us >= timeout_us)
		{
			WorkerStatus w;

			ConditionVariableCancelSleep();
			worker_status(&w);
			if (pid == 0)
				ereport(ERROR,
						(errcode(ERRCODE_QUERY_CANCELED),
						 errmsg("connlog_flush timed out"),
						 errdetail("The connlog worker is restarting."),
				errhint("See connlog_stats.last_error and the server log.")));
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("connlog_flush timed out"),
					 errdetail_flush_timeout(&w,
								  target - pg_atomic_read_u64(&s->done_seq)),
					 errhint_worker_trouble(&w, false)));
		}
		if (pid != 0 && pg_atomic_read_u32(&s->flush_requested) == 0)
		{
			/* ask (again: a restarted worker may have missed the request) */
			pg_atomic_write_u32(&s->flush_requested, 1);
			connlog_ring_wake_worker();
		}
		(void) ConditionVariableTimedSleep(&s->flush_cv, 100,
										 CONNLOG_WAIT_EVENT(wait_event_flush,
															"ConnlogFlush"));
	}
	ConditionVariableCancelSleep();
	PG_RETURN_VOID();
}

/*
 * connlog_stats(): the one row behind the connlog_stats view.  Each
 * extension version's SQL names its own C function, so a library newer than
 * the installed SQL (before ALTER EXTENSION UPDATE) still returns the
 * columns that version declares.
 */
typedef enum ConnlogStatsVersion
{
	CONNLOG_STATS_V1_0,
	CONNLOG_STATS_V1_1,
	CONNLOG_STATS_V1_2
} ConnlogStatsVersion;

/*
 * connlog_stats.lag: how long ago the oldest event not accounted for was
 * stored (see ring.c), the way clock_timestamp() minus a timestamptz would
 * say it.  Never negative, should the clock have gone back since.
 */
static Datum
lag_interval(TimestampTz stored)
{
	TimestampTz now = GetCurrentTimestamp();

	return DirectFunctionCall2(timestamp_mi, TimestampTzGetDatum(now),
							   TimestampTzGetDatum(Min(stored, now)));
}

static Datum
stats_internal(FunctionCallInfo fcinfo, ConnlogStatsVersion version)
{
	TupleDesc	tupdesc;
	ConnlogStats st;
	Datum		values[17];
	bool		nulls[17] = {0};
	int			i = 0;

	require_shared_memory();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	connlog_ring_stats(&st);

	values[i++] = Int64GetDatum((int64) st.enqueued);
	values[i++] = Int64GetDatum((int64) st.merged);
	values[i++] = Int64GetDatum((int64) st.written);
	values[i++] = Int64GetDatum((int64) st.rejected);
	values[i++] = Int64GetDatum((int64) st.dropped);
	values[i++] = Int64GetDatum((int64) st.pending);
	values[i++] = Int64GetDatum((int64) st.batches);
	values[i++] = Int64GetDatum((int64) st.write_errors);
	values[i++] = Int64GetDatum((int64) st.retries);
	if (version >= CONNLOG_STATS_V1_1)
		values[i++] = Int64GetDatum((int64) st.purged);
	values[i++] = Int64GetDatum((int64) st.ring_used_bytes);
	values[i++] = Int64GetDatum((int64) st.ring_size_bytes);
	nulls[i] = (st.last_flush == 0);
	values[i++] = TimestampTzGetDatum(st.last_flush);
	nulls[i] = (st.last_error[0] == '\0');
	values[i++] = CStringGetTextDatum(st.last_error);
	nulls[i] = (st.worker_pid == 0);
	values[i++] = Int32GetDatum(st.worker_pid);
	if (version >= CONNLOG_STATS_V1_1)
		values[i++] = CStringGetTextDatum(connlog_worker_state_label(st.worker_state));
	if (version >= CONNLOG_STATS_V1_2)
	{
		nulls[i] = (st.oldest_stored == 0);
		if (!nulls[i])
			values[i] = lag_interval(st.oldest_stored);
		i++;
	}
	if (i != tupdesc->natts)
		elog(ERROR, "connlog_stats: the function's definition has %d columns, expected %d",
			 tupdesc->natts, i);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum
connlog_stats(PG_FUNCTION_ARGS)
{
	return stats_internal(fcinfo, CONNLOG_STATS_V1_0);
}

Datum
connlog_stats_1_1(PG_FUNCTION_ARGS)
{
	return stats_internal(fcinfo, CONNLOG_STATS_V1_1);
}

Datum
connlog_stats_1_2(PG_FUNCTION_ARGS)
{
	return stats_internal(fcinfo, CONNLOG_STATS_V1_2);
}
