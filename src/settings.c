/*-------------------------------------------------------------------------
 *
 * settings.c
 *		connlog's settings (GUCs): their variables, definitions and hooks,
 *		and the table the rows go to.
 *
 * A leaf: it calls nothing of connlog's, so every file may include
 * connlog.h, which declares what is here, without making a cycle.
 * _PG_init() (connlog.c) defines the settings, once, in the postmaster.
 *
 * IDENTIFICATION
 *	  src/settings.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "utils/guc.h"
#include "utils/varlena.h"

#include "compat.h"
#include "connlog.h"

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

static const struct config_enum_entry overflow_options[] = {
	{"wait", CL_PUT_WAIT, false},
	{"error", CL_PUT_ERROR, false},
	{"drop", CL_PUT_DROP, false},
	{NULL, 0, false}
};

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
 * (target.c).  Empty: the extension's own connection_logs.
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
 * and table names, as SQL would (quotes, case folding).  Returns false
 * unless it is exactly a schema and a table.  The names are palloc'd.
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

/*
 * The integer settings, defined by one loop in connlog_define_settings().
 * None has hooks; doc/connlog.md lists each with its default, unit and
 * reload level.
 */
typedef struct IntSetting
{
	const char *name;
	int		   *variable;
	int			boot;			/* the same as the variable's initializer */
	int			min;
	int			max;
	GucContext	context;		/* the reload level */
	int			flags;			/* the unit: GUC_UNIT_KB, GUC_UNIT_MS, ... */
	const char *short_desc;
	const char *long_desc;		/* omitted: none */
} IntSetting;

static const IntSetting int_settings[] = {
	{"connlog.ring_size", &connlog_ring_size_kb, 16384, 64, 4 * 1024 * 1024, PGC_POSTMASTER, GUC_UNIT_KB,
	"Size of the shared-memory ring that holds enqueued events."},
	{"connlog.batch_size", &connlog_batch_size, 1000, 1, 100000, PGC_SIGHUP, 0,
	"Rows written by one upsert at most."},
	{"connlog.flush_interval", &connlog_flush_interval_ms, 5000, 1, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS,
	"Longest time an event waits in a partial batch."},
	{"connlog.max_retries", &connlog_max_retries, 3, 0, 1000, PGC_SIGHUP, 0,
	"Times a failed batch is retried before it is split."},
	{"connlog.retry_interval", &connlog_retry_interval_ms, 1000, 1, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS,
	"Time between retries of a failed batch."},
	{"connlog.retry_queue_size", &connlog_retry_queue_size, 10, 1, 1000, PGC_SIGHUP, 0,
	"Failed batches held for retry; while full the worker stops draining the ring."},
	{"connlog.shutdown_timeout", &connlog_shutdown_timeout_ms, 10000, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS,
	"Time the worker spends writing the ring's contents when told to exit."},
	{"connlog.statement_timeout", &connlog_statement_timeout_ms, 60000, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS,
		"Longest time one statement of the worker may run; 0 disables it.",
	"A statement still running connlog.shutdown_timeout after it was cancelled ends the worker, which the postmaster restarts."},
	{"connlog.enqueue_timeout", &connlog_enqueue_timeout_ms, 10000, 0, INT_MAX, PGC_USERSET, GUC_UNIT_MS,
	"Time connlog_enqueue waits for ring space when connlog.overflow is \"wait\"."},
	{"connlog.retention", &connlog_retention_s, 0, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_S,
		"Age past which rows of connection_logs are deleted.",
	"Rows whose connect_time is older than this are deleted, from connlog.target_table when it is set; 0 keeps them forever."},
	{"connlog.purge_batch_size", &connlog_purge_batch_size, 10000, 1, 1000000, PGC_SIGHUP, 0,
	"Rows deleted per transaction when applying connlog.retention."},
	{"connlog.purge_interval", &connlog_purge_interval_ms, 600000, 1000, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS,
	"Time between two runs of connlog.retention."},
};

/* Define connlog's settings; from _PG_init(), in the postmaster */
void
connlog_define_settings(void)
{
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
	for (int i = 0; i < lengthof(int_settings); i++)
	{
		const IntSetting *g = &int_settings[i];

		DefineCustomIntVariable(g->name, g->short_desc, g->long_desc,
								g->variable, g->boot, g->min, g->max,
								g->context, g->flags, NULL, NULL, NULL);
	}
	DefineCustomEnumVariable("connlog.overflow",
	 "What connlog_enqueue does when the ring is full: wait, error or drop.",
							 NULL, &connlog_overflow, CL_PUT_WAIT,
							 overflow_options, PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("connlog.log_events",
			   "Also writes every event to the server log as one JSON line.",
							 NULL, &connlog_log_events, false,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("connlog.durability",
							 "What of an accepted event survives a crash.",
							 "memory: nothing the worker has not written; wal: a WAL record, not waited for; flush: a WAL record flushed (and replicated as a commit is) before connlog_enqueue returns.", &connlog_durability, CL_DURABILITY_MEMORY,
							 durability_options, PGC_SUSET, 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("connlog");
}
