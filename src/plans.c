/*-------------------------------------------------------------------------
 *
 * plans.c
 *		The statements the connlog worker runs: their texts, prepared once
 *		for the target and kept, checked before each use, forgotten.
 *
 * Every statement has one entry in plans[] (ConnlogPlan), prepared for the
 * target connlog_target_find() checked (target.c), with every name
 * schema-qualified, every operator and function qualified with
 * pg_catalog, and every value a parameter; SPI_keepplan() keeps them
 * across transactions.  connlog.target_table's rows that carry extra have
 * one more upsert per set of the table's columns they name (ExtraPlan).
 *
 * The statements are prepared afresh after any failure but the rows' own
 * (statements.c), when the extension, its version or connlog.target_table
 * changes, and whenever one has been invalidated: before each statement
 * the members it uses are locked, and if a plan has been invalidated since
 * (a member altered, dropped, its schema renamed) all are prepared again,
 * with the target's checks, instead of letting the plan cache re-analyse
 * them by name (connlog_plans_use).
 *
 * See doc/internals.md, "Statements: the runner, the target, the plans".
 *
 * IDENTIFICATION
 *	  src/plans.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "citus.h"
#include "connlog.h"
#include "plans.h"
#include "target.h"

static SPIPlanPtr plans[NUM_PLANS];

/* plans[] are prepared for connlog_target: all of them, or forgotten */
static bool plans_built = false;

/*
 * connlog.target_table: the upserts of rows with application columns, one
 * per set of columns (ExtraPlan), in TopMemoryContext.
 */
static List *extra_plans = NIL;

/*
 * The upsert, every form of it: compose_upsert() fills it in.  %1$s is the
 * table, quoted and qualified; %2$s the columns written besides connlog's
 * sixteen (connection_logs.extra, or an application's columns that extra
 * names); %3$s the values of all of them; %4$s the rows they come from, u:
 * $1, a connlog_batch_row[], alone or zipped by ROWS FROM with the arrays
 * of the converted columns and of the application's columns; %5$s the
 * updates of the columns of %2$s.  Merging in the batch guarantees that no
 * conflict key appears twice in one statement, which ON CONFLICT DO UPDATE
 * would refuse.
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
 * Events read back from WAL (replay.c), or taken again from the ring after a
 * worker exited in the middle of a batch, may have been written already:
 * a web event (no connection_id) then has its row, under its id.  Skip it
 * rather than fail on the primary key, but only when the row is that
 * event (same id, time and workspace): a different event that reuses the
 * id still fails and goes to connection_logs_rejected, as it would have
 * the first time.  Connection rows are idempotent under the upsert above.
 * The row is looked for in the table itself (ONLY), where the upsert
 * inserts it, not in an inheritance child.
 *
 * The rows the batch's web events could be are read first, by their ids and
 * workspaces ($1, $2: uuid[]), and the events whose row is there are left out
 * of the upsert that follows in the same transaction (see skip_written_web in
 * statements.c).  Two statements, not one with a subquery correlated with the
 * array: Citus (see citus.c) refuses such a subquery, a join with the array
 * would read the whole distributed table, and any part of a statement Citus
 * runs as a query of its own (a CTE, a subquery) it sends as text with the
 * array's type named, which the owner of the table, as whom it runs, need not
 * be allowed to use (the type is in the extension's schema).  This one is a
 * query on the table alone, with arrays of uuids, which Citus sends to the
 * shards.
 */
static const char *const replay_find_sql =
"SELECT x.id, x.connect_time, x.workspace_id FROM ONLY %1$s x "
"WHERE x.id OPERATOR(pg_catalog.=) ANY ($1) "
"AND x.workspace_id OPERATOR(pg_catalog.=) ANY ($2)";

static const char *const reject_sql =
"INSERT INTO %1$s (rejected_at, error, event) "
"VALUES (pg_catalog.now(), $1, $2::pg_catalog.jsonb)";

static void forget_extra_plans(void);
static bool extra_plans_valid(void);

/* Forget the statements, and the target they were prepared for. */
void
connlog_plans_forget(void)
{
	for (int i = 0; i < NUM_PLANS; i++)
	{
		if (plans[i] != NULL)
			SPI_freeplan(plans[i]);
		plans[i] = NULL;
	}
	plans_built = false;
	forget_extra_plans();
	connlog_target_forget();
}

/* Statement p as prepared; NULL if this version of the extension has none */
SPIPlanPtr
connlog_plan(ConnlogPlan p)
{
	return plans[p];
}

/*
 * Prepare and keep one statement, whose tables connlog_target_find() has
 * just checked by name; each relation it references is checked again
 * (connlog_target_check_relation), since a name may have come to mean
 * something else while the statement was parsed.
 */
static SPIPlanPtr
keep_plan(const char *sql, int nargs, Oid *argtypes)
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
			connlog_target_check_relation(lfirst_oid(rc));
	}
	SPI_keepplan(plan);
	return plan;
}

/*
 * The upsert into the target's table: the one place its text is made (see
 * upsert_sql).  It writes connlog's sixteen columns, the converted ones
 * (ConvertedColumn, target.c) from arrays of their own, $2 on; then
 * connection_logs.extra if own_extra; then the application's columns
 * app_cols (quoted), napp of them, from the arrays after those.  ROWS FROM
 * names each column it makes: the row type's, then converted_1, ..., then
 * x1, ....
 */
static char *
compose_upsert(bool own_extra, int napp, char *const *app_cols)
{
	const ConnlogTarget *t = connlog_target;
	TupleDesc	desc = lookup_rowtype_tupdesc(t->row_typid, -1);
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
		if (t->col_converted[c])
		{
			appendStringInfo(&values, "%su.converted_%d",
							 c > 0 ? ", " : "", ++k);
			appendStringInfo(&fns, ", pg_catalog.unnest($%d)", param++);
		}
		else
			appendStringInfo(&values, "%su.%s", c > 0 ? ", " : "", col);
	}
	ReleaseTupleDesc(desc);
	for (k = 1; k <= t->nconverted; k++)
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
	return psprintf(upsert_sql, t->rows_table, cols.data, values.data, from,
					sets.data);
}

/*
 * Prepare and keep the upsert (compose_upsert).  Its parameters: the rows,
 * one array per converted column, then one per application column, of the
 * types app_types.
 */
static SPIPlanPtr
keep_upsert(bool own_extra, int napp, char *const *app_cols,
			const Oid *app_types)
{
	const ConnlogTarget *t = connlog_target;
	int			nargs = 1 + t->nconverted + napp;
	Oid		   *argtypes = palloc(sizeof(Oid) * nargs);

	argtypes[0] = t->row_array_typid;
	for (int k = 0; k < t->nconverted; k++)
		argtypes[1 + k] = t->converted[k].conv.array_typid;
	for (int c = 0; c < napp; c++)
		argtypes[1 + t->nconverted + c] = app_types[c];
	return keep_plan(compose_upsert(own_extra, napp, app_cols), nargs,
					 argtypes);
}

/*
 * Check the members of extension extoid, in schema nspoid, at version, and
 * the table the rows go to (target.c), and prepare the statements for
 * them.  Runs inside a transaction with SPI connected.
 */
static void
build_plans(Oid extoid, Oid nspoid, const char *version)
{
	const ConnlogTarget *t = connlog_target;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Oid			purge_types[2] = {TIMESTAMPTZOID, INT4OID};
	Oid			uuid_array_types[2] = {UUIDARRAYOID, UUIDARRAYOID};
	Oid			progress_types[4] = {INT8OID, INT8OID, PG_LSNOID, INT8OID};
	const char *schema;
	const char *rejected;
	char	   *sql;
	bool		has_pending;
	bool		citus;

	connlog_target_find(extoid, nspoid, version);
	schema = quote_identifier(t->nspname);
	plans[PLAN_UPSERT] = keep_upsert(t->own_extra, 0, NULL, NULL);
	sql = psprintf(replay_find_sql, t->rows_table);
	plans[PLAN_REPLAY_FIND] = keep_plan(sql, 2, uuid_array_types);
	if (OidIsValid(t->member_relids[MEMBER_PROGRESS]))
	{
		/* pending_at_exit is new in 1.2; 1.1 stores no count (NULL) */
		has_pending = strcmp(version, "1.1") != 0;
		sql = psprintf("SELECT epoch, done_seq, done_lsn, %s FROM %s.connlog_wal_progress",
				   has_pending ? "pending_at_exit" : "NULL::pg_catalog.int8",
					   schema);
		plans[PLAN_PROGRESS_READ] = keep_plan(sql, 0, NULL);
		sql = psprintf("UPDATE %s.connlog_wal_progress SET epoch = $1, done_seq = $2, done_lsn = $3%s",
					   schema, has_pending ? ", pending_at_exit = $4" : "");
		plans[PLAN_PROGRESS_WRITE] = keep_plan(sql, has_pending ? 4 : 3,
											   progress_types);
	}
	rejected = quote_qualified_identifier(t->nspname,
									  connlog_member_names[MEMBER_REJECTED]);
	plans[PLAN_REJECT] = keep_plan(psprintf(reject_sql, rejected), 2,
								   argtypes);
	citus = connlog_citus_table(t->member_relids[MEMBER_LOGS]);
	sql = psprintf(citus ? purge_citus_sql : purge_sql, t->rows_table);
	plans[PLAN_PURGE] = keep_plan(sql, 2, purge_types);
	plans_built = true;
	connlog_target_publish_columns();
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
		connlog_plans_forget();
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
 * Find the extension and prepare the statements for its schema, unless
 * they are prepared for this extension and version already.  Runs inside
 * a transaction with SPI connected.  Returns false if the extension is not
 * installed, or if it is broken and hold_if_broken is set.
 */
bool
connlog_plans_prepare(bool hold_if_broken)
{
	const ConnlogTarget *t = connlog_target;
	Oid			extoid;
	Oid			nspoid;
	char	   *version;

	if (!connlog_target_find_extension(&extoid, &nspoid, &version))
	{
		connlog_plans_forget();
		return false;
	}
	connlog_target_warn_setting();
	if (plans_built && extoid == t->extoid &&
		strcmp(version, t->version) == 0 &&
		strcmp(connlog_effective_table(), t->setting) == 0)
		return true;

	connlog_plans_forget();
	if (hold_if_broken)
		return build_plans_or_hold(extoid, nspoid, version);
	build_plans(extoid, nspoid, version);
	return true;
}

/* Is every kept statement's query tree still valid? */
static bool
plans_valid(void)
{
	for (int i = 0; i < NUM_PLANS; i++)
		if (plans[i] != NULL && !SPI_plan_is_valid(plans[i]))
			return false;
	return extra_plans_valid();
}

/*
 * May the statements run on the members in uses (USES_x) as they are
 * prepared?  Locks those members, then checks that no plan has been
 * invalidated, which the plan cache would re-analyse by name.
 */
bool
connlog_plans_current(int uses)
{
	connlog_target_lock(uses);
	return plans_valid();
}

/*
 * Make the statements ready to run on the members in uses: prepared for
 * the installed extension and version, and current.  Call it right before
 * running them; whatever reads the catalogs in between may take in
 * invalidations, so check connlog_plans_current() again after it.
 * Returns false if the extension is not installed or broken.
 */
bool
connlog_plans_use(int uses)
{
	for (int attempt = 0;; attempt++)
	{
		if (!connlog_plans_prepare(true))
			return false;
		if (connlog_plans_current(uses))
			return true;
		if (attempt == 2)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("connlog's tables kept changing while its statements were prepared")));
		connlog_plans_forget();
	}
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
 * transaction, and entries without extra by PLAN_UPSERT as always.  Each
 * set's statement is prepared once and kept (ExtraPlan), up to
 * MAX_EXTRA_PLANS sets; past that, the sets the batch being written does
 * not use are forgotten.  Every set's statement is the same upsert
 * (compose_upsert), with the columns of the set added.
 *
 * A value reaches its column through the column type's input function,
 * like a converted column's text (convert.c).  On conflict an existing
 * non-NULL value is kept, as coder does for code and disconnect_reason.
 * A key that names no column connlog can write fails the statement with
 * 22023: the worker's split then isolates the event with the reason.
 * ---------------------------------------------------------------------
 */
#define MAX_EXTRA_PLANS		16

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

/* A batch is about to be written: no set is in use by it yet. */
void
connlog_extra_plans_unmark(void)
{
	ListCell   *lc;

	foreach(lc, extra_plans)
		((ExtraPlan *) lfirst(lc))->in_use = false;
}

/*
 * The kept statement for the columns sig names, prepared now if need be,
 * marked as used by the batch.  A key that names no column connlog can
 * write is the event's error.
 */
ExtraPlan *
connlog_extra_plan(const char *sig, int sig_len)
{
	const ConnlogTarget *t = connlog_target;
	Oid			relid = t->member_relids[MEMBER_LOGS];
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
			connlog_target_extra_column((Form_pg_attribute) GETSTRUCT(tup));
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
					  t->rows_table, name),
					 errdetail("The event's extra names it.")));
		array_types[c] = get_array_type(typids[c]);
		if (!OidIsValid(array_types[c]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column \"%s\" of table %s is of type %s, which has no array type",
							name, t->rows_table, format_type_be(typids[c])),
					 errdetail("connlog passes the values of extra as an array of the column's type.")));
		cols[c] = (char *) quote_identifier(name);
	}
	plan = keep_upsert(false, ncols, cols, array_types);

	cxt = AllocSetContextCreate(TopMemoryContext, "connlog extra statement",
								ALLOCSET_SMALL_SIZES);
	p = MemoryContextAllocZero(cxt, sizeof(ExtraPlan));
	p->cxt = cxt;
	p->sig = memcpy(MemoryContextAlloc(cxt, sig_len), sig, sig_len);
	p->sig_len = sig_len;
	p->ncols = ncols;
	p->conv = MemoryContextAllocZero(cxt, sizeof(InputConversion) * ncols);
	for (int c = 0; c < ncols; c++)
		(void) connlog_input_conversion_init(&p->conv[c], typids[c],
											 typmods[c], cxt);
	p->in_use = true;
	p->plan = plan;
	old = MemoryContextSwitchTo(TopMemoryContext);
	extra_plans = lappend(extra_plans, p);
	MemoryContextSwitchTo(old);
	return p;
}
