/*-------------------------------------------------------------------------
 *
 * citus.c
 *		What the worker needs to know of Citus, when the table it writes
 *		to is one of a Citus cluster's.
 *
 * connlog does not link with Citus or call it: it reads Citus's catalog
 * and the errors Citus raises, and nothing here does anything unless
 * Citus is loaded.  Three things: which table is Citus's
 * (connlog_citus_table), for retention's statement (plans.c); which
 * errors are a node's failure or refusal rather than the rows'
 * (connlog_citus_node_failure), which the runner reports as
 * CL_WRITE_UNREACHABLE, with the node's name (connlog_citus_node); and
 * the connections the worker's session keeps to the worker nodes
 * (connlog_citus_session_defaults).
 *
 * See doc/internals.md, "Citus".
 *
 * IDENTIFICATION
 *	  src/citus.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "citus.h"

/* the context line Citus adds to an error a node raised */
#define RELAY_CONTEXT	"while executing command on "

/*
 * Is relid a table of Citus's (distributed, reference, or a Citus local
 * table)?  Those are the tables in pg_catalog.pg_dist_partition, whose
 * first column, logicalrelid, is the table.  A scan of that catalog, not
 * a query: only a superuser can create a relation in pg_catalog, so this
 * is Citus's, and without Citus there is none.
 */
bool
connlog_citus_table(Oid relid)
{
	Oid			catalog = get_relname_relid("pg_dist_partition",
											PG_CATALOG_NAMESPACE);
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	bool		found = false;

	if (!OidIsValid(catalog))
		return false;
	rel = table_open(catalog, AccessShareLock);
	if (RelationGetDescr(rel)->natts >= 1 &&
		TupleDescAttr(RelationGetDescr(rel), 0)->atttypid == REGCLASSOID)
	{
		ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(relid));
		scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
		found = HeapTupleIsValid(systable_getnext(scan));
		systable_endscan(scan);
	}
	table_close(rel, AccessShareLock);
	return found;
}

/* The line of edata's context that Citus adds to a relayed error, or NULL */
static const char *
relay_line(const ErrorData *edata)
{
	const char *line = edata->context;

	while (line != NULL && *line != '\0')
	{
		if (strncmp(line, RELAY_CONTEXT, strlen(RELAY_CONTEXT)) == 0)
			return line;
		line = strchr(line, '\n');
		if (line != NULL)
			line++;
	}
	return NULL;
}

static bool
format_starts(const ErrorData *edata, const char *prefix)
{
	return edata->message_id != NULL &&
		strncmp(edata->message_id, prefix, strlen(prefix)) == 0;
}

/*
 * Did a node of a Citus cluster fail the statement, or refuse it, rather
 * than its rows?
 *
 * Recognised by what SQL cannot forge, since the table's owner
 * can raise any SQLSTATE and message from a trigger (a trigger's RAISE
 * has the message format "%s" and a PL/pgSQL context), and Citus's
 * messages are not translated (it ships no message catalogs):
 *
 *	- "failure on connection marked as essential: %s:%d": the format of
 *	  the error Citus raises, without a SQLSTATE (so XX000), when a
 *	  connection of the distributed transaction to a node failed, as after
 *	  the node restarted and its cached connections died, or while it is
 *	  down.  Matched by its format (ErrorData.message_id) and XX000.
 *	- class 08 raised by Citus's own connection code, whose formats begin
 *	  "connection to the remote node " (a connection that failed, with
 *	  libpq's reason: refused, or a password the node did not accept) and
 *	  "could not establish any connections to the node " (the connection
 *	  timeout).
 *	- an error a node raised and Citus relayed, which Citus marks with the
 *	  context line "while executing command on HOST:PORT" (its
 *	  ReportResultError; a PL/pgSQL context line starts otherwise), when
 *	  it is a connection exception (08), the node shutting down or starting
 *	  (57P01, 57P02, 57P03), or insufficient privilege (42501: the owner of
 *	  the table lacks a privilege on that node, which connlog.role's check
 *	  on this node cannot see, so the privilege check would find nothing
 *	  missing and the worker would flip between writing and failing).
 */
bool
connlog_citus_node_failure(const ErrorData *edata)
{
	int			code = edata->sqlerrcode;

	if (code == ERRCODE_INTERNAL_ERROR)
		return edata->message_id != NULL &&
			strcmp(edata->message_id,
				   "failure on connection marked as essential: %s:%d") == 0;
	if (ERRCODE_TO_CATEGORY(code) == ERRCODE_CONNECTION_EXCEPTION &&
		(format_starts(edata, "connection to the remote node ") ||
	format_starts(edata, "could not establish any connections to the node ")))
		return true;
	if (relay_line(edata) == NULL)
		return false;
	return ERRCODE_TO_CATEGORY(code) == ERRCODE_CONNECTION_EXCEPTION ||
		code == ERRCODE_ADMIN_SHUTDOWN ||
		code == ERRCODE_CRASH_SHUTDOWN ||
		code == ERRCODE_CANNOT_CONNECT_NOW ||
		code == ERRCODE_INSUFFICIENT_PRIVILEGE;
}

/*
 * The node (HOST:PORT) that raised edata, which Citus relayed, palloc'd;
 * NULL if it is not a relayed error.
 */
char *
connlog_citus_node(const ErrorData *edata)
{
	const char *line = relay_line(edata);
	const char *end;

	if (line == NULL)
		return NULL;
	line += strlen(RELAY_CONTEXT);
	end = strchr(line, '\n');
	return end != NULL ? pnstrdup(line, end - line) : pstrdup(line);
}

/*
 * The worker's session keeps open as many connections to each worker node
 * as Citus's executor opens to it for one statement
 * (citus.max_adaptive_executor_pool_size), unless an operator chose
 * citus.max_cached_conns_per_worker.  Each batch writes to most shards,
 * and Citus runs each node's shards over connections of their own; with
 * Citus's default of one cached connection, every batch would open and
 * close the rest, which costs far more than the rows.  PGC_S_DYNAMIC_DEFAULT
 * ranks below every place an operator sets a value (the configuration
 * file, ALTER SYSTEM, ALTER DATABASE or ROLE ... SET), so such a value
 * wins, and a reload that takes one away leaves this one.  Without Citus
 * loaded neither setting exists and nothing is set.
 */
void
connlog_citus_session_defaults(void)
{
	const char *value;
	char	   *pool;

	/* GetConfigOption's result is a static buffer: copy it */
	value = GetConfigOption("citus.max_adaptive_executor_pool_size", true,
							false);
	if (value == NULL)
		return;
	pool = pstrdup(value);
	if (GetConfigOption("citus.max_cached_conns_per_worker", true,
						false) != NULL)
		SetConfigOption("citus.max_cached_conns_per_worker", pool,
						PGC_USERSET, PGC_S_DYNAMIC_DEFAULT);
	pfree(pool);
}
