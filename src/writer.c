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
 * The statements are built once per extension OID, from the schema found
 * in pg_extension, with every name schema-qualified and every value a
 * parameter; SPI_keepplan() keeps them across transactions.  After any
 * failure the plans are dropped and prepared afresh, so a table that was
 * altered or recreated is picked up.
 *
 * Before preparing, the statements' privileges are checked for the role
 * the worker runs as (connlog.role), so a missing GRANT is reported by name
 * instead of surfacing as failed rows; an error with SQLSTATE 42501 from
 * any statement is reported as CL_WRITE_DENIED, which the worker treats
 * like a missing extension: it keeps the events and looks again.
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
 * (72000).  The worker retries those and never rejects a row for one.
 * Anything else (a missing table or column, a trigger's own error) is
 * CL_WRITE_FAILED: retried max_retries times, then split.
 *
 * A batch goes to the upsert as one array of the extension's composite
 * type connlog_batch_row, built here tuple by tuple.  That costs the
 * server one tuplestore row per event, where sixteen column arrays under
 * ROWS FROM cost sixteen (about 1 us per event less, a tenth of the
 * worker's CPU per row); the table's own columns still take the values
 * through ordinary INSERT assignment, so a table with added columns
 * works as before.  The log_events line is also built
 * here, since it shares the per-field conversions with the upsert.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/inet.h"
#include "utils/json.h"
#include "utils/pg_lsn.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

#include "compat.h"
#include "connlog.h"
#include "ring.h"

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
	UPSERT_NCOLS
};

/* and their types; InvalidOid stands for the connection_type enum */
static const Oid row_types[UPSERT_NCOLS] = {
	UUIDOID, TIMESTAMPTZOID, UUIDOID, UUIDOID, UUIDOID, TEXTOID, TEXTOID,
	InvalidOid, INETOID, INT4OID, TEXTOID, UUIDOID, TEXTOID, UUIDOID,
	TIMESTAMPTZOID, TEXTOID
};

static SPIPlanPtr upsert_plan = NULL;
static SPIPlanPtr reject_plan = NULL;
static SPIPlanPtr purge_plan = NULL;
static SPIPlanPtr upsert_replay_plan = NULL;
static SPIPlanPtr progress_read_plan = NULL;	/* NULL: no such table (1.0) */
static SPIPlanPtr progress_write_plan = NULL;
static Oid	plan_extoid = InvalidOid;
static Oid	row_typid = InvalidOid; /* connlog_batch_row */
static Oid	row_array_typid = InvalidOid;
static Oid	type_label_oids[CL_NUM_TYPES];	/* InvalidOid: label missing */
static MemoryContext write_cxt = NULL;
static int	statement_timeout_ms = 0;	/* 0: statements are not bounded */

/*
 * The upsert.  %1$s is the quoted schema; $1 is a connlog_batch_row[].
 * Merging in the batch guarantees that no conflict key appears twice in one
 * statement, which ON CONFLICT DO UPDATE would refuse.
 */
static const char *const upsert_sql =
"INSERT INTO %1$s.connection_logs AS c (id, connect_time, organization_id, "
"workspace_owner_id, workspace_id, workspace_name, agent_name, type, ip, "
"code, user_agent, user_id, slug_or_port, connection_id, disconnect_time, "
"disconnect_reason) "
"SELECT u.id, u.connect_time, u.organization_id, u.workspace_owner_id, "
"u.workspace_id, u.workspace_name, u.agent_name, u.type, u.ip, u.code, "
"u.user_agent, u.user_id, u.slug_or_port, u.connection_id, u.disconnect_time, u.disconnect_reason "
"FROM pg_catalog.unnest($1) AS u %2$s"
"ON CONFLICT (connection_id, workspace_id, agent_name) DO UPDATE SET "
"connect_time = LEAST(c.connect_time, excluded.connect_time), "
"disconnect_time = GREATEST(c.disconnect_time, excluded.disconnect_time), "
"code = COALESCE(c.code, excluded.code), "
"disconnect_reason = COALESCE(c.disconnect_reason, excluded.disconnect_reason)";

/*
 * One bounded step of connlog.retention.  The rows come from the
 * connect_time index; SKIP LOCKED passes over rows a session has locked
 * rather than waiting for it, and the step's size bounds how long the
 * worker's event writes wait behind it.
 */
static const char *const purge_sql =
"DELETE FROM %1$s.connection_logs WHERE ctid OPERATOR(pg_catalog.=) "
"ANY (ARRAY(SELECT ctid FROM %1$s.connection_logs "
"WHERE connect_time OPERATOR(pg_catalog.<) $1 LIMIT $2 "
"FOR UPDATE SKIP LOCKED))";

/*
 * Events read back from WAL (wal.c) may have been written before the crash
 * that made the worker read them: a web event (no connection_id) then
 * already has its row, under its id.  Skip it rather than fail on the
 * primary key; connection rows are idempotent under the upsert above.
 */
static const char *const replay_filter =
"WHERE u.connection_id IS NOT NULL OR NOT EXISTS "
"(SELECT 1 FROM %1$s.connection_logs x WHERE x.id OPERATOR(pg_catalog.=) u.id) ";

static const char *const reject_sql =
"INSERT INTO %1$s.connection_logs_rejected (rejected_at, error, event) "
"VALUES (pg_catalog.now(), $1, $2::pg_catalog.jsonb)";

static void
forget_plans(void)
{
	if (upsert_plan != NULL)
		SPI_freeplan(upsert_plan);
	if (reject_plan != NULL)
		SPI_freeplan(reject_plan);
	if (purge_plan != NULL)
		SPI_freeplan(purge_plan);
	if (upsert_replay_plan != NULL)
		SPI_freeplan(upsert_replay_plan);
	if (progress_read_plan != NULL)
		SPI_freeplan(progress_read_plan);
	if (progress_write_plan != NULL)
		SPI_freeplan(progress_write_plan);
	upsert_plan = reject_plan = purge_plan = NULL;
	upsert_replay_plan = progress_read_plan = progress_write_plan = NULL;
	plan_extoid = InvalidOid;
}

/*
 * Look up connlog_batch_row in the extension's schema, check that it has
 * the columns build_upsert_args() fills, and find the OIDs of the
 * connection_type labels.  A label that is missing is left InvalidOid and
 * fails only the events that carry it, as casting the label would.
 */
static void
find_row_type(Oid nspoid, const char *nspname)
{
	TupleDesc	desc;
	Oid			enum_typid = InvalidOid;
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

	desc = lookup_rowtype_tupdesc(row_typid, -1);
	ok = desc->natts == UPSERT_NCOLS;
	for (int c = 0; ok && c < UPSERT_NCOLS; c++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, c);

		if (att->attisdropped)
			ok = false;
		else if (c == COL_TYPE)
			enum_typid = att->atttypid;
		else
			ok = att->atttypid == row_types[c];
	}
	ReleaseTupleDesc(desc);
	if (!ok || get_typtype(enum_typid) != TYPTYPE_ENUM)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("type \"%s.connlog_batch_row\" does not have the columns connlog writes",
						nspname),
				 errhint("Reinstall the extension.")));

	for (int i = 0; i < CL_NUM_TYPES; i++)
		type_label_oids[i] =
			GetSysCacheOid2(ENUMTYPOIDNAME, Anum_pg_enum_oid,
							ObjectIdGetDatum(enum_typid),
							CStringGetDatum(connlog_type_labels[i]));
}

/* Append "PRIVS on table schema.rel" to missing if the role lacks any. */
static void
check_table_privileges(StringInfo missing, Oid roleid, Oid nspoid,
					   const char *nspname, const char *relname,
					   const AclMode *modes, const char *const *names,
					   int nmodes)
{
	Oid			relid = get_relname_relid(relname, nspoid);
	StringInfoData privs;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s.%s\" does not exist", nspname, relname)));
	initStringInfo(&privs);
	for (int i = 0; i < nmodes; i++)
		if (pg_class_aclcheck(relid, roleid, modes[i]) != ACLCHECK_OK)
			appendStringInfo(&privs, "%s%s", privs.len > 0 ? ", " : "",
							 names[i]);
	if (privs.len > 0)
		appendStringInfo(missing, "%s%s on table %s.%s",
						 missing->len > 0 ? " and " : "", privs.data,
						 quote_identifier(nspname), quote_identifier(relname));
	pfree(privs.data);
}

/*
 * The worker's statements need USAGE on the extension's schema, SELECT,
 * INSERT and UPDATE on connection_logs (ON CONFLICT DO UPDATE reads the
 * row it updates), INSERT on connection_logs_rejected, and SELECT and
 * UPDATE on connlog_wal_progress.  Say which are missing, all at once,
 * with SQLSTATE 42501.
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
	check_table_privileges(&missing, roleid, nspoid, nspname,
						   "connection_logs", log_modes, log_names,
						   lengthof(log_modes));
	check_table_privileges(&missing, roleid, nspoid, nspname,
						   "connection_logs_rejected", rej_modes, rej_names,
						   lengthof(rej_modes));
	/* connlog.durability's progress, which version 1.0 does not have */
	if (OidIsValid(get_relname_relid("connlog_wal_progress", nspoid)))
		check_table_privileges(&missing, roleid, nspoid, nspname,
							   "connlog_wal_progress", prog_modes, prog_names,
							   lengthof(prog_modes));
	if (missing.len > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" lacks %s",
						GetUserNameFromId(roleid, false), missing.data)));
}

/*
 * Find the extension and prepare the statements for its schema.  Runs
 * inside a transaction with SPI connected.  Returns false if the extension
 * is not installed.
 */
static bool
prepare_plans(void)
{
	Oid			extoid = get_extension_oid("connlog", true);
	char	   *schema;
	Oid			nspoid;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	bool		isnull;
	Datum		nsp;
	Oid			nspargs[1] = {OIDOID};
	Datum		nspvals[1];

	if (!OidIsValid(extoid))
	{
		forget_plans();
		return false;
	}
	if (extoid == plan_extoid && upsert_plan != NULL)
		return true;

	forget_plans();
	nspvals[0] = ObjectIdGetDatum(extoid);
	if (SPI_execute_with_args("SELECT n.nspname, n.oid FROM pg_catalog.pg_extension e "
							  "JOIN pg_catalog.pg_namespace n "
							  "ON n.oid = e.extnamespace WHERE e.oid = $1",
							  1, nspargs, nspvals, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not find the schema of extension connlog");
	nsp = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
						&isnull);
	schema = pstrdup(quote_identifier(NameStr(*DatumGetName(nsp))));
	nspoid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 2,
											&isnull));
	check_privileges(nspoid, NameStr(*DatumGetName(nsp)));
	find_row_type(nspoid, NameStr(*DatumGetName(nsp)));

	upsert_plan = SPI_prepare(psprintf(upsert_sql, schema, ""), 1,
							  &row_array_typid);
	if (upsert_plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s",
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(upsert_plan);
	upsert_replay_plan = SPI_prepare(psprintf(upsert_sql, schema,
											  psprintf(replay_filter, schema)),
									 1, &row_array_typid);
	if (upsert_replay_plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s",
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(upsert_replay_plan);
	/* connlog.durability's progress; version 1.0 does not have the table */
	if (OidIsValid(get_relname_relid("connlog_wal_progress", nspoid)))
	{
		Oid			progress_types[3] = {INT8OID, INT8OID, PG_LSNOID};

		progress_read_plan = SPI_prepare(psprintf("SELECT epoch, done_seq, done_lsn FROM %s.connlog_wal_progress",
												  schema), 0, NULL);
		if (progress_read_plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(progress_read_plan);
		progress_write_plan = SPI_prepare(psprintf("UPDATE %s.connlog_wal_progress SET epoch = $1, done_seq = $2, done_lsn = $3",
												   schema), 3, progress_types);
		if (progress_write_plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(progress_write_plan);
	}
	reject_plan = SPI_prepare(psprintf(reject_sql, schema), 2, argtypes);
	if (reject_plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s",
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(reject_plan);
	{
		Oid			purge_types[2] = {TIMESTAMPTZOID, INT4OID};

		purge_plan = SPI_prepare(psprintf(purge_sql, schema), 2, purge_types);
		if (purge_plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(purge_plan);
	}
	plan_extoid = extoid;
	return true;
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
 * Run one statement in a transaction of its own.  fn runs with SPI
 * connected and returns false if the extension is missing.  Errors are
 * caught, classified by their SQLSTATE, and returned as "message (SQLSTATE
 * xxxxx)" in *error, allocated in the caller's memory context.
 */
typedef bool (*write_fn) (void *arg);

static ConnlogWriteStatus
run_statement(write_fn fn, void *arg, const char *activity,
			  ConnlogWorkerState state, char **error)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	volatile ConnlogWriteStatus status;

	*error = NULL;
	if (state != CL_STATE_NOT_RUNNING)
		connlog_ring_set_state(state);
	connlog_in_statement = true;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		/*
		 * statement_timeout itself is armed only for client statements
		 * (postgres.c), so arm its timer here.  Its handler sends SIGINT,
		 * which the worker turns into a cancel while a statement runs.
		 */
		if (statement_timeout_ms > 0)
			enable_timeout_after(STATEMENT_TIMEOUT, statement_timeout_ms);
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
		ErrorData  *edata;

		MemoryContextSwitchTo(caller_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		*error = psprintf("%s (SQLSTATE %s)", edata->message,
						  unpack_sql_state(edata->sqlerrcode));
		status = error_status(edata->sqlerrcode);
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
	if (statement_timeout_ms > 0)
		disable_timeout(STATEMENT_TIMEOUT, false);
	/* a cancel that came too late for the statement must not outlive it */
	connlog_in_statement = false;
	QueryCancelPending = false;
	MemoryContextSwitchTo(caller_cxt);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return status;
}

/*
 * Bound every later statement (used for the drain at shutdown); 0 removes
 * the bound.
 */
void
connlog_writer_set_timeout(int timeout_ms)
{
	statement_timeout_ms = Max(timeout_ms, 0);
}

static bool
check_fn(void *arg)
{
	return prepare_plans();
}

/* Is the extension there?  Prepares the statements if it is. */
ConnlogWriteStatus
connlog_check_target(char **error)
{
	return run_statement(check_fn, NULL, "connlog: looking for the extension",
						 CL_STATE_NOT_RUNNING, error);
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

/* The upsert's one argument: the entries as a connlog_batch_row[] */
typedef struct UpsertArgs
{
	const ClBatch *batch;
	int			start;
	int			n;
	const ConnlogProgress *progress;
	Datum		rows;
} UpsertArgs;

/*
 * connlog.durability: store the progress in the transaction that makes it
 * true (see wal.c).  NULL: nothing to store.  The epoch is stored as the
 * bigint with the same bits.
 */
static void
store_progress(const ConnlogProgress *progress)
{
	Datum		values[3];
	int			rc;

	if (progress == NULL || progress_write_plan == NULL)
		return;
	values[0] = Int64GetDatum((int64) progress->epoch);
	values[1] = Int64GetDatum((int64) progress->seq);
	values[2] = LSNGetDatum(progress->lsn);
	rc = SPI_execute_plan(progress_write_plan, values, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "connlog progress update failed: %s",
			 SPI_result_code_string(rc));
}

static void
build_upsert_args(UpsertArgs *a)
{
	TupleDesc	desc = lookup_rowtype_tupdesc(row_typid, -1);
	Datum	   *rows = palloc(sizeof(Datum) * a->n);
	int16		typlen;
	bool		typbyval;
	char		typalign;

	for (int i = 0; i < a->n; i++)
	{
		const ClEntry *e = &a->batch->entries[a->start + i];
		ClEvent		ev;
		Datum		v[UPSERT_NCOLS];
		bool		null[UPSERT_NCOLS];

		cl_batch_entry_event(a->batch, e, &ev);
		if (!OidIsValid(type_label_oids[ev.type]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input value for enum connection_type: \"%s\"",
							connlog_type_labels[ev.type])));
		memset(null, 0, sizeof(null));
		v[COL_ID] = uuid_datum(ev.id);
		v[COL_CONNECT_TIME] = TimestampTzGetDatum(e->connect_time);
		v[COL_ORGANIZATION_ID] = uuid_datum(ev.organization_id);
		v[COL_WORKSPACE_OWNER_ID] = uuid_datum(ev.workspace_owner_id);
		v[COL_WORKSPACE_ID] = uuid_datum(ev.workspace_id);
		v[COL_WORKSPACE_NAME] = text_datum(&ev.workspace_name);
		v[COL_AGENT_NAME] = text_datum(&ev.agent_name);
		v[COL_TYPE] = ObjectIdGetDatum(type_label_oids[ev.type]);
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
		rows[i] = HeapTupleGetDatum(heap_form_tuple(desc, v, null));
	}
	ReleaseTupleDesc(desc);
	get_typlenbyvalalign(row_typid, &typlen, &typbyval, &typalign);
	a->rows = PointerGetDatum(construct_array(rows, a->n, row_typid,
											  typlen, typbyval, typalign));
}

static bool
upsert_fn(void *arg)
{
	UpsertArgs *a = arg;
	MemoryContext old;
	int			rc;

	if (!prepare_plans())
		return false;
	/* the arrays outlive SPI's memory: they are freed with write_cxt */
	old = MemoryContextSwitchTo(write_cxt);
	build_upsert_args(a);
	MemoryContextSwitchTo(old);
	rc = SPI_execute_plan(a->batch->rewrite ? upsert_replay_plan : upsert_plan,
						  &a->rows, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "connlog upsert failed: %s", SPI_result_code_string(rc));
	store_progress(a->progress);
	return true;
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
	status = run_statement(upsert_fn, &a, activity, CL_STATE_WRITING, error);
	MemoryContextReset(write_cxt);
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
 * The event's fields under the names of connlog_enqueue()'s arguments, so
 * a rejected event can be replayed by name; NULL fields are left out.
 */
static char *
event_json(const ClEvent *ev, const ClEntry *e)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	json_uuid(&buf, "id", ev->id);
	json_time(&buf, "event_time", ev->event_time);
	json_uuid(&buf, "organization_id", ev->organization_id);
	json_uuid(&buf, "workspace_owner_id", ev->workspace_owner_id);
	json_uuid(&buf, "workspace_id", ev->workspace_id);
	json_text(&buf, "workspace_name", &ev->workspace_name);
	json_text(&buf, "agent_name", &ev->agent_name);
	json_key(&buf, "type");
	escape_json(&buf, connlog_type_labels[ev->type]);
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

/* connlog.log_events: one structured line per event, like coder's slog */
void
connlog_log_event(const ClEvent *ev)
{
	char	   *json = event_json(ev, NULL);

	ereport(LOG,
			(errmsg("connection_log %s", json),
			 errhidestmt(true)));
	pfree(json);
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

	if (!prepare_plans())
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
						 CL_STATE_WRITING, error);
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
	int			rc;

	if (!prepare_plans())
		return false;
	values[0] = TimestampTzGetDatum(a->cutoff);
	values[1] = Int32GetDatum(a->limit);
	rc = SPI_execute_plan(purge_plan, values, NULL, false, 0);
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
						   CL_STATE_PURGING, error);
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

	if (!prepare_plans())
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
		bool		isnull[3];
		Datum		d[3];

		for (int i = 0; i < 3; i++)
			d[i] = SPI_getbinval(tup, desc, i + 1, &isnull[i]);
		if (!isnull[0] && !isnull[1] && !isnull[2])
		{
			a->progress.epoch = (uint64) DatumGetInt64(d[0]);
			a->progress.seq = (uint64) DatumGetInt64(d[1]);
			a->progress.lsn = DatumGetLSN(d[2]);
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
					   CL_STATE_NOT_RUNNING, error);
	*done = a.progress;
	return st;
}

static bool
progress_write_fn(void *arg)
{
	ProgressArgs *a = arg;

	if (!prepare_plans())
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
						 CL_STATE_NOT_RUNNING, error);
}
