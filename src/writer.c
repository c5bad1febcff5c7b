/*-------------------------------------------------------------------------
 *
 * writer.c
 *		Every statement the connlog worker runs, through SPI.
 *
 * Each call is one transaction of its own, like worker_spi: a batch either
 * lands whole or not at all, and a failure is caught here, turned into a
 * message for connlog_stats.last_error, and the transaction rolled back so
 * the worker can carry on.
 *
 * The statements are built once per extension OID and version, with every
 * name schema-qualified, every operator and function qualified with
 * pg_catalog, and every value a parameter; SPI_keepplan() keeps them
 * across transactions.  After any failure the plans are dropped and
 * prepared afresh, so a table that was altered or recreated is picked up.
 *
 * The worker runs as a superuser by default, in a database whose owner,
 * and roles with CREATE on the extension's schema, need not be trusted.
 * Two things keep what it executes out of their hands:
 *
 * Its own settings.  At connection the database's and roles' ALTER ...
 * SET values have been applied (pg_db_role_setting, including ALTER ROLE
 * ALL IN DATABASE, which a database owner may run).
 * connlog_writer_init_session() overrides, with PGC_S_OVERRIDE, which
 * outranks those sources and the configuration file and is also what
 * RESET returns to, each setting that could change what the statements
 * run or make them fail:
 *
 *	- search_path = pg_catalog, pg_temp: no other role's schema is
 *	  searched; the statements qualify everything anyway.  A trigger or
 *	  default an operator adds to connection_logs runs with it too, so it
 *	  must qualify its names (or set its own search_path).
 *	- session_authorization = the role the worker connected as, role =
 *	  none: a superuser worker would otherwise become whichever role a
 *	  database setting names.
 *	- default_transaction_read_only = off, default_transaction_isolation =
 *	  read committed, default_transaction_deferrable = off: a read-only
 *	  transaction refuses every write, and under repeatable read or
 *	  serializable the upsert fails whenever a row it updates changed
 *	  concurrently.
 *	- statement_timeout, lock_timeout, idle_in_transaction_session_timeout,
 *	  idle_session_timeout (and transaction_timeout from 17) = 0: the
 *	  worker bounds its own statements (connlog.statement_timeout, and
 *	  at shutdown connlog_writer_set_timeout; guard.c), and is never idle
 *	  in a transaction; a tiny timeout would fail every write.
 *	- exit_on_error = off: it would turn every caught error into FATAL,
 *	  ending the worker with the batches it holds.
 *	- session_replication_role = origin: replica would skip the table's
 *	  triggers and foreign keys.
 *	- row_security = on: off makes a statement on a table with policies
 *	  fail for a role subject to them.
 *	- transform_null_equals = off, standard_conforming_strings = on: the
 *	  statements mean what they say in the default dialect;
 *	  quote_all_identifiers = off: last_error names tables the same way
 *	  in every database.
 *	- jit = off: compiling costs far more than these short statements
 *	  take, and a database's jit_above_cost = 0 would add tens of
 *	  milliseconds to every write.
 *
 * Settings that only change how fast the statements run (planner costs
 * and enable_* switches, work_mem, plan_cache_mode) or how soon a commit
 * is durable (synchronous_commit) are left alone, so the worker's role can
 * still be tuned: a database owner can make the worker slower with them,
 * never make it run or write anything else.  TimeZone and DateStyle
 * change only how connection_logs_rejected's JSON spells a time, not the
 * instant.  local_preload_libraries is never loaded by a background
 * worker.
 *
 * Its own objects.  Every object the statements use is the extension's
 * member, found through pg_depend, never merely by name: the extension
 * comes from pg_extension (scanned, not queried), connection_logs,
 * connection_logs_rejected and, from version 1.1 on, connlog_wal_progress
 * must be ordinary tables that belong to it, as must connlog_batch_row and,
 * before 1.2, connection_type.  Anything else under those names
 * (a view another role created where a member is missing, say) is an
 * error that names it, and nothing is prepared; the worker then holds the
 * events, as for a missing extension, whether it finds this when it starts
 * or when a write prepares the statements again.  A prepared statement
 * names its tables, and the plan cache would look those names up again
 * whenever the plan is invalidated, which a schema rename or a member
 * dropped and replaced does.  So before each statement the worker locks
 * the members it uses in every mode its statements take (the plan cache
 * then takes in no invalidation of its own before the plan runs), and if
 * any plan has been invalidated it prepares them all afresh, with the
 * checks above, instead of letting the plan cache re-analyse them; a
 * freshly prepared statement that references anything but the member
 * under a member's name is refused as well.
 *
 * connlog.target_table.  When it names a table, the rows go there instead of
 * into connection_logs (connection_logs_rejected and connlog_wal_progress
 * stay the extension's).  That table is the application's: not a member,
 * owned by a role that need not be trusted with the worker's privileges,
 * and free to carry triggers, defaults, policies and index expressions its
 * owner wrote.  So:
 *
 *	- it is looked up by its schema-qualified name, locked, and checked
 *	  each time the statements are prepared (find_rows_table): every
 *	  column connlog_batch_row has, by name, writable, taking the value
 *	  by assignment as the INSERT will or, for a text field, through its
 *	  type's input function ("Input functions" below); no other column
 *	  that is NOT NULL without a default (every row would fail, and be
 *	  rejected); and a unique, immediate, non-partial index on exactly
 *	  (connection_id, workspace_id, agent_name) for ON CONFLICT.  A
 *	  failed check holds the events like a broken extension, with an
 *	  error that names the table and what it lacks.  A statement prepared
 *	  for it that references another relation under its name is refused,
 *	  as for a member.
 *	- the upsert and the retention DELETE on it run as the table's owner,
 *	  in a security-restricted operation (begin_as_owner), as VACUUM and
 *	  REFRESH MATERIALIZED VIEW run a table's index functions: whatever
 *	  code the table runs, it runs with its owner's privileges, never with
 *	  the worker's, and settings it changes are undone.  The worker's role
 *	  must still hold the privileges itself (check_privileges; DELETE when
 *	  it purges), so that connlog writes only where an administrator
 *	  granted it; the owner's are checked by the statement.
 *	- a changed setting (a reload) is seen at the next statement: the
 *	  plans remember the value they were prepared for.  A batch is not
 *	  bound to a table; one waiting for a retry, or half split, is written
 *	  to whichever table the setting names when it is next attempted.
 *
 * Before preparing, the statements' privileges are checked for the role
 * the worker runs as (connlog.role), so a missing GRANT is reported by name
 * instead of surfacing as failed rows; an error with SQLSTATE 42501 is
 * reported as CL_WRITE_DENIED, which the worker treats like a missing
 * extension: it keeps the events and looks again.  But 42501 from the
 * upsert need not mean that: a row-level security policy refuses rows
 * with it too (a policy's WITH CHECK, which FORCE ROW LEVEL SECURITY
 * applies to the table's owner), as may a trigger.  So after one, the
 * privileges are checked again (recheck_denied), and unless one is
 * really missing the error is the rows' (CL_WRITE_FAILED): the owner of
 * the table must not make the worker stop writing altogether by refusing
 * one row.
 *
 * Other errors are classified by SQLSTATE (error_status), because what the
 * worker should do next depends on whose fault the error is.  Data
 * exceptions (class 22), integrity violations (23) and program limits
 * (54: a row too large to index, say) are CL_WRITE_BAD_DATA: some row of
 * the statement will fail the same way every time, so retrying the whole
 * batch is pointless and the worker splits it at once to find that row.
 * CL_WRITE_TRANSIENT covers errors that say nothing about the rows and
 * may be gone at the next attempt: transaction rollback (40:
 * serialization failure, deadlock), lock not available and object in use
 * (55P03, 55006), operator intervention (57, query canceled included:
 * statement_timeout), insufficient resources (53), system errors (58),
 * connection exceptions (08), invalid transaction state (25: a read-only
 * transaction, an idle-in-transaction timeout) and snapshot too old
 * (72000).  The worker retries those, max_retries times, before it splits
 * the batch (a trigger can raise any SQLSTATE).  On a Citus cluster, a
 * node that failed or refused the statement (down, restarted, refusing the
 * table owner's credentials or privileges) is CL_WRITE_UNREACHABLE,
 * recognised by what only Citus's own code raises (citus.c): retried
 * without limit, never split, since rows routed to the other nodes would
 * be written and the failing node's rejected.  Anything else (a missing
 * table or column, a trigger's own error, a policy's 42501) is
 * CL_WRITE_FAILED: retried max_retries times, then split.  In a split,
 * only a row of class 22, 23 or 54 is rejected on its own failure alone;
 * for the others flush.c asks for evidence that the table takes other
 * rows (see may_reject_alone there).
 *
 * The upsert counts what it stored.  A BEFORE trigger that returns NULL
 * inserts or updates nothing, without an error; the statement's count
 * (SPI_processed, or for events written again its RETURNING) would then
 * be short of its rows, and counting them all as written would be a lie.
 * upsert_fn fails such a statement (SQLSTATE 09000), so that the split
 * finds the rows the table refused, as for an error.
 *
 * A batch goes to the upsert as one array of the extension's composite
 * type connlog_batch_row, built here tuple by tuple.  That costs the
 * server one tuplestore row per event, where sixteen column arrays under
 * ROWS FROM would cost sixteen (bench/RESULTS.md, "Measurements behind
 * the design"); the table's own columns still take the values through
 * ordinary INSERT assignment, so a table with added columns works too.
 * Only the values that need their column type's input function, a
 * converted text field's and extra's, come in arrays of their own, zipped
 * with the rows by ROWS FROM.  The log_events line is also built here,
 * since it shares the per-field conversions with the upsert.
 *
 * IDENTIFICATION
 *	  src/writer.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_index.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "parser/parse_coerce.h"
#include "parser/parse_relation.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inet.h"
#include "utils/json.h"
#include "utils/pg_lsn.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

#include "citus.h"
#include "compat.h"
#include "connlog.h"
#include "guard.h"
#include "ring.h"
#include "writer.h"

/* connlog_batch_row's columns, in the order of its definition */
enum
{
	COL_ID,
	COL_CONNECT_TIME,
	COL_ORGANIZATION_ID,
	COL_WORKSPACE_OWNER_ID,
	COL_WORKSPACE_ID,
	COL_WORKSPACE_NAME,
	COL_AGENT_NAME,
	COL_TYPE,
	COL_IP,
	COL_CODE,
	COL_USER_AGENT,
	COL_USER_ID,
	COL_SLUG_OR_PORT,
	COL_CONNECTION_ID,
	COL_DISCONNECT_TIME,
	COL_DISCONNECT_REASON,
	COL_EXTRA,					/* from 1.3 */
	UPSERT_NCOLS
};

/* the columns of connection_logs a table of connlog.target_table must have */
#define ROWS_TABLE_NCOLS	COL_EXTRA

/*
 * and their types; InvalidOid marks the type column's, which is text from
 * 1.2 on and the enum connection_type before
 */
static const Oid row_types[UPSERT_NCOLS] = {
	UUIDOID, TIMESTAMPTZOID, UUIDOID, UUIDOID, UUIDOID, TEXTOID, TEXTOID,
	InvalidOid, INETOID, INT4OID, TEXTOID, UUIDOID, TEXTOID, UUIDOID,
	TIMESTAMPTZOID, TEXTOID, JSONBOID
};

/* connlog_batch_row's columns: UPSERT_NCOLS from 1.3, COL_EXTRA before */
static int	row_ncols = UPSERT_NCOLS;

/*
 * The extension's tables that the statements use, in the order of
 * member_names; a statement says which it uses as a mask of 1 << MEMBER_x.
 */
enum
{
	MEMBER_LOGS,
	MEMBER_REJECTED,
	MEMBER_PROGRESS,
	NUM_MEMBERS
};

#define USES_LOGS		(1 << MEMBER_LOGS)
#define USES_REJECTED	(1 << MEMBER_REJECTED)
#define USES_PROGRESS	(1 << MEMBER_PROGRESS)

static const char *const member_names[NUM_MEMBERS] = {
	"connection_logs", "connection_logs_rejected", "connlog_wal_progress"
};

static SPIPlanPtr upsert_plan = NULL;
static SPIPlanPtr reject_plan = NULL;
static SPIPlanPtr purge_plan = NULL;
static SPIPlanPtr replay_find_plan = NULL;
static SPIPlanPtr progress_read_plan = NULL;	/* NULL: no such table (1.0) */
static SPIPlanPtr progress_write_plan = NULL;
static Oid	plan_extoid = InvalidOid;
static char *plan_version = NULL;	/* extversion, in TopMemoryContext */
static Oid	member_relids[NUM_MEMBERS]; /* InvalidOid: not in this version */

/* connlog.target_table the plans were built for, in TopMemoryContext */
static char *plan_table = NULL;

/* the last warning about connlog.target_table logged, in TopMemoryContext */
static char *table_warned = NULL;

/* the table the rows go to, quoted and qualified, in TopMemoryContext */
static char *rows_table = NULL;

/* connlog.target_table's owner, whom its statements run as; InvalidOid: unset */
static Oid	rows_owner = InvalidOid;
static Oid	row_typid = InvalidOid; /* connlog_batch_row */
static Oid	row_array_typid = InvalidOid;
static Oid	type_enum_typid = InvalidOid;	/* connection_type, if the type
											 * column is one; else text */
static Oid	type_label_oids[CL_NUM_TYPES];	/* InvalidOid: label missing */

/*
 * Text into a column of connlog.target_table through the input function
 * of the column's type, with the column's typmod: the one conversion of
 * connlog's text fields (ConvertedColumn) and of extra's values (ExtraPlan)
 * alike.  Looked up once, when the statement it feeds is prepared (which
 * any change to the table's columns makes happen again), and called by
 * input_array() as the table's owner; see "Input functions" below.
 */
typedef struct InputConversion
{
	Oid			typid;			/* the column's type */
	int32		typmod;			/* and its typmod, which the input checks */
	Oid			array_typid;	/* the statement's parameter: an array */
	Oid			ioparam;
	FmgrInfo	input;			/* its cache lives with the statement */
	int16		typlen;
	bool		typbyval;
	char		typalign;
} InputConversion;

/*
 * connlog.target_table's columns that take connlog's text through their
 * type's input function (see check_rows_columns), in the order of their
 * COL_x; every upsert's parameters $2, $3, ... carry their values, one
 * array each.  Their conversions' memory is plans_cxt, emptied with the
 * statements.
 */
typedef struct ConvertedColumn
{
	int			col;			/* COL_x */
	InputConversion conv;
} ConvertedColumn;

static ConvertedColumn converted[ROWS_TABLE_NCOLS];
static int	nconverted = 0;
static bool col_converted[UPSERT_NCOLS];	/* by COL_x */
static MemoryContext plans_cxt = NULL;
static MemoryContext write_cxt = NULL;
static MemoryContext log_events_cxt = NULL;
static int	exit_budget_ms = 0; /* 0: the worker is not exiting */

/*
 * connlog.target_table: the upserts of rows with application columns
 * (extra), one per set of columns (ExtraPlan, below); the schema names
 * keep_plan needs to prepare them later.  In TopMemoryContext.
 */
static List *extra_plans = NIL;
static char *plan_nspname = NULL;
static char *rows_nsp_name = NULL;
static char *rows_rel_name = NULL;

static void forget_extra_plans(void);
static void append_extra_json(StringInfo buf, const ClEvent *ev);
static Datum batch_row(TupleDesc desc, const ClBatch *b, const ClEntry *e,
					   bool with_extra);
static Datum batch_rows_array(Datum *rows, int n);
static void publish_columns(Relation rel, bool any_key);

/*
 * The upsert, every form of it: compose_upsert() fills it in.  %1$s is the
 * table, quoted and qualified; %2$s the columns written besides connlog's
 * sixteen (connection_logs.extra, or an application's columns that extra
 * names); %3$s the values of all of them; %4$s the rows they come from, u:
 * $1, a connlog_batch_row[], alone or zipped by ROWS FROM with the arrays
 * of the converted columns and of the application's columns; %5$s the
 * updates of the columns of %2$s.  Merging in the batch guarantees that no conflict key appears
 * twice in one statement, which ON CONFLICT DO UPDATE would refuse.
 *
 * The rows are taken in the order of their conflict key, so that two
 * writers that both do so lock the rows they share in the same order and
 * never deadlock: connlog's upsert with another of its own (a worker
 * writing while its predecessor's statement ends), or with an
 * application's batch upsert that sorts too.  coder's does not, so its
 * statements and connlog's can still deadlock; the server then cancels
 * one of the two, and each writer retries (coder's batcher, and the
 * worker: a deadlock is transient).  connection_id and workspace_id are
 * enough: the order needs to be the same in every statement, not total,
 * and agent_name may be a converted column, whose value u does not hold.
 * ORDER BY looks up nothing by name: it sorts by the types' default
 * btree operator classes.
 *
 * A connect_time of 0001-01-01 00:00:00Z is coder's mark of a time not
 * known: its own batch upsert writes it for a disconnect whose connect it
 * has not seen, and takes any other time over it.  connlog does the same,
 * so that when both write into coder's table (while a deployment moves
 * its replicas to connlog, say) the row still ends with the earliest real
 * connect time, whichever writer came first.
 */
static const char *const upsert_sql =
"INSERT INTO %1$s AS c (id, connect_time, organization_id, "
"workspace_owner_id, workspace_id, workspace_name, agent_name, type, ip, "
"code, user_agent, user_id, slug_or_port, connection_id, disconnect_time, "
"disconnect_reason%2$s) "
"SELECT %3$s FROM %4$s "
"ORDER BY u.connection_id, u.workspace_id "
"ON CONFLICT (connection_id, workspace_id, agent_name) DO UPDATE SET "
"connect_time = CASE WHEN c.connect_time OPERATOR(pg_catalog.=) "
"'0001-01-01 00:00:00+00'::pg_catalog.timestamptz THEN excluded.connect_time "
"ELSE LEAST(c.connect_time, excluded.connect_time) END, "
"disconnect_time = GREATEST(c.disconnect_time, excluded.disconnect_time), "
"code = COALESCE(c.code, excluded.code), "
"disconnect_reason = COALESCE(c.disconnect_reason, excluded.disconnect_reason)%5$s";

/*
 * connection_logs.extra (1.3): the row's keys keep their values, the
 * event's other keys are added (jsonb's || takes the right operand's value
 * of a key both have), as batch.c merges them.
 */
static const char *const extra_set =
", extra = COALESCE(excluded.extra OPERATOR(pg_catalog.||) c.extra, "
"c.extra, excluded.extra)";

/*
 * One bounded step of connlog.retention.  The rows come from the
 * connect_time index; SKIP LOCKED passes over rows a session has locked
 * rather than waiting for it, and the step's size bounds how long the
 * worker's event writes wait behind it.  ONLY, in both places: a ctid
 * names a row only within one table, and an inheritance child of the
 * table (an archive, say) has rows under the same ctids, which the
 * DELETE would otherwise match too, whatever their age.
 */
static const char *const purge_sql =
"DELETE FROM ONLY %1$s WHERE ctid OPERATOR(pg_catalog.=) "
"ANY (ARRAY(SELECT ctid FROM ONLY %1$s "
"WHERE connect_time OPERATOR(pg_catalog.<) $1 LIMIT $2 "
"FOR UPDATE SKIP LOCKED))";

/*
 * The same step on a Citus table (citus.c), where Citus refuses FOR
 * UPDATE over several shards and a ctid names a row only within its
 * shard: the step's rows are chosen by (id, workspace_id), the key a
 * distributed connection log has (workspace_id is the distribution
 * column), and deleted by it, on every shard at once.  Only rows past the
 * retention are deleted, whatever the key matches.  Rows a session has
 * locked are waited for, not passed over.
 */
static const char *const purge_citus_sql =
"DELETE FROM ONLY %1$s WHERE connect_time OPERATOR(pg_catalog.<) $1 "
"AND (id, workspace_id) IN (SELECT id, workspace_id FROM ONLY %1$s "
"WHERE connect_time OPERATOR(pg_catalog.<) $1 LIMIT $2)";

/*
 * Events read back from WAL (wal.c), or taken again from the ring after a
 * worker exited in the middle of a batch, may have been written already:
 * a web event (no connection_id) then has its row, under its id.  Skip it
 * rather than fail on the primary key, but only when the row is that
 * event (same id, time and workspace): a different event that reuses the
 * id still fails and goes to connection_logs_rejected, as it would have
 * the first time.  Connection rows are idempotent under the upsert above.
 * The row is looked for in the table itself (ONLY), where the upsert
 * inserts it, not in an inheritance child.
 *
 * The rows the batch's web events could be are read first, by their ids
 * and workspaces ($1, $2: uuid[]), and the events whose row is there are
 * left out of the upsert that follows in the same transaction (see
 * skip_written_web).  Two statements, not one with a subquery correlated
 * with the array: Citus (see citus.c) refuses such a subquery, a join
 * with the array would read the whole distributed table, and any part of
 * a statement Citus runs as a query of its own (a CTE, a subquery) it
 * sends as text with the array's type named, which the owner of the table,
 * as whom it runs, need not be allowed to use (the type is in the
 * extension's schema).  This one is a query on the table alone, with
 * arrays of uuids, which Citus sends to the shards.
 */
static const char *const replay_find_sql =
"SELECT x.id, x.connect_time, x.workspace_id FROM ONLY %1$s x "
"WHERE x.id OPERATOR(pg_catalog.=) ANY ($1) "
"AND x.workspace_id OPERATOR(pg_catalog.=) ANY ($2)";

static const char *const reject_sql =
"INSERT INTO %1$s (rejected_at, error, event) "
"VALUES (pg_catalog.now(), $1, $2::pg_catalog.jsonb)";

static void
forget_plans(void)
{
	SPIPlanPtr *plans[] = {&upsert_plan, &reject_plan, &purge_plan,
	&replay_find_plan, &progress_read_plan, &progress_write_plan};

	for (int i = 0; i < lengthof(plans); i++)
	{
		if (*plans[i] != NULL)
			SPI_freeplan(*plans[i]);
		*plans[i] = NULL;
	}
	plan_extoid = InvalidOid;
	if (plan_version != NULL)
		pfree(plan_version);
	plan_version = NULL;
	if (plan_table != NULL)
		pfree(plan_table);
	plan_table = NULL;
	if (rows_table != NULL)
		pfree(rows_table);
	rows_table = NULL;
	if (plan_nspname != NULL)
		pfree(plan_nspname);
	plan_nspname = NULL;
	if (rows_nsp_name != NULL)
		pfree(rows_nsp_name);
	if (rows_rel_name != NULL)
		pfree(rows_rel_name);
	rows_nsp_name = rows_rel_name = NULL;
	rows_owner = InvalidOid;
	nconverted = 0;
	memset(col_converted, 0, sizeof(col_converted));
	if (plans_cxt != NULL)
		MemoryContextReset(plans_cxt);
	memset(member_relids, 0, sizeof(member_relids));
	forget_extra_plans();
	/* until the statements are prepared again, the worker checks keys */
	connlog_columns_publish(CL_COLUMNS_UNKNOWN, InvalidOid, NULL, 0);
}

/*
 * Read connlog's pg_extension row: its OID, schema and version (palloc'd).
 * A scan of the catalog, not a query, so no operator of anyone's is run.
 * Returns false if the extension is not installed.
 */
static bool
find_extension(Oid *extoid, Oid *nspoid, char **version)
{
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found;

	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("connlog"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	found = HeapTupleIsValid(tup);
	if (found)
	{
		Form_pg_extension ext = (Form_pg_extension) GETSTRUCT(tup);
		bool		isnull;
		Datum		v = heap_getattr(tup, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		*extoid = ext->oid;
		*nspoid = ext->extnamespace;
		*version = isnull ? pstrdup("") : TextDatumGetCString(v);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * The locks a statement takes on a member: AccessShareLock (read),
 * RowShareLock (FOR UPDATE) and RowExclusiveLock (written).  Taken in
 * advance, they leave the plan cache nothing to lock, and so no
 * invalidation to take in, between the validity check in use_plans() and
 * the statement.  They conflict with nothing RowExclusiveLock alone does
 * not conflict with.
 */
static void
lock_member(Oid relid)
{
	LockRelationOid(relid, AccessShareLock);
	LockRelationOid(relid, RowShareLock);
	LockRelationOid(relid, RowExclusiveLock);
}

static void
report_not_member(const char *nspname, const char *relname)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("relation \"%s.%s\" is not a member of extension connlog",
					nspname, relname),
			 errdetail("connlog uses only the extension's own objects.")));
}

/*
 * The relation relname in schema nspoid, locked as the statements lock it;
 * InvalidOid if there is none.
 */
static Oid
lookup_locked(Oid nspoid, const char *relname)
{
	Oid			relid = get_relname_relid(relname, nspoid);

	if (OidIsValid(relid))
	{
		/* the lock takes in invalidations: look again under it */
		lock_member(relid);
		if (get_relname_relid(relname, nspoid) != relid)
			relid = InvalidOid;
	}
	return relid;
}

/*
 * The ordinary table nspname.relname, which must be a member of extension
 * extoid; locked.
 */
static Oid
find_member_table(Oid extoid, Oid nspoid, const char *nspname,
				  const char *relname)
{
	Oid			relid = lookup_locked(nspoid, relname);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
			 errmsg("relation \"%s.%s\" does not exist", nspname, relname)));
	if (getExtensionOfObject(RelationRelationId, relid) != extoid)
		report_not_member(nspname, relname);
	if (get_rel_relkind(relid) != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("relation \"%s.%s\" is not a table", nspname, relname)));
	return relid;
}

/* Raise an error unless type typid is a member of extension extoid. */
static void
check_member_type(Oid extoid, Oid typid)
{
	if (getExtensionOfObject(TypeRelationId, typid) != extoid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("type %s is not a member of extension connlog",
						format_type_be_qualified(typid)),
			   errdetail("connlog uses only the extension's own objects.")));
}

/*
 * Look up connlog_batch_row in the extension's schema, check that it is
 * the extension's and that it has the columns build_upsert_args() fills
 * (extra from 1.3 on).
 * Its type column is text from 1.2 on.  Before, it is the enum
 * connection_type, which must be the extension's too, and the OIDs of its
 * labels are looked up here for the seven labels connlog knows; a label
 * that is missing is left InvalidOid and fails only the events that carry
 * it, as casting the label would.
 */
static void
find_row_type(Oid extoid, Oid nspoid, const char *nspname)
{
	TupleDesc	desc;
	Oid			type_typid = InvalidOid;
	bool		ok;

	row_typid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
								CStringGetDatum("connlog_batch_row"),
								ObjectIdGetDatum(nspoid));
	row_array_typid = OidIsValid(row_typid) ?
		get_array_type(row_typid) : InvalidOid;
	if (!OidIsValid(row_array_typid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("type \"%s.connlog_batch_row\" does not exist",
						nspname)));
	check_member_type(extoid, row_typid);

	desc = lookup_rowtype_tupdesc(row_typid, -1);
	row_ncols = desc->natts;
	ok = row_ncols == UPSERT_NCOLS || row_ncols == COL_EXTRA;
	for (int c = 0; ok && c < row_ncols; c++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, c);

		if (att->attisdropped)
			ok = false;
		else if (c == COL_TYPE)
			type_typid = att->atttypid;
		else
			ok = att->atttypid == row_types[c];
	}
	ReleaseTupleDesc(desc);
	if (!ok || (type_typid != TEXTOID &&
				get_typtype(type_typid) != TYPTYPE_ENUM))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("type \"%s.connlog_batch_row\" does not have the columns connlog writes",
						nspname),
				 errhint("Reinstall the extension.")));
	if (type_typid == TEXTOID)
	{
		type_enum_typid = InvalidOid;
		return;
	}
	check_member_type(extoid, type_typid);
	type_enum_typid = type_typid;
	for (int i = 0; i < CL_NUM_TYPES; i++)
		type_label_oids[i] =
			GetSysCacheOid2(ENUMTYPOIDNAME, Anum_pg_enum_oid,
							ObjectIdGetDatum(type_typid),
							CStringGetDatum(connlog_type_labels[i]));
}

/* ---------------------------------------------------------------------
 * Input functions
 *
 * connlog_batch_row's columns go into connlog.target_table's by
 * assignment where the types allow it (check_rows_columns).  Two kinds of
 * value cannot: connlog's text fields written into a column of another
 * type (coder's enum connection_type, a domain, citext: the converted
 * columns), and the values of extra, which are text whatever the column
 * (ExtraPlan).  Both reach their column through the one conversion below:
 * the input function of the column's type, found by OID in pg_type and
 * called with the column's typmod, so that varchar(n) checks its length,
 * a domain its constraints and an enum its labels, exactly as the type
 * reads the text from a client.  Never through a cast: the owner of a
 * type may create casts from text to it, and which cast an assignment
 * applies would be the owner's choice, not connlog's.  The input
 * functions run as the table's owner, in a security-restricted operation
 * like the statement itself (begin_as_owner), since a domain's CHECK is
 * the owner's code.  The values go to the statement as one array per
 * column, of the column's own type, which ROWS FROM zips with the rows of
 * $1 (element i of each is event i's), so the INSERT assigns them with no
 * conversion at all.  A value the type refuses fails the statement with
 * the input function's own error, of class 22 (23 for a domain's
 * constraint), so that the worker's split isolates its row alone.
 * ---------------------------------------------------------------------
 */

/*
 * Look up the conversion of text into type typid with typmod, once per
 * statement.  False if the type has no array type, which the statement's
 * parameter needs.  The input function's cache (a domain's constraints,
 * say) goes into cxt, with the statement's other memory.
 */
static bool
input_conversion_init(InputConversion *ic, Oid typid, int32 typmod,
					  MemoryContext cxt)
{
	Oid			typinput;

	ic->array_typid = get_array_type(typid);
	if (!OidIsValid(ic->array_typid))
		return false;
	ic->typid = typid;
	ic->typmod = typmod;
	getTypeInputInfo(typid, &typinput, &ic->ioparam);
	fmgr_info_cxt(typinput, &ic->input, cxt);
	get_typlenbyvalalign(typid, &ic->typlen, &ic->typbyval, &ic->typalign);
	return true;
}

/*
 * texts[0 .. n) (NULL: no value) through ic's input function, as an array
 * of its type.  The caller runs this as the table's owner.
 */
static Datum
input_array(InputConversion *ic, char **texts, int n)
{
	Datum	   *values = palloc(sizeof(Datum) * n);
	bool	   *nulls = palloc(sizeof(bool) * n);
	int			dims[1] = {n};
	int			lbs[1] = {1};

	for (int i = 0; i < n; i++)
	{
		/* a domain's input runs for NULL too: it checks NOT NULL */
		values[i] = InputFunctionCall(&ic->input, texts[i], ic->ioparam,
									  ic->typmod);
		nulls[i] = texts[i] == NULL;
	}
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs,
											  ic->typid, ic->typlen,
											  ic->typbyval, ic->typalign));
}

/* Is column c one whose value connlog holds as text? */
static bool
text_column(int c)
{
	switch (c)
	{
		case COL_WORKSPACE_NAME:
		case COL_AGENT_NAME:
		case COL_TYPE:
		case COL_USER_AGENT:
		case COL_SLUG_OR_PORT:
		case COL_DISCONNECT_REASON:
			return true;
		default:
			return false;
	}
}

/*
 * Can column c's text take att's type through that type's input function?
 * Only a type whose values are spelled as text (its category, or its
 * domain's base type's, is string, enum or user-defined): the values of a
 * number or a time never read as a workspace name or a connection type,
 * so every row would fail.  If so, note the column in converted[].
 */
static bool
convert_column(int c, Form_pg_attribute att)
{
	ConvertedColumn *cc = &converted[nconverted];
	char		category;
	bool		preferred;

	get_type_category_preferred(getBaseType(att->atttypid), &category,
								&preferred);
	if (category != TYPCATEGORY_STRING && category != TYPCATEGORY_ENUM &&
		category != TYPCATEGORY_USER)
		return false;
	if (plans_cxt == NULL)
		plans_cxt = AllocSetContextCreate(TopMemoryContext,
										  "connlog statements",
										  ALLOCSET_SMALL_SIZES);
	if (!input_conversion_init(&cc->conv, att->atttypid, att->atttypmod,
							   plans_cxt))
		return false;
	cc->col = c;
	col_converted[c] = true;
	nconverted++;
	return true;
}

/*
 * connlog.target_table: every column the upsert writes (connlog_batch_row's)
 * must exist in rel and be one an INSERT may give a value; and no other
 * column may need a value connlog does not give (NOT NULL without a
 * default would fail every row, which would then all be rejected).
 *
 * A column takes connlog's value as it is when it has the same type, or
 * one the value is binary coercible to (text to varchar(n), say: the
 * INSERT then checks the typmod, with the built-in length coercion).  A
 * column connlog gives text to and of another type (an enum, a domain,
 * citext) takes it through its type's input function (see "Input
 * functions" above), never through a cast.  Any other column (a uuid, a
 * time, an integer) must take the value by assignment, as the INSERT
 * gives it.
 */
static void
check_rows_columns(Relation rel, const char *name)
{
	TupleDesc	row_desc = lookup_rowtype_tupdesc(row_typid, -1);
	TupleDesc	desc = RelationGetDescr(rel);

	/* extra is connection_logs' own: an application's has columns */
	for (int c = 0; c < ROWS_TABLE_NCOLS; c++)
	{
		Form_pg_attribute src = TupleDescAttr(row_desc, c);
		const char *col = NameStr(src->attname);
		AttrNumber	attnum = attnameAttNum(rel, col, false);
		Form_pg_attribute att;
		Oid			srctype = src->atttypid;

		if (attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("table %s has no column \"%s\"", name, col)));
		att = TupleDescAttr(desc, attnum - 1);
		if (att->attgenerated != '\0' ||
			att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_COLUMN_DEFINITION),
					 errmsg("column \"%s\" of table %s cannot be written",
							col, name),
					 errdetail("It is a generated column or an identity column GENERATED ALWAYS.")));
		if (att->atttypid == srctype || IsBinaryCoercible(srctype, att->atttypid))
			continue;
		if (text_column(c))
		{
			if (!convert_column(c, att))
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("column \"%s\" of table %s is of type %s, which connlog cannot convert its text values to",
								col, name, format_type_be(att->atttypid)),
						 errdetail("connlog converts text through the input function of a string type, an enum, a user-defined type or a domain over one of them.")));
		}
		else if (!can_coerce_type(1, &srctype, &att->atttypid,
								  COERCION_ASSIGNMENT))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of table %s is of type %s, which connlog cannot assign its %s values to",
							col, name, format_type_be(att->atttypid),
							format_type_be(srctype))));
	}
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		bool		written = false;

		if (att->attisdropped || !att->attnotnull || att->atthasdef ||
			att->attidentity != '\0' || att->attgenerated != '\0')
			continue;
		for (int c = 0; c < ROWS_TABLE_NCOLS && !written; c++)
			written = namestrcmp(&att->attname,
						  NameStr(TupleDescAttr(row_desc, c)->attname)) == 0;
		if (!written)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_COLUMN_DEFINITION),
			errmsg("column \"%s\" of table %s is NOT NULL and has no default",
				   NameStr(att->attname), name),
					 errdetail("connlog does not write that column, so every row would fail.")));
	}
	ReleaseTupleDesc(row_desc);
}

/*
 * connlog.target_table: the upsert's ON CONFLICT (connection_id, workspace_id,
 * agent_name) needs an index it can infer as its arbiter: unique, not
 * deferrable, valid, without a predicate or expressions, on exactly those
 * columns in any order.  And none that ON CONFLICT would infer may be
 * NULLS NOT DISTINCT: every web event has a NULL connection_id, so such an
 * arbiter would make the web events of a workspace's agent conflict with
 * each other and fold them into one row, each counted as written.
 */
static void
check_rows_index(Relation rel, const char *name)
{
	static const char *const key_names[] = {
		"connection_id", "workspace_id", "agent_name"
	};
	AttrNumber	keys[lengthof(key_names)];
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	bool		found = false;
	char	   *nulls_not_distinct = NULL;

	for (int k = 0; k < lengthof(key_names); k++)
		keys[k] = attnameAttNum(rel, key_names[k], false);
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index ix = index->rd_index;
		bool		ok;

		ok = ix->indisunique && ix->indimmediate && ix->indisvalid &&
			ix->indnkeyatts == lengthof(keys) &&
			heap_attisnull(index->rd_indextuple, Anum_pg_index_indpred, NULL) &&
			heap_attisnull(index->rd_indextuple, Anum_pg_index_indexprs, NULL);
		for (int k = 0; ok && k < lengthof(keys); k++)
		{
			bool		has = false;

			for (int j = 0; j < ix->indnkeyatts; j++)
				has |= ix->indkey.values[j] == keys[k];
			ok = has;
		}
		if (ok && INDEX_NULLS_NOT_DISTINCT(ix) && nulls_not_distinct == NULL)
			nulls_not_distinct = pstrdup(RelationGetRelationName(index));
		else if (ok)
			found = true;
		index_close(index, AccessShareLock);
	}
	list_free(indexes);
	if (nulls_not_distinct != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
			  errmsg("unique index \"%s\" of table %s is NULLS NOT DISTINCT",
					 nulls_not_distinct, name),
				 errdetail("Web events have no connection_id: as the upsert's ON CONFLICT arbiter, that index would merge them into one row."),
				 errhint("Create the unique index on (connection_id, workspace_id, agent_name) without NULLS NOT DISTINCT and drop this one.")));
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("table %s has no unique index on (connection_id, workspace_id, agent_name)",
						name),
				 errdetail("connlog's upsert needs one as its ON CONFLICT arbiter: unique, not deferrable, without a WHERE clause or expressions.")));
}

/*
 * connlog.target_table: look up the application's table, lock it as the
 * statements will, and check that the upsert can write into it.  Sets
 * rows_owner.  See "connlog.target_table" in the file header.
 */
static Oid
find_rows_table(const char *nspname, const char *relname, const char *name)
{
	Oid			nspoid = get_namespace_oid(nspname, true);
	Oid			relid = InvalidOid;
	Relation	rel;

	if (OidIsValid(nspoid))
		relid = lookup_locked(nspoid, relname);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s\" does not exist", name),
				 errdetail("connlog.target_table names it.")));
	rel = table_open(relid, NoLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("relation \"%s\" is not a table", name),
				 errdetail("connlog.target_table names it.")));
	check_rows_columns(rel, name);
	check_rows_index(rel, name);
	rows_owner = rel->rd_rel->relowner;
	table_close(rel, NoLock);
	return relid;
}

/* Append "PRIVS on table name" to missing if the role lacks any. */
static void
check_table_privileges(StringInfo missing, Oid roleid, Oid relid,
					   const char *name, const AclMode *modes,
					   const char *const *names, int nmodes)
{
	StringInfoData privs;

	initStringInfo(&privs);
	for (int i = 0; i < nmodes; i++)
		if (pg_class_aclcheck(relid, roleid, modes[i]) != ACLCHECK_OK)
			appendStringInfo(&privs, "%s%s", privs.len > 0 ? ", " : "",
							 names[i]);
	if (privs.len > 0)
		appendStringInfo(missing, "%s%s on table %s",
						 missing->len > 0 ? " and " : "", privs.data, name);
	pfree(privs.data);
}

/*
 * The worker's statements need USAGE on the extension's schema, SELECT,
 * INSERT and UPDATE on connection_logs or connlog.target_table (ON CONFLICT DO
 * UPDATE reads the row it updates), INSERT on connection_logs_rejected,
 * and SELECT and UPDATE on connlog_wal_progress.  Say which are missing,
 * all at once, with SQLSTATE 42501.
 */
static void
check_privileges(Oid nspoid, const char *nspname)
{
	static const AclMode log_modes[] = {ACL_SELECT, ACL_INSERT, ACL_UPDATE};
	static const char *const log_names[] = {"SELECT", "INSERT", "UPDATE"};
	static const AclMode rej_modes[] = {ACL_INSERT};
	static const char *const rej_names[] = {"INSERT"};
	static const AclMode prog_modes[] = {ACL_SELECT, ACL_UPDATE};
	static const char *const prog_names[] = {"SELECT", "UPDATE"};
	Oid			roleid = GetUserId();
	StringInfoData missing;

	if (object_aclcheck(NamespaceRelationId, nspoid, roleid, ACL_USAGE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" lacks USAGE on schema %s",
						GetUserNameFromId(roleid, false),
						quote_identifier(nspname))));
	initStringInfo(&missing);
	check_table_privileges(&missing, roleid, member_relids[MEMBER_LOGS],
						   rows_table, log_modes, log_names,
						   lengthof(log_modes));
	check_table_privileges(&missing, roleid, member_relids[MEMBER_REJECTED],
						   quote_qualified_identifier(nspname,
											  member_names[MEMBER_REJECTED]),
						   rej_modes, rej_names, lengthof(rej_modes));
	if (OidIsValid(member_relids[MEMBER_PROGRESS]))
		check_table_privileges(&missing, roleid,
							   member_relids[MEMBER_PROGRESS],
							   quote_qualified_identifier(nspname,
											  member_names[MEMBER_PROGRESS]),
							   prog_modes, prog_names, lengthof(prog_modes));
	if (missing.len > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" lacks %s",
						GetUserNameFromId(roleid, false), missing.data)));
}

/*
 * Prepare and keep one statement.  Its tables were checked by name just
 * before; should a name have come to mean something else while the
 * statement was parsed (its schema renamed and the name taken, say), the
 * statement would reference a relation of that name in a schema of that
 * name that is not the member (or connlog.target_table, rows_nsp.rows_rel, when
 * it is set), which is refused here.  Other relations
 * the rewriter brings in (a column default's sequence, a policy's table)
 * are the table owner's and pass.
 */
static SPIPlanPtr
keep_plan(const char *nspname, const char *rows_nsp, const char *rows_rel,
		  const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);
	ListCell   *lc;

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s",
			 SPI_result_code_string(SPI_result));
	foreach(lc, SPI_plan_get_plan_sources(plan))
	{
		CachedPlanSource *source = (CachedPlanSource *) lfirst(lc);
		ListCell   *rc;

		foreach(rc, source->relationOids)
		{
			Oid			relid = lfirst_oid(rc);
			char	   *relname = get_rel_name(relid);
			char	   *relnsp = get_namespace_name(get_rel_namespace(relid));

			if (relname == NULL || relnsp == NULL)
				continue;
			if (rows_nsp != NULL && strcmp(relnsp, rows_nsp) == 0 &&
				strcmp(relname, rows_rel) == 0 &&
				relid != member_relids[MEMBER_LOGS])
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("relation \"%s\" changed while connlog prepared its statements",
								rows_table)));
			if (strcmp(relnsp, nspname) != 0)
				continue;
			for (int m = 0; m < NUM_MEMBERS; m++)
				if (strcmp(relname, member_names[m]) == 0 &&
					relid != member_relids[m])
					report_not_member(nspname, relname);
		}
	}
	SPI_keepplan(plan);
	return plan;
}

/*
 * The upsert into rows_table: the one place its text is made (see
 * upsert_sql).  It writes
 * connlog's sixteen columns, the converted ones (converted[]) from arrays
 * of their own, $2 on; then connection_logs.extra if own_extra; then the
 * application's columns app_cols (quoted), napp of them, from the arrays
 * after those.  ROWS FROM names each column it makes: the row type's,
 * then converted_1, ..., then x1, ....
 */
static char *
compose_upsert(bool own_extra, int napp, char *const *app_cols)
{
	TupleDesc	desc = lookup_rowtype_tupdesc(row_typid, -1);
	StringInfoData cols;
	StringInfoData values;
	StringInfoData fns;
	StringInfoData names;
	StringInfoData sets;
	int			param = 2;		/* the next array's parameter */
	int			k = 0;
	char	   *from;

	initStringInfo(&cols);
	initStringInfo(&values);
	initStringInfo(&fns);
	initStringInfo(&names);
	initStringInfo(&sets);
	appendStringInfoString(&fns, "pg_catalog.unnest($1)");
	for (int c = 0; c < desc->natts; c++)
	{
		const char *col = quote_identifier(NameStr(TupleDescAttr(desc, c)->attname));

		appendStringInfo(&names, "%s%s", c > 0 ? ", " : "", col);
		if (c >= ROWS_TABLE_NCOLS)
			continue;			/* extra, below */
		if (col_converted[c])
		{
			appendStringInfo(&values, "%su.converted_%d",
							 c > 0 ? ", " : "", ++k);
			appendStringInfo(&fns, ", pg_catalog.unnest($%d)", param++);
		}
		else
			appendStringInfo(&values, "%su.%s", c > 0 ? ", " : "", col);
	}
	ReleaseTupleDesc(desc);
	for (k = 1; k <= nconverted; k++)
		appendStringInfo(&names, ", converted_%d", k);
	if (own_extra)
	{
		appendStringInfoString(&cols, ", extra");
		appendStringInfoString(&values, ", u.extra");
		appendStringInfoString(&sets, extra_set);
	}
	for (int c = 0; c < napp; c++)
	{
		appendStringInfo(&cols, ", %s", app_cols[c]);
		appendStringInfo(&values, ", u.x%d", c + 1);
		appendStringInfo(&fns, ", pg_catalog.unnest($%d)", param++);
		appendStringInfo(&names, ", x%d", c + 1);
		appendStringInfo(&sets, ", %s = COALESCE(c.%s, excluded.%s)",
						 app_cols[c], app_cols[c], app_cols[c]);
	}
	if (param == 2)
		from = "pg_catalog.unnest($1) AS u";
	else
		from = psprintf("ROWS FROM (%s) AS u(%s)", fns.data, names.data);
	return psprintf(upsert_sql, rows_table, cols.data, values.data, from,
					sets.data);
}

/*
 * Prepare and keep the upsert (compose_upsert).  Its parameters: the rows,
 * one array per converted column, then one per application column, of the
 * types app_types.
 */
static SPIPlanPtr
keep_upsert(const char *nspname, const char *rows_nsp, const char *rows_rel,
			bool own_extra, int napp, char *const *app_cols,
			const Oid *app_types)
{
	int			nargs = 1 + nconverted + napp;
	Oid		   *argtypes = palloc(sizeof(Oid) * nargs);

	argtypes[0] = row_array_typid;
	for (int k = 0; k < nconverted; k++)
		argtypes[1 + k] = converted[k].conv.array_typid;
	for (int c = 0; c < napp; c++)
		argtypes[1 + nconverted + c] = app_types[c];
	return keep_plan(nspname, rows_nsp, rows_rel,
					 compose_upsert(own_extra, napp, app_cols),
					 nargs, argtypes);
}

/*
 * Check the members of extension extoid, in schema nspoid, at version, and
 * prepare the statements for them.  Runs inside a transaction with SPI
 * connected.
 */
static void
build_plans(Oid extoid, Oid nspoid, const char *version)
{
	char	   *nspname;
	const char *schema;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Oid			purge_types[2] = {TIMESTAMPTZOID, INT4OID};
	Oid			uuid_array_types[2] = {UUIDARRAYOID, UUIDARRAYOID};
	Oid			progress_types[4] = {INT8OID, INT8OID, PG_LSNOID, INT8OID};
	bool		has_pending;
	char	   *rows_name;
	char	   *rows_nsp = NULL;	/* connlog.target_table's, if set */
	char	   *rows_rel = NULL;
	const char *target = connlog_effective_table();
	bool		own_extra;

	nspname = get_namespace_name(nspoid);
	if (nspname == NULL)
		elog(ERROR, "cache lookup failed for schema %u", nspoid);
	schema = quote_identifier(nspname);
	for (int m = 0; m < NUM_MEMBERS; m++)
	{
		/* connlog.durability's progress, which version 1.0 does not have */
		if (m == MEMBER_PROGRESS && strcmp(version, "1.0") == 0)
			continue;
		/* connlog.target_table replaces connection_logs */
		if (m == MEMBER_LOGS && target[0] != '\0')
			continue;
		member_relids[m] = find_member_table(extoid, nspoid, nspname,
											 member_names[m]);
	}
	find_row_type(extoid, nspoid, nspname);
	plan_table = MemoryContextStrdup(TopMemoryContext, target);
	if (target[0] == '\0')
		rows_name = quote_qualified_identifier(nspname,
											   member_names[MEMBER_LOGS]);
	else
	{
		/* the setting's check hook accepts nothing else */
		if (!connlog_table_name(target, &rows_nsp, &rows_rel))
			elog(ERROR, "invalid connlog.target_table \"%s\"", target);
		rows_name = quote_qualified_identifier(rows_nsp, rows_rel);
		member_relids[MEMBER_LOGS] = find_rows_table(rows_nsp, rows_rel,
													 rows_name);
	}
	rows_table = MemoryContextStrdup(TopMemoryContext, rows_name);
	check_privileges(nspoid, nspname);

	/* connection_logs keeps extra in a column of its own from 1.3 on */
	own_extra = target[0] == '\0' && row_ncols == UPSERT_NCOLS;
	upsert_plan = keep_upsert(nspname, rows_nsp, rows_rel, own_extra, 0, NULL,
							  NULL);
	replay_find_plan = keep_plan(nspname, rows_nsp, rows_rel,
								 psprintf(replay_find_sql, rows_name), 2,
								 uuid_array_types);
	if (OidIsValid(member_relids[MEMBER_PROGRESS]))
	{
		/* pending_at_exit is new in 1.2; 1.1 stores no count (NULL) */
		has_pending = strcmp(version, "1.1") != 0;
		progress_read_plan = keep_plan(nspname, rows_nsp, rows_rel, psprintf("SELECT epoch, done_seq, done_lsn, %s FROM %s.connlog_wal_progress",
				   has_pending ? "pending_at_exit" : "NULL::pg_catalog.int8",
														   schema), 0, NULL);
		progress_write_plan = keep_plan(nspname, rows_nsp, rows_rel, psprintf("UPDATE %s.connlog_wal_progress SET epoch = $1, done_seq = $2, done_lsn = $3%s",
																	  schema,
								has_pending ? ", pending_at_exit = $4" : ""),
										has_pending ? 4 : 3, progress_types);
	}
	reject_plan = keep_plan(nspname, rows_nsp, rows_rel,
							psprintf(reject_sql,
									 quote_qualified_identifier(nspname,
											 member_names[MEMBER_REJECTED])),
							2, argtypes);
	purge_plan = keep_plan(nspname, rows_nsp, rows_rel,
				   psprintf(connlog_citus_table(member_relids[MEMBER_LOGS]) ?
							purge_citus_sql : purge_sql, rows_name),
						   2, purge_types);
	plan_extoid = extoid;
	plan_version = MemoryContextStrdup(TopMemoryContext, version);
	plan_nspname = MemoryContextStrdup(TopMemoryContext, nspname);
	if (rows_nsp != NULL)
	{
		rows_nsp_name = MemoryContextStrdup(TopMemoryContext, rows_nsp);
		rows_rel_name = MemoryContextStrdup(TopMemoryContext, rows_rel);
	}
	{
		Relation	rel = table_open(member_relids[MEMBER_LOGS],
									 AccessShareLock);

		publish_columns(rel, own_extra);
		table_close(rel, AccessShareLock);
	}
}

/*
 * build_plans() for a statement on the events: a broken extension (a
 * member missing, a look-alike, a table without the columns connlog
 * writes) is not the events' fault, so it is reported as a missing one,
 * which makes the worker keep them and call connlog_check_target(), whose
 * error says what is wrong.  Broken means SQLSTATE class 42 (an object
 * missing or not what the statements need), except 42501, and 55000 (not
 * a member).  Any other error is raised as it is: a missing privilege,
 * which the worker also holds the events for and counts as a refused
 * write, and whatever is about the moment rather than the objects (a
 * cancel, a lock timeout, memory).
 */
static bool
build_plans_or_hold(Oid extoid, Oid nspoid, const char *version)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool built = false;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		build_plans(extoid, nspoid, version);
		ReleaseCurrentSubTransaction();
		built = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		forget_plans();
		if (edata->sqlerrcode != ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE &&
			(ERRCODE_TO_CATEGORY(edata->sqlerrcode) !=
			 ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION ||
			 edata->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE))
			ReThrowError(edata);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return built;
}

/*
 * connlog.table, the deprecated name of connlog.target_table, which is
 * used while connlog.target_table is empty (connlog_effective_table): say
 * once what the worker makes of it, and again only when the settings
 * change.
 */
static void
warn_table_setting(void)
{
	const char *old = connlog_table;
	const char *target = connlog_target_table;
	char	   *key;

	if (old[0] == '\0')
	{
		if (table_warned != NULL)
			pfree(table_warned);
		table_warned = NULL;
		return;
	}
	key = psprintf("%s\n%s", old, target);
	if (table_warned != NULL && strcmp(key, table_warned) == 0)
	{
		pfree(key);
		return;
	}
	if (target[0] == '\0')
		ereport(WARNING,
				(errmsg("connlog.table is deprecated"),
				 errdetail("The worker writes into the table connlog.table names, \"%s\".",
						   old),
				 errhint("Set connlog.target_table instead, and remove connlog.table.")));
	else if (strcmp(old, target) != 0)
		ereport(WARNING,
				(errmsg("connlog.table is deprecated and ignored"),
				 errdetail("The worker writes into the table connlog.target_table names, \"%s\", not into \"%s\", which connlog.table names.",
						   target, old),
				 errhint("Remove connlog.table.")));
	else
		ereport(WARNING,
				(errmsg("connlog.table is deprecated"),
			  errdetail("connlog.target_table names the same table, \"%s\".",
						target),
				 errhint("Remove connlog.table.")));
	if (table_warned != NULL)
		pfree(table_warned);
	table_warned = MemoryContextStrdup(TopMemoryContext, key);
	pfree(key);
}

/*
 * Find the extension and prepare the statements for its schema, unless
 * they are prepared for this extension and version already.  Runs inside
 * a transaction with SPI connected.  Returns false if the extension is not
 * installed, or if it is broken and hold_if_broken is set.
 */
static bool
prepare_plans(bool hold_if_broken)
{
	Oid			extoid;
	Oid			nspoid;
	char	   *version;

	if (!find_extension(&extoid, &nspoid, &version))
	{
		forget_plans();
		return false;
	}
	warn_table_setting();
	if (extoid == plan_extoid && strcmp(version, plan_version) == 0 &&
		strcmp(connlog_effective_table(), plan_table) == 0 &&
		upsert_plan != NULL)
		return true;

	forget_plans();
	if (hold_if_broken)
		return build_plans_or_hold(extoid, nspoid, version);
	build_plans(extoid, nspoid, version);
	return true;
}

static bool extra_plans_valid(void);

/* Is every kept statement's query tree still valid? */
static bool
plans_valid(void)
{
	SPIPlanPtr	plans[] = {upsert_plan, reject_plan, purge_plan,
	replay_find_plan, progress_read_plan, progress_write_plan};

	for (int i = 0; i < lengthof(plans); i++)
		if (plans[i] != NULL && !SPI_plan_is_valid(plans[i]))
			return false;
	return extra_plans_valid();
}

/*
 * May the statements run on the members in uses (USES_x) as they are
 * prepared?  Locks those members, then checks that no plan has been
 * invalidated, which the plan cache would re-analyse by name.
 */
static bool
plans_current(int uses)
{
	for (int m = 0; m < NUM_MEMBERS; m++)
		if ((uses & (1 << m)) && OidIsValid(member_relids[m]))
			lock_member(member_relids[m]);
	return plans_valid();
}

/*
 * Make the statements ready to run on the members in uses: prepared for
 * the installed extension and version, and current.  Call it right before
 * running them; whatever reads the catalogs in between may take in
 * invalidations, so check plans_current() again after it.  Returns false
 * if the extension is not installed or broken.
 */
static bool
use_plans(int uses)
{
	for (int attempt = 0;; attempt++)
	{
		if (!prepare_plans(true))
			return false;
		if (plans_current(uses))
			return true;
		if (attempt == 2)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("connlog's tables kept changing while its statements were prepared")));
		forget_plans();
	}
}

/* What an error with SQLSTATE sqlerrcode means for the worker (see above) */
static ConnlogWriteStatus
error_status(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_DATA_EXCEPTION:
		case ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION:
		case ERRCODE_PROGRAM_LIMIT_EXCEEDED:
			return CL_WRITE_BAD_DATA;
		case ERRCODE_TRANSACTION_ROLLBACK:
		case ERRCODE_OPERATOR_INTERVENTION:
		case ERRCODE_INSUFFICIENT_RESOURCES:
		case ERRCODE_SYSTEM_ERROR:
		case ERRCODE_CONNECTION_EXCEPTION:
		case ERRCODE_INVALID_TRANSACTION_STATE:
		case ERRCODE_SNAPSHOT_TOO_OLD:
			return CL_WRITE_TRANSIENT;
		default:
			break;
	}
	switch (sqlerrcode)
	{
		case ERRCODE_INSUFFICIENT_PRIVILEGE:
			return CL_WRITE_DENIED;
		case ERRCODE_LOCK_NOT_AVAILABLE:
		case ERRCODE_OBJECT_IN_USE:
			return CL_WRITE_TRANSIENT;
		default:
			return CL_WRITE_FAILED;
	}
}

/*
 * An error as connlog_stats.last_error shows it: "message (SQLSTATE
 * xxxxx)", and for an error a node of a Citus cluster raised, which node
 * (citus.c), since the same message may come from any of them.
 */
static char *
error_text(const ErrorData *edata)
{
	char	   *node = connlog_citus_node(edata);

	if (node != NULL)
		return psprintf("%s (SQLSTATE %s, on node %s)", edata->message,
						unpack_sql_state(edata->sqlerrcode), node);
	return psprintf("%s (SQLSTATE %s)", edata->message,
					unpack_sql_state(edata->sqlerrcode));
}

volatile sig_atomic_t connlog_in_statement = false;

/*
 * In the PG_CATCH block of code that started a transaction: take the
 * error out of the error state into caller_cxt, let cleanup (if not NULL)
 * release what the abort does not, abort the transaction, and go back to
 * caller_cxt, since the abort leaves TopMemoryContext current.  The caller
 * frees the ErrorData.
 */
ErrorData *
connlog_abort_caught(MemoryContext caller_cxt, void (*cleanup) (void *arg),
					 void *arg)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(caller_cxt);
	edata = CopyErrorData();
	FlushErrorState();
	if (cleanup != NULL)
		cleanup(arg);
	AbortCurrentTransaction();
	MemoryContextSwitchTo(caller_cxt);
	return edata;
}

/*
 * What a statement shows in connlog_stats.worker_state while it runs.
 * Looking for the extension and reading or storing the progress are part
 * of whatever the worker is doing at the time, and leave the state alone.
 */
typedef enum StatementShows
{
	SHOWS_WRITING,
	SHOWS_PURGING,
	SHOWS_NOTHING
} StatementShows;

/*
 * Run one statement in a transaction of its own.  fn runs with SPI
 * connected and returns false if the extension is missing.  Errors are
 * caught, classified by their SQLSTATE, and returned as "message (SQLSTATE
 * xxxxx)" in *error, allocated in the caller's memory context.
 */
typedef bool (*write_fn) (void *arg);

static ConnlogWriteStatus
run_statement(write_fn fn, void *arg, const char *activity,
			  StatementShows shows, char **error)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	volatile ConnlogWriteStatus status;

	*error = NULL;
	if (shows == SHOWS_WRITING)
		connlog_ring_set_state(CL_STATE_WRITING);
	else if (shows == SHOWS_PURGING)
		connlog_ring_set_state(CL_STATE_PURGING);
	connlog_in_statement = true;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		/* connlog.statement_timeout, and the time left at shutdown */
		connlog_guard_statement_start(exit_budget_ms);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, activity);
		status = fn(arg) ? CL_WRITE_OK : CL_WRITE_MISSING;
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata = connlog_abort_caught(caller_cxt, NULL, NULL);

		*error = error_text(edata);
		status = connlog_citus_node_failure(edata) ?
			CL_WRITE_UNREACHABLE : error_status(edata->sqlerrcode);
		FreeErrorData(edata);

		/*
		 * The plans may be what failed: prepare them afresh next time.  Not
		 * after an error of the rows (a duplicate id, say), which a split
		 * meets once per level: preparing costs more than the statement.
		 */
		if (status != CL_WRITE_BAD_DATA)
			forget_plans();
	}
	PG_END_TRY();
	/* a cancel that came too late for the statement must not outlive it */
	connlog_in_statement = false;
	connlog_guard_statement_end();
	QueryCancelPending = false;
	MemoryContextSwitchTo(caller_cxt);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return status;
}

/*
 * Bound every later statement by the time the exiting worker has left
 * (used for the drain at shutdown), besides connlog.statement_timeout; 0
 * removes the bound.
 */
void
connlog_writer_set_timeout(int timeout_ms)
{
	exit_budget_ms = Max(timeout_ms, 0);
}

/*
 * The settings the worker's session chooses for itself, whatever the
 * database's and roles' ALTER ... SET say; the header says why each.
 */
typedef struct SessionSetting
{
	const char *name;
	const char *value;
} SessionSetting;

static const SessionSetting session_settings[] = {
	{"search_path", "pg_catalog, pg_temp"},
	{"default_transaction_read_only", "off"},
	{"default_transaction_isolation", "read committed"},
	{"default_transaction_deferrable", "off"},
	{"statement_timeout", "0"},
	{"lock_timeout", "0"},
	{"idle_in_transaction_session_timeout", "0"},
#if PG_VERSION_NUM >= 140000
	{"idle_session_timeout", "0"},
#endif
#if PG_VERSION_NUM >= 170000
	{"transaction_timeout", "0"},
#endif
	{"exit_on_error", "off"},
	{"session_replication_role", "origin"},
	{"row_security", "on"},
	{"transform_null_equals", "off"},
	{"standard_conforming_strings", "on"},
	{"quote_all_identifiers", "off"},
	{"jit", "off"},
};

/*
 * Called once, right after the worker has connected to its database.
 * PGC_S_OVERRIDE outranks every source ALTER DATABASE and ALTER ROLE
 * write, and the configuration file; PGC_SUSET lets it set the settings
 * only superusers may, whatever role the worker runs as.
 */
void
connlog_writer_init_session(void)
{
	StartTransactionCommand();
	/* the role the worker connected as, then no SET ROLE on top of it */
	SetConfigOption("session_authorization",
					GetUserNameFromId(GetAuthenticatedUserId(), false),
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("role", "none", PGC_SUSET, PGC_S_OVERRIDE);
	for (int i = 0; i < lengthof(session_settings); i++)
		SetConfigOption(session_settings[i].name, session_settings[i].value,
						PGC_SUSET, PGC_S_OVERRIDE);
	CommitTransactionCommand();
}

static bool
check_fn(void *arg)
{
	return prepare_plans(false);
}

/* Is the extension there?  Prepares the statements if it is. */
ConnlogWriteStatus
connlog_check_target(char **error)
{
	return run_statement(check_fn, NULL, "connlog: looking for the extension",
						 SHOWS_NOTHING, error);
}

/* ---------------------------------------------------------------------
 * Field conversions
 * ---------------------------------------------------------------------
 */

static Datum
uuid_datum(const uint8 *bytes)
{
	pg_uuid_t  *u = palloc(sizeof(pg_uuid_t));

	memcpy(u->data, bytes, UUID_LEN);
	return UUIDPGetDatum(u);
}

static Datum
text_datum(const ClText *t)
{
	return PointerGetDatum(cstring_to_text_with_len(t->data, t->len));
}

static Datum
inet_datum(const ClEvent *ev)
{
	inet	   *ip = palloc0(sizeof(inet));

	ip_family(ip) = ev->ip_family == 4 ? PGSQL_AF_INET : PGSQL_AF_INET6;
	ip_bits(ip) = ev->ip_bits;
	memcpy(ip_addr(ip), ev->ip_addr, ip_addrsize(ip));
	SET_INET_VARSIZE(ip);
	return InetPGetDatum(ip);
}

/*
 * The upserts' arguments: the entries in groups, one per statement: those
 * without application columns for upsert_plan, and on
 * connlog.target_table those with them, one group per set of columns (see
 * "Application columns" below).
 */
typedef struct ExtraPlan ExtraPlan;

typedef struct UpsertGroup
{
	ExtraPlan  *extra;			/* its statement; NULL: upsert_plan */
	List	   *entries;		/* batch indexes of its entries */
	int			ntexts;			/* converted columns, then extra's */
	char	  **texts;			/* column j's n texts from j * n */
	Datum	   *args;			/* $1, the rows; then one array per column */
} UpsertGroup;

typedef struct UpsertArgs
{
	const ClBatch *batch;
	int			start;
	int			n;
	const ConnlogProgress *progress;
	List	   *groups;			/* of UpsertGroup */
	bool	   *skip;			/* entries left out, NULL: none */
} UpsertArgs;

/*
 * connlog.durability: store the progress in the transaction that makes it
 * true (see wal.c).  NULL: nothing to store.  The epoch is stored as the
 * bigint with the same bits; pending_at_exit is NULL unless an exiting
 * worker stores it (a 1.1 plan has no fourth parameter and ignores it).
 */
static void
store_progress(const ConnlogProgress *progress)
{
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	int			rc;

	if (progress == NULL || progress_write_plan == NULL)
		return;

	/*
	 * The statement run before this one may have taken in invalidations. It
	 * has run, so a broken extension can no longer be reported as a missing
	 * one: fail the transaction, and let the retry find out.
	 */
	if (!plans_current(USES_PROGRESS) &&
		(!use_plans(USES_PROGRESS) || progress_write_plan == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("connlog's tables changed while it was writing")));
	values[0] = Int64GetDatum((int64) progress->epoch);
	values[1] = Int64GetDatum((int64) progress->seq);
	values[2] = LSNGetDatum(progress->lsn);
	values[3] = Int64GetDatum((int64) progress->pending);
	if (!progress->at_exit)
		nulls[3] = 'n';
	rc = SPI_execute_plan(progress_write_plan, values, nulls, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "connlog progress update failed: %s",
			 SPI_result_code_string(rc));
}

/*
 * The type column's value for ev: the text, or before 1.2 the label of
 * connection_type.  A type the enum has no label for fails the statement
 * with a data exception, as casting it would, so the worker's split
 * rejects only the rows that carry it.
 */
static Datum
type_datum(const ClEvent *ev)
{
	ClText		type = cl_event_type(ev);
	Oid			label;

	if (!OidIsValid(type_enum_typid))
		return text_datum(&type);
	if (!(ev->flags & CL_HAS_TYPE_TEXT))
		label = type_label_oids[ev->type];
	else
		label = GetSysCacheOid2(ENUMTYPOIDNAME, Anum_pg_enum_oid,
								ObjectIdGetDatum(type_enum_typid),
								CStringGetDatum(pnstrdup(type.data,
														 type.len)));
	if (!OidIsValid(label))
	{
		char	   *name = pnstrdup(type.data, type.len);

		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			   errmsg("invalid input value for enum connection_type: \"%s\"",
					  name)));
	}
	return ObjectIdGetDatum(label);
}

/* ---------------------------------------------------------------------
 * Application columns: extra on connlog.target_table
 *
 * connlog_enqueue's extra names columns of the application's table beyond
 * connlog's sixteen.  An INSERT lists its columns once for all its rows,
 * and a column it lists but a row does not give would get NULL instead
 * of its default; so the entries of a batch with extra are upserted by
 * their set of columns, one statement per set (usually one: an
 * application sends the same keys with every event), in the batch's
 * transaction, and entries without extra by upsert_plan as always.  Each
 * set's statement is prepared once and kept (ExtraPlan), up to
 * MAX_EXTRA_PLANS sets; past that, the sets the batch being written does
 * not use are forgotten.  Every set's statement is the same upsert
 * (compose_upsert), with the columns of the set added.
 *
 * A value reaches its column through the column type's input function,
 * like a converted column's text (see "Input functions" above).  On
 * conflict an existing non-NULL value is kept, as coder does for code and
 * disconnect_reason.  A key that names no column connlog can write fails
 * the statement with 22023: the worker's split then isolates the event
 * with the reason (flush.c).
 * ---------------------------------------------------------------------
 */
#define MAX_EXTRA_PLANS		16

struct ExtraPlan
{
	MemoryContext cxt;			/* holds it all, the input functions' caches
								 * too */
	char	   *sig;			/* the keys as in a record: length, bytes */
	int			sig_len;
	int			ncols;
	InputConversion *conv;		/* each column's */
	bool		in_use;			/* by the batch being written */
	SPIPlanPtr	plan;
};

static void
free_extra_plan(ExtraPlan *p)
{
	SPI_freeplan(p->plan);
	MemoryContextDelete(p->cxt);
}

static void
forget_extra_plans(void)
{
	ListCell   *lc;

	foreach(lc, extra_plans)
		free_extra_plan(lfirst(lc));
	list_free(extra_plans);
	extra_plans = NIL;
}

/* Make room for another set: forget those the batch does not use. */
static void
evict_extra_plans(void)
{
	ListCell   *lc;

	foreach(lc, extra_plans)
	{
		ExtraPlan  *p = lfirst(lc);

		if (!p->in_use)
		{
			free_extra_plan(p);
			extra_plans = foreach_delete_current(extra_plans, lc);
		}
	}
}

static bool
extra_plans_valid(void)
{
	ListCell   *lc;

	foreach(lc, extra_plans)
	{
		ExtraPlan  *p = lfirst(lc);

		if (!SPI_plan_is_valid(p->plan))
			return false;
	}
	return true;
}

/*
 * A column extra may name: one of the table's own, not one of connlog's
 * sixteen, and one an INSERT may give a value (not generated, not an
 * identity GENERATED ALWAYS).
 */
static bool
extra_column(Form_pg_attribute att)
{
	const char *name = NameStr(att->attname);

	return !att->attisdropped && att->attnum > 0 &&
		att->attgenerated == '\0' &&
		att->attidentity != ATTRIBUTE_IDENTITY_ALWAYS &&
		!cl_extra_reserved_key(name, strlen(name));
}

/*
 * Tell connlog_enqueue which keys extra may have (ring.c): any, for
 * connection_logs from 1.3 on; else the columns of rel that extra may
 * name (none for connection_logs before 1.3).
 */
static void
publish_columns(Relation rel, bool any_key)
{
	TupleDesc	desc = RelationGetDescr(rel);
	StringInfoData names;

	if (any_key)
	{
		connlog_columns_publish(CL_COLUMNS_ANY, RelationGetRelid(rel),
								NULL, 0);
		return;
	}
	initStringInfo(&names);
	for (int i = 0; i < desc->natts && plan_table[0] != '\0'; i++)
		if (extra_column(TupleDescAttr(desc, i)))
			appendBinaryStringInfo(&names,
								   NameStr(TupleDescAttr(desc, i)->attname),
					   strlen(NameStr(TupleDescAttr(desc, i)->attname)) + 1);
	connlog_columns_publish(CL_COLUMNS_LISTED, RelationGetRelid(rel),
							names.data, (uint32) names.len);
	pfree(names.data);
}

/*
 * The kept statement for the columns sig names, prepared now if need be,
 * marked as used by the batch.  A key that names no column connlog can
 * write is the event's error.
 */
static ExtraPlan *
find_extra_plan(const char *sig, int sig_len)
{
	Oid			relid = member_relids[MEMBER_LOGS];
	ExtraPlan  *p;
	ListCell   *lc;
	MemoryContext cxt;
	MemoryContext old;
	char	  **cols;
	Oid		   *typids;
	int32	   *typmods;
	Oid		   *array_types;
	SPIPlanPtr	plan;
	int			ncols = 0;

	foreach(lc, extra_plans)
	{
		p = lfirst(lc);
		if (p->sig_len == sig_len && memcmp(p->sig, sig, sig_len) == 0)
		{
			p->in_use = true;
			return p;
		}
	}
	if (list_length(extra_plans) >= MAX_EXTRA_PLANS)
		evict_extra_plans();

	/* kept only once every column is found: an error leaves nothing */
	for (int pos = 0; pos < sig_len; pos += 1 + (uint8) sig[pos])
		ncols++;
	cols = palloc(sizeof(char *) * ncols);
	typids = palloc(sizeof(Oid) * ncols);
	typmods = palloc(sizeof(int32) * ncols);
	array_types = palloc(sizeof(Oid) * ncols);
	for (int c = 0, pos = 0; c < ncols; c++, pos += 1 + (uint8) sig[pos])
	{
		char	   *name = pnstrdup(sig + pos + 1, (uint8) sig[pos]);
		HeapTuple	tup = SearchSysCacheAttName(relid, name);
		bool		ok;

		ok = HeapTupleIsValid(tup) &&
			extra_column((Form_pg_attribute) GETSTRUCT(tup));
		if (ok)
		{
			typids[c] = ((Form_pg_attribute) GETSTRUCT(tup))->atttypid;
			typmods[c] = ((Form_pg_attribute) GETSTRUCT(tup))->atttypmod;
		}
		if (HeapTupleIsValid(tup))
			ReleaseSysCache(tup);
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			   errmsg("table %s has no column \"%s\" that connlog can write",
					  rows_table, name),
					 errdetail("The event's extra names it.")));
		array_types[c] = get_array_type(typids[c]);
		if (!OidIsValid(array_types[c]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column \"%s\" of table %s is of type %s, which has no array type",
							name, rows_table, format_type_be(typids[c])),
					 errdetail("connlog passes the values of extra as an array of the column's type.")));
		cols[c] = (char *) quote_identifier(name);
	}
	plan = keep_upsert(plan_nspname, rows_nsp_name, rows_rel_name, false,
					   ncols, cols, array_types);

	cxt = AllocSetContextCreate(TopMemoryContext, "connlog extra statement",
								ALLOCSET_SMALL_SIZES);
	p = MemoryContextAllocZero(cxt, sizeof(ExtraPlan));
	p->cxt = cxt;
	p->sig = memcpy(MemoryContextAlloc(cxt, sig_len), sig, sig_len);
	p->sig_len = sig_len;
	p->ncols = ncols;
	p->conv = MemoryContextAllocZero(cxt, sizeof(InputConversion) * ncols);
	for (int c = 0; c < ncols; c++)
		(void) input_conversion_init(&p->conv[c], typids[c], typmods[c], cxt);
	p->in_use = true;
	p->plan = plan;
	old = MemoryContextSwitchTo(TopMemoryContext);
	extra_plans = lappend(extra_plans, p);
	MemoryContextSwitchTo(old);
	return p;
}

/* The group of a's entries whose extra has ev's set of columns */
static UpsertGroup *
extra_group(UpsertArgs *a, const ClEvent *ev)
{
	StringInfoData sig;
	const char *pos = ev->extra;
	ClExtraItem it;
	UpsertGroup *g = NULL;
	ListCell   *lc;

	initStringInfo(&sig);
	while (cl_extra_next(&pos, ev->extra + ev->extra_len, &it))
	{
		appendBinaryStringInfo(&sig, (const char *) &it.key_len, 1);
		appendBinaryStringInfo(&sig, it.key, it.key_len);
	}
	foreach(lc, a->groups)
	{
		UpsertGroup *x = lfirst(lc);

		if (x->extra != NULL && x->extra->sig_len == sig.len &&
			memcmp(x->extra->sig, sig.data, sig.len) == 0)
			g = x;
	}
	if (g == NULL)
	{
		g = palloc0(sizeof(UpsertGroup));
		g->extra = find_extra_plan(sig.data, sig.len);
		a->groups = lappend(a->groups, g);
	}
	pfree(sig.data);
	return g;
}

/*
 * The text connlog gives column c (a text_column()) for ev in *t; false if
 * it gives NULL.
 */
static bool
event_text(const ClEvent *ev, int c, ClText *t)
{
	switch (c)
	{
		case COL_WORKSPACE_NAME:
			*t = ev->workspace_name;
			return true;
		case COL_AGENT_NAME:
			*t = ev->agent_name;
			return true;
		case COL_TYPE:
			*t = cl_event_type(ev);
			return true;
		case COL_USER_AGENT:
			*t = ev->user_agent;
			return (ev->flags & CL_HAS_USER_AGENT) != 0;
		case COL_SLUG_OR_PORT:
			*t = ev->slug_or_port;
			return (ev->flags & CL_HAS_SLUG_OR_PORT) != 0;
		case COL_DISCONNECT_REASON:
			*t = ev->disconnect_reason;
			return (ev->flags & CL_HAS_REASON) != 0;
		default:
			elog(ERROR, "column %d of connlog_batch_row is not text", c);
	}
	return false;
}

/*
 * Group g's rows ($1), and the texts of its converted columns and of its
 * application columns, which convert_values() turns into their arrays.
 * with_extra: the rows carry extra, for connection_logs' column.
 */
static void
build_group_args(UpsertArgs *a, UpsertGroup *g, TupleDesc desc,
				 bool with_extra)
{
	int			n = list_length(g->entries);
	Datum	   *rows = palloc(sizeof(Datum) * n);
	ListCell   *ec;
	int			k = 0;

	g->ntexts = nconverted + (g->extra != NULL ? g->extra->ncols : 0);
	g->texts = palloc(sizeof(char *) * g->ntexts * n);
	foreach(ec, g->entries)
	{
		const ClEntry *e = &a->batch->entries[lfirst_int(ec)];
		ClEvent		ev;
		ClText		t;

		cl_batch_entry_event(a->batch, e, &ev);
		rows[k] = batch_row(desc, a->batch, e, with_extra);
		for (int j = 0; j < nconverted; j++)
			g->texts[j * n + k] = event_text(&ev, converted[j].col, &t) ?
				pnstrdup(t.data, t.len) : NULL;
		if (g->extra != NULL)
		{
			const char *pos = ev.extra;
			ClExtraItem it;
			int			j = nconverted;

			while (cl_extra_next(&pos, ev.extra + ev.extra_len, &it))
				g->texts[j++ * n + k] = pnstrdup(it.value, it.value_len);
		}
		k++;
	}
	g->args = palloc(sizeof(Datum) * (1 + g->ntexts));
	g->args[0] = batch_rows_array(rows, n);
}

/*
 * Each group's arrays, $2 on: its texts through the input functions of
 * the converted columns, then of its application columns.  The caller runs
 * this as the table's owner.
 */
static void
convert_values(UpsertArgs *a)
{
	ListCell   *lc;

	foreach(lc, a->groups)
	{
		UpsertGroup *g = lfirst(lc);
		int			n = list_length(g->entries);

		for (int j = 0; j < g->ntexts; j++)
		{
			InputConversion *ic = j < nconverted ? &converted[j].conv :
			&g->extra->conv[j - nconverted];

			g->args[1 + j] = input_array(ic, g->texts + j * n, n);
		}
	}
}

/* connection_logs.extra's value: ev's extra as a jsonb */
static Datum
extra_jsonb(const ClEvent *ev)
{
	StringInfoData buf;

	initStringInfo(&buf);
	append_extra_json(&buf, ev);
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/*
 * Entry e of b as a connlog_batch_row of desc; with_extra: fill extra.  A
 * converted column is left NULL: its value is in its own array.
 */
static Datum
batch_row(TupleDesc desc, const ClBatch *b, const ClEntry *e, bool with_extra)
{
	ClEvent		ev;
	Datum		v[UPSERT_NCOLS];
	bool		null[UPSERT_NCOLS];

	cl_batch_entry_event(b, e, &ev);
	memset(null, 0, sizeof(null));
	v[COL_ID] = uuid_datum(ev.id);
	v[COL_CONNECT_TIME] = TimestampTzGetDatum(e->connect_time);
	v[COL_ORGANIZATION_ID] = uuid_datum(ev.organization_id);
	v[COL_WORKSPACE_OWNER_ID] = uuid_datum(ev.workspace_owner_id);
	v[COL_WORKSPACE_ID] = uuid_datum(ev.workspace_id);
	v[COL_WORKSPACE_NAME] = text_datum(&ev.workspace_name);
	v[COL_AGENT_NAME] = text_datum(&ev.agent_name);
	/* a type the enum of 1.1 lacks must not fail a column converted anyway */
	if (!col_converted[COL_TYPE])
		v[COL_TYPE] = type_datum(&ev);
	if (ev.flags & CL_HAS_IP)
		v[COL_IP] = inet_datum(&ev);
	else
		null[COL_IP] = true;
	v[COL_CODE] = Int32GetDatum(ev.code);
	null[COL_CODE] = !(ev.flags & CL_HAS_CODE);
	if (ev.flags & CL_HAS_USER_AGENT)
		v[COL_USER_AGENT] = text_datum(&ev.user_agent);
	else
		null[COL_USER_AGENT] = true;
	if (ev.flags & CL_HAS_USER_ID)
		v[COL_USER_ID] = uuid_datum(ev.user_id);
	else
		null[COL_USER_ID] = true;
	if (ev.flags & CL_HAS_SLUG_OR_PORT)
		v[COL_SLUG_OR_PORT] = text_datum(&ev.slug_or_port);
	else
		null[COL_SLUG_OR_PORT] = true;
	if (ev.flags & CL_HAS_CONNECTION_ID)
		v[COL_CONNECTION_ID] = uuid_datum(ev.connection_id);
	else
		null[COL_CONNECTION_ID] = true;
	v[COL_DISCONNECT_TIME] = TimestampTzGetDatum(e->disconnect_time);
	null[COL_DISCONNECT_TIME] = (e->disconnect_time == CL_NO_TIME);
	if (ev.flags & CL_HAS_REASON)
		v[COL_DISCONNECT_REASON] = text_datum(&ev.disconnect_reason);
	else
		null[COL_DISCONNECT_REASON] = true;
	if (with_extra && ev.extra_len > 0)
		v[COL_EXTRA] = extra_jsonb(&ev);
	else
		null[COL_EXTRA] = true;
	for (int c = 0; c < ROWS_TABLE_NCOLS; c++)
		null[c] |= col_converted[c];
	return HeapTupleGetDatum(heap_form_tuple(desc, v, null));
}

/* rows[0 .. n) as a connlog_batch_row[] */
static Datum
batch_rows_array(Datum *rows, int n)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(row_typid, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_array(rows, n, row_typid, typlen,
										   typbyval, typalign));
}

/*
 * The entries [start, start + n) of the batch as the upserts' arguments,
 * but for the converted values (convert_values).  On connection_logs every
 * entry is a row of upsert_plan, its extra in the column extra (before
 * 1.3, which has none, an entry with extra fails; connlog_enqueue had no
 * extra then).  On connlog.target_table, an entry whose extra names
 * columns goes to the group of its set of columns.
 */
static void
build_upsert_args(UpsertArgs *a)
{
	TupleDesc	desc = lookup_rowtype_tupdesc(row_typid, -1);
	bool		app_table = plan_table[0] != '\0';
	UpsertGroup *plain = NULL;
	ListCell   *lc;

	a->groups = NIL;
	foreach(lc, extra_plans)
		((ExtraPlan *) lfirst(lc))->in_use = false;
	for (int i = 0; i < a->n; i++)
	{
		const ClEntry *e = &a->batch->entries[a->start + i];
		ClEvent		ev;
		UpsertGroup *g;

		if (a->skip != NULL && a->skip[i])
			continue;
		cl_batch_entry_event(a->batch, e, &ev);
		if (ev.extra_len > 0 && app_table)
			g = extra_group(a, &ev);
		else
		{
			if (ev.extra_len > 0 && row_ncols < UPSERT_NCOLS)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("connection_logs has no column extra"),
						 errdetail("The event carries extra, which connection_logs keeps only from version 1.3 of the extension on.")));
			if (plain == NULL)
			{
				plain = palloc0(sizeof(UpsertGroup));
				a->groups = lcons(plain, a->groups);
			}
			g = plain;
		}
		g->entries = lappend_int(g->entries, a->start + i);
	}
	foreach(lc, a->groups)
		build_group_args(a, lfirst(lc), desc, !app_table);
	ReleaseTupleDesc(desc);
}

/*
 * connlog.target_table: run a statement on the table as its owner, in a
 * security-restricted operation, the way VACUUM and REFRESH MATERIALIZED
 * VIEW run a table's index expressions (see the file header); settings the
 * table's functions change are undone with the nesting level.
 */
typedef struct AsOwner
{
	Oid			userid;
	int			sec_context;
	int			nestlevel;		/* -1: nothing was switched */
} AsOwner;

static void
begin_as_owner(AsOwner *save)
{
	GetUserIdAndSecContext(&save->userid, &save->sec_context);
	save->nestlevel = -1;
	if (!OidIsValid(rows_owner))
		return;
	SetUserIdAndSecContext(rows_owner,
						   save->sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	save->nestlevel = NewGUCNestLevel();
}

static void
end_as_owner(const AsOwner *save)
{
	if (save->nestlevel < 0)
		return;
	AtEOXact_GUC(false, save->nestlevel);
	SetUserIdAndSecContext(save->userid, save->sec_context);
}

/*
 * Run one upsert of n rows (args, prepared as plan), adding to *stored
 * what it stored and to *expected what it should have.
 */
static void
run_upsert(SPIPlanPtr plan, Datum *args, int n, uint64 *stored,
		   uint64 *expected)
{
	int			rc;

	rc = SPI_execute_plan(plan, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "connlog upsert failed: %s", SPI_result_code_string(rc));
	*stored += SPI_processed;
	*expected += n;
}

/* a web event of the batch, by id, for skip_written_web() */
typedef struct WebRef
{
	pg_uuid_t	id;
	int			i;				/* its index in the range written */
} WebRef;

static int
webref_cmp(const void *a, const void *b)
{
	return memcmp(((const WebRef *) a)->id.data, ((const WebRef *) b)->id.data,
				  UUID_LEN);
}

/*
 * Events written again (a->batch->rewrite): set a->skip for the web events
 * of the range whose row the table has already (see replay_find_sql).
 * Runs as the table's owner, like the upsert.
 */
static void
skip_written_web(UpsertArgs *a)
{
	WebRef	   *refs = palloc(sizeof(WebRef) * a->n);
	Datum	   *ids = palloc(sizeof(Datum) * a->n);
	Datum	   *workspaces = palloc(sizeof(Datum) * a->n);
	Datum		values[2];
	int			nweb = 0;
	int			rc;

	a->skip = palloc0(sizeof(bool) * a->n);
	for (int i = 0; i < a->n; i++)
	{
		const ClEntry *e = &a->batch->entries[a->start + i];
		ClEvent		ev;

		if (e->flags & CL_HAS_CONNECTION_ID)
			continue;
		cl_batch_entry_event(a->batch, e, &ev);
		memcpy(refs[nweb].id.data, ev.id, UUID_LEN);
		refs[nweb].i = i;
		ids[nweb] = uuid_datum(ev.id);
		workspaces[nweb] = uuid_datum(ev.workspace_id);
		nweb++;
	}
	if (nweb == 0)
		return;
	values[0] = PointerGetDatum(construct_array(ids, nweb, UUIDOID, UUID_LEN,
												false, TYPALIGN_CHAR));
	values[1] = PointerGetDatum(construct_array(workspaces, nweb, UUIDOID,
												UUID_LEN, false,
												TYPALIGN_CHAR));
	rc = SPI_execute_plan(replay_find_plan, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "connlog lookup of written rows failed: %s",
			 SPI_result_code_string(rc));
	qsort(refs, nweb, sizeof(WebRef), webref_cmp);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull[3];
		pg_uuid_t  *id;
		TimestampTz time;
		pg_uuid_t  *ws;
		WebRef		key;
		int			lo = 0;
		int			hi = nweb;

		id = DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull[0]));
		time = DatumGetTimestampTz(SPI_getbinval(tup, desc, 2, &isnull[1]));
		ws = DatumGetUUIDP(SPI_getbinval(tup, desc, 3, &isnull[2]));
		if (isnull[0] || isnull[1] || isnull[2])
			continue;
		/* the first of refs with this id, then each with it */
		memcpy(key.id.data, id->data, UUID_LEN);
		while (lo < hi)
		{
			int			mid = (lo + hi) / 2;

			if (webref_cmp(&refs[mid], &key) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < nweb && webref_cmp(&refs[lo], &key) == 0; lo++)
		{
			const ClEntry *e = &a->batch->entries[a->start + refs[lo].i];
			ClEvent		ev;

			cl_batch_entry_event(a->batch, e, &ev);
			if (e->connect_time == time &&
				memcmp(ev.workspace_id, ws->data, UUID_LEN) == 0)
				a->skip[refs[lo].i] = true;
		}
	}
}

static bool
upsert_fn(void *arg)
{
	UpsertArgs *a = arg;
	MemoryContext old;
	AsOwner		owner;
	uint64		stored = 0;
	uint64		expected = 0;
	ListCell   *lc;

	/*
	 * The arrays outlive SPI's memory: they are freed with write_cxt.
	 * Building them may prepare the statement of a new set of extra's
	 * columns, and the input functions run the table owner's code (a domain's
	 * CHECK): either may invalidate the statements, which are then prepared
	 * afresh, maybe with other columns converted, and the arguments built
	 * again for them.
	 */
	for (int attempt = 0;; attempt++)
	{
		if (!use_plans(USES_LOGS | USES_PROGRESS))
			return false;
		/* should the table's code end the worker: see guard.c */
		connlog_guard_rows_begin(a->batch, a->start, a->n);
		old = MemoryContextSwitchTo(write_cxt);
		begin_as_owner(&owner);
		a->skip = NULL;
		if (a->batch->rewrite)
			skip_written_web(a);
		end_as_owner(&owner);
		build_upsert_args(a);
		begin_as_owner(&owner);
		convert_values(a);
		end_as_owner(&owner);
		MemoryContextSwitchTo(old);
		if (plans_current(USES_LOGS | USES_PROGRESS))
			break;
		if (attempt == 2)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("connlog's tables kept changing while its statements were prepared")));
	}
	begin_as_owner(&owner);
	foreach(lc, a->groups)
	{
		UpsertGroup *g = lfirst(lc);

		run_upsert(g->extra == NULL ? upsert_plan : g->extra->plan, g->args,
				   list_length(g->entries), &stored, &expected);
	}
	end_as_owner(&owner);

	/*
	 * Every row the statement was given must have been inserted or updated: a
	 * BEFORE trigger that returns NULL stores nothing, without an error. Such
	 * rows are not written, so the statement is not committed as if they
	 * were: it fails, and the worker's split finds the rows the table takes
	 * nothing for, which go to connection_logs_rejected (flush.c).
	 */
	if (stored < expected)
		ereport(ERROR,
				(errcode(ERRCODE_TRIGGERED_ACTION_EXCEPTION),
				 errmsg("table %s stored nothing for %llu of the %llu rows connlog wrote",
						rows_table, (unsigned long long) (expected - stored),
						(unsigned long long) expected),
				 errdetail("A trigger of the table returned NULL for them, so they were neither inserted nor updated.")));
	store_progress(a->progress);
	return true;
}

/*
 * An upsert failed with SQLSTATE 42501.  connlog.role lacks a privilege
 * only if check_privileges() says so (connlog_check_target() prepares the
 * statements afresh, which checks them): otherwise it was the rows' error,
 * raised by a row-level security policy (FORCE ROW LEVEL SECURITY makes
 * the table's policies apply to its owner, as whom the upsert runs on
 * connlog.target_table) or by a trigger, and is a failure like any other
 * (CL_WRITE_FAILED, *error kept), whose rows the worker may reject.  A
 * missing privilege is CL_WRITE_DENIED, with *error naming it.
 */
static ConnlogWriteStatus
recheck_denied(char **error)
{
	char	   *check_error;

	switch (connlog_check_target(&check_error))
	{
		case CL_WRITE_OK:
			return CL_WRITE_FAILED;
		case CL_WRITE_DENIED:
			*error = check_error;
			return CL_WRITE_DENIED;
		case CL_WRITE_MISSING:
			return CL_WRITE_MISSING;
		default:
			/* whatever it is, the next statement meets it again */
			return CL_WRITE_FAILED;
	}
}

/*
 * Upsert entries [start, start + n) of b.  On failure *error says why.
 */
ConnlogWriteStatus
connlog_write_upsert(const ClBatch *b, int start, int n,
					 const ConnlogProgress *progress, char **error)
{
	UpsertArgs	a;
	ConnlogWriteStatus status;
	char		activity[64];

	if (write_cxt == NULL)
		write_cxt = AllocSetContextCreate(TopMemoryContext, "connlog write",
										  ALLOCSET_DEFAULT_SIZES);
	a.batch = b;
	a.start = start;
	a.n = n;
	a.progress = progress;
	snprintf(activity, sizeof(activity), "connlog: writing %d rows", n);
	status = run_statement(upsert_fn, &a, activity, SHOWS_WRITING, error);
	MemoryContextReset(write_cxt);
	if (status == CL_WRITE_DENIED)
		status = recheck_denied(error);
	return status;
}

/* ---------------------------------------------------------------------
 * One event as JSON: the log_events line and connection_logs_rejected
 * ---------------------------------------------------------------------
 */

static void
json_key(StringInfo buf, const char *key)
{
	if (buf->len > 1)
		appendStringInfoChar(buf, ',');
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
}

static void
json_text(StringInfo buf, const char *key, const ClText *t)
{
	json_key(buf, key);
	escape_json(buf, pnstrdup(t->data, t->len));
}

static void
json_uuid(StringInfo buf, const char *key, const uint8 *bytes)
{
	json_key(buf, key);
	appendStringInfo(buf, "\"%s\"",
					 DatumGetCString(DirectFunctionCall1(uuid_out,
														 uuid_datum(bytes))));
}

static void
json_time(StringInfo buf, const char *key, int64 t)
{
	char		out[MAXDATELEN + 1];

	json_key(buf, key);
	appendStringInfo(buf, "\"%s\"",
					 JsonEncodeDateTime(out, TimestampTzGetDatum(t),
										TIMESTAMPTZOID, NULL));
}

/*
 * ev's extra as a JSON object: each value as the JSON it was given as
 * (batch.h, CL_EXTRA_*).  Also connection_logs.extra's value.
 */
static void
append_extra_json(StringInfo buf, const ClEvent *ev)
{
	const char *pos = ev->extra;
	ClExtraItem it;
	bool		first = true;

	appendStringInfoChar(buf, '{');
	while (cl_extra_next(&pos, ev->extra + ev->extra_len, &it))
	{
		if (!first)
			appendStringInfoChar(buf, ',');
		first = false;
		escape_json(buf, pnstrdup(it.key, it.key_len));
		appendStringInfoChar(buf, ':');
		if (it.kind == CL_EXTRA_STRING)
			escape_json(buf, pnstrdup(it.value, it.value_len));
		else
			appendBinaryStringInfo(buf, it.value, it.value_len);
	}
	appendStringInfoChar(buf, '}');
}

/*
 * The event's fields under the names of connlog_enqueue()'s arguments, so
 * a rejected event can be replayed by name; NULL fields are left out.
 */
static char *
event_json(const ClEvent *ev, const ClEntry *e)
{
	StringInfoData buf;
	ClText		type;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	json_uuid(&buf, "id", ev->id);
	json_time(&buf, "event_time", ev->event_time);
	json_uuid(&buf, "organization_id", ev->organization_id);
	json_uuid(&buf, "workspace_owner_id", ev->workspace_owner_id);
	json_uuid(&buf, "workspace_id", ev->workspace_id);
	json_text(&buf, "workspace_name", &ev->workspace_name);
	json_text(&buf, "agent_name", &ev->agent_name);
	type = cl_event_type(ev);
	json_text(&buf, "type", &type);
	json_key(&buf, "status");
	escape_json(&buf, connlog_status_labels[ev->status]);
	if (ev->flags & CL_HAS_CONNECTION_ID)
		json_uuid(&buf, "connection_id", ev->connection_id);
	if (ev->flags & CL_HAS_IP)
	{
		json_key(&buf, "ip");
		escape_json(&buf, DatumGetCString(DirectFunctionCall1(inet_out,
														   inet_datum(ev))));
	}
	if (ev->flags & CL_HAS_CODE)
	{
		json_key(&buf, "code");
		appendStringInfo(&buf, "%d", ev->code);
	}
	if (ev->flags & CL_HAS_USER_AGENT)
		json_text(&buf, "user_agent", &ev->user_agent);
	if (ev->flags & CL_HAS_USER_ID)
		json_uuid(&buf, "user_id", ev->user_id);
	if (ev->flags & CL_HAS_SLUG_OR_PORT)
		json_text(&buf, "slug_or_port", &ev->slug_or_port);
	if (ev->flags & CL_HAS_REASON)
		json_text(&buf, "disconnect_reason", &ev->disconnect_reason);
	if (ev->extra_len > 0)
	{
		json_key(&buf, "extra");
		append_extra_json(&buf, ev);
	}
	if (e != NULL)
	{
		/* a merged row also carries its span and how many events it holds */
		json_time(&buf, "connect_time", e->connect_time);
		if (e->disconnect_time != CL_NO_TIME)
			json_time(&buf, "disconnect_time", e->disconnect_time);
		json_key(&buf, "merged_events");
		appendStringInfo(&buf, "%u", e->nevents);
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * connlog.log_events: one structured line per event, like coder's slog.
 * Building the line leaves pieces behind (each field's text, the datums
 * they are made from), and the worker logs events by the batch, so each
 * line is built in a context of its own, emptied once it is logged.
 */
void
connlog_log_event(const ClEvent *ev)
{
	MemoryContext old;

	if (log_events_cxt == NULL)
		log_events_cxt = AllocSetContextCreate(TopMemoryContext,
											   "connlog log_events",
											   ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(log_events_cxt);
	ereport(LOG,
			(errmsg("connection_log %s", event_json(ev, NULL)),
			 errhidestmt(true)));
	MemoryContextSwitchTo(old);
	MemoryContextReset(log_events_cxt);
}

typedef struct RejectArgs
{
	const ClBatch *batch;
	int			i;
	const char *reason;
	const ConnlogProgress *progress;
} RejectArgs;

static bool
reject_fn(void *arg)
{
	RejectArgs *a = arg;
	const ClEntry *e = &a->batch->entries[a->i];
	ClEvent		ev;
	Datum		values[2];
	int			rc;

	if (!use_plans(USES_REJECTED | USES_PROGRESS))
		return false;
	cl_batch_entry_event(a->batch, e, &ev);
	values[0] = CStringGetTextDatum(a->reason);
	values[1] = CStringGetTextDatum(event_json(&ev, e));
	rc = SPI_execute_plan(reject_plan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "connlog insert into connection_logs_rejected failed: %s",
			 SPI_result_code_string(rc));
	store_progress(a->progress);
	return true;
}

/* Store entry i of b in connection_logs_rejected with the reason it failed */
ConnlogWriteStatus
connlog_write_rejected(const ClBatch *b, int i, const char *reason,
					   const ConnlogProgress *progress, char **error)
{
	RejectArgs	a = {b, i, reason, progress};

	return run_statement(reject_fn, &a, "connlog: storing a rejected event",
						 SHOWS_WRITING, error);
}

typedef struct PurgeArgs
{
	TimestampTz cutoff;
	int			limit;
	uint64		deleted;
} PurgeArgs;

static bool
purge_fn(void *arg)
{
	PurgeArgs  *a = arg;
	Datum		values[2];
	AsOwner		owner;
	int			rc;

	if (!use_plans(USES_LOGS))
		return false;

	/*
	 * The owner deletes, as it writes; the worker's role must have been
	 * granted DELETE all the same, as on connection_logs, so that retention
	 * deletes only where an administrator allowed it.
	 */
	if (OidIsValid(rows_owner) &&
		pg_class_aclcheck(member_relids[MEMBER_LOGS], GetUserId(),
						  ACL_DELETE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" lacks DELETE on table %s",
						GetUserNameFromId(GetUserId(), false), rows_table)));
	values[0] = TimestampTzGetDatum(a->cutoff);
	values[1] = Int32GetDatum(a->limit);
	connlog_guard_purge_begin();
	begin_as_owner(&owner);
	rc = SPI_execute_plan(purge_plan, values, NULL, false, 0);
	end_as_owner(&owner);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "connlog purge failed: %s", SPI_result_code_string(rc));
	a->deleted = SPI_processed;
	return true;
}

/*
 * connlog.retention: delete up to limit rows of connection_logs whose
 * connect_time is before cutoff, in a transaction of its own.
 */
ConnlogWriteStatus
connlog_write_purge(TimestampTz cutoff, int limit, uint64 *deleted,
					char **error)
{
	PurgeArgs	a = {cutoff, limit, 0};
	ConnlogWriteStatus status;

	status = run_statement(purge_fn, &a, "connlog: deleting rows past connlog.retention",
						   SHOWS_PURGING, error);
	*deleted = a.deleted;
	return status;
}

/* ---------------------------------------------------------------------
 * connlog.durability's progress (see wal.c)
 * ---------------------------------------------------------------------
 */

typedef struct ProgressArgs
{
	ConnlogProgress progress;
} ProgressArgs;

static bool
progress_read_fn(void *arg)
{
	ProgressArgs *a = arg;
	int			rc;

	if (!use_plans(USES_PROGRESS))
		return false;
	memset(&a->progress, 0, sizeof(a->progress));
	if (progress_read_plan == NULL)
		return true;
	rc = SPI_execute_plan(progress_read_plan, NULL, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "connlog progress read failed: %s",
			 SPI_result_code_string(rc));
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull[4];
		Datum		d[4];

		for (int i = 0; i < 4; i++)
			d[i] = SPI_getbinval(tup, desc, i + 1, &isnull[i]);
		if (!isnull[0] && !isnull[1] && !isnull[2])
		{
			a->progress.epoch = (uint64) DatumGetInt64(d[0]);
			a->progress.seq = (uint64) DatumGetInt64(d[1]);
			a->progress.lsn = DatumGetLSN(d[2]);
			/* a negative count is not one connlog stored */
			if (!isnull[3] && DatumGetInt64(d[3]) >= 0)
			{
				a->progress.at_exit = true;
				a->progress.pending = (uint64) DatumGetInt64(d[3]);
			}
		}
	}
	return true;
}

/* The progress the last committed write stored; lsn 0/0 if none */
ConnlogWriteStatus
connlog_read_progress(ConnlogProgress *done, char **error)
{
	ProgressArgs a;
	ConnlogWriteStatus st;

	memset(&a, 0, sizeof(a));
	st = run_statement(progress_read_fn, &a,
					   "connlog: reading connlog_wal_progress",
					   SHOWS_NOTHING, error);
	*done = a.progress;
	return st;
}

static bool
progress_write_fn(void *arg)
{
	ProgressArgs *a = arg;

	if (!use_plans(USES_PROGRESS))
		return false;
	store_progress(&a->progress);
	return true;
}

/* Store the progress in a transaction of its own */
ConnlogWriteStatus
connlog_write_progress(const ConnlogProgress *done, char **error)
{
	ProgressArgs a = {*done};

	return run_statement(progress_write_fn, &a,
						 "connlog: updating connlog_wal_progress",
						 SHOWS_NOTHING, error);
}
