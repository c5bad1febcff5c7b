/*-------------------------------------------------------------------------
 *
 * target.c
 *		What the worker's statements write to: the extension, its member
 *		objects, and the table the rows go to, checked before the
 *		statements are prepared.
 *
 * connlog_target_find() finds the extension (a scan of pg_extension, not a
 * query), its member tables and its row type connlog_batch_row through
 * pg_depend, never merely by name, and the table the rows go to:
 * connection_logs, or the application's table connlog.target_table names,
 * whose columns, unique index and owner it checks.  It checks the
 * privileges of the role the worker runs as, naming every one missing.
 * What it finds is the one ConnlogTarget, which the statements read and
 * only this file changes; it holds until plans.c forgets the statements.
 *
 * It also locks the members a statement uses in every mode the statements
 * take (connlog_target_lock), refuses a prepared statement that names a
 * relation under a member's name that is not the member
 * (connlog_target_check_relation), and tells connlog_enqueue which keys
 * extra may have (connlog_target_publish_columns).
 *
 * See doc/internals.md, "Statements: the runner, the target, the plans",
 * for why each check is there.
 *
 * IDENTIFICATION
 *	  src/target.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_index.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "parser/parse_coerce.h"
#include "parser/parse_relation.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "compat.h"
#include "connlog.h"
#include "once.h"
#include "ring.h"
#include "target.h"

/*
 * connlog_batch_row's columns' types; InvalidOid marks the type column's,
 * which is text from 1.2 on and the enum connection_type before
 */
static const Oid row_types[UPSERT_NCOLS] = {
	UUIDOID, TIMESTAMPTZOID, UUIDOID, UUIDOID, UUIDOID, TEXTOID, TEXTOID,
	InvalidOid, INETOID, INT4OID, TEXTOID, UUIDOID, TEXTOID, UUIDOID,
	TIMESTAMPTZOID, TEXTOID, JSONBOID
};

const char *const connlog_member_names[NUM_MEMBERS] = {
	"connection_logs", "connection_logs_rejected", "connlog_wal_progress"
};

static ConnlogTarget target = {.row_ncols = UPSERT_NCOLS};

const ConnlogTarget *const connlog_target = &target;

/* the settings the last warning about connlog.table was about */
static ConnlogLogOnce table_warned;

/*
 * Read connlog's pg_extension row: its OID, schema and version (palloc'd).
 * A scan of the catalog, not a query, so no operator of anyone's is run.
 * Returns false if the extension is not installed.
 */
bool
connlog_target_find_extension(Oid *extoid, Oid *nspoid, char **version)
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
 * invalidation to take in, between the validity check (plans.c) and the
 * statement.  They conflict with nothing RowExclusiveLock alone does not
 * conflict with.
 */
static void
lock_member(Oid relid)
{
	LockRelationOid(relid, AccessShareLock);
	LockRelationOid(relid, RowShareLock);
	LockRelationOid(relid, RowExclusiveLock);
}

/* Lock the members in uses (USES_x) as the statements lock them. */
void
connlog_target_lock(int uses)
{
	for (int m = 0; m < NUM_MEMBERS; m++)
		if ((uses & (1 << m)) && OidIsValid(target.member_relids[m]))
			lock_member(target.member_relids[m]);
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
 * the extension's and that it has the columns the upsert fills (extra
 * from 1.3 on).
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

	target.row_typid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
									   CStringGetDatum("connlog_batch_row"),
									   ObjectIdGetDatum(nspoid));
	target.row_array_typid = OidIsValid(target.row_typid) ?
		get_array_type(target.row_typid) : InvalidOid;
	if (!OidIsValid(target.row_array_typid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("type \"%s.connlog_batch_row\" does not exist",
						nspname)));
	check_member_type(extoid, target.row_typid);

	desc = lookup_rowtype_tupdesc(target.row_typid, -1);
	target.row_ncols = desc->natts;
	ok = target.row_ncols == UPSERT_NCOLS || target.row_ncols == COL_EXTRA;
	for (int c = 0; ok && c < target.row_ncols; c++)
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
		target.type_enum_typid = InvalidOid;
		return;
	}
	check_member_type(extoid, type_typid);
	target.type_enum_typid = type_typid;
	for (int i = 0; i < CL_NUM_TYPES; i++)
		target.type_label_oids[i] =
			GetSysCacheOid2(ENUMTYPOIDNAME, Anum_pg_enum_oid,
							ObjectIdGetDatum(type_typid),
							CStringGetDatum(connlog_type_labels[i]));
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
 * The conversion of the j-th converted column, to be called: the calls
 * keep their cache in it.
 */
InputConversion *
connlog_target_conversion(int j)
{
	Assert(j >= 0 && j < target.nconverted);
	return &target.converted[j].conv;
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
 * citext) takes it through its type's input function (convert.c), never
 * through a cast.  Any other column (a uuid, a time, an integer) must take
 * the value by assignment, as the INSERT gives it.
 */
static void
check_rows_columns(Relation rel, const char *name)
{
	TupleDesc	row_desc = lookup_rowtype_tupdesc(target.row_typid, -1);
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
			ConvertedColumn *cc = &target.converted[target.nconverted];

			if (!connlog_input_conversion_text(&cc->conv, att->atttypid,
											   att->atttypmod, target.cxt))
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("column \"%s\" of table %s is of type %s, which connlog cannot convert its text values to",
								col, name, format_type_be(att->atttypid)),
						 errdetail("connlog converts text through the input function of a string type, an enum, a user-defined type or a domain over one of them.")));
			cc->col = c;
			target.col_converted[c] = true;
			target.nconverted++;
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
 * rows_owner.
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
	target.rows_owner = rel->rd_rel->relowner;
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
	check_table_privileges(&missing, roleid, target.member_relids[MEMBER_LOGS],
						   target.rows_table, log_modes, log_names,
						   lengthof(log_modes));
	check_table_privileges(&missing, roleid, target.member_relids[MEMBER_REJECTED],
						   quote_qualified_identifier(nspname,
									  connlog_member_names[MEMBER_REJECTED]),
						   rej_modes, rej_names, lengthof(rej_modes));
	if (OidIsValid(target.member_relids[MEMBER_PROGRESS]))
		check_table_privileges(&missing, roleid,
							   target.member_relids[MEMBER_PROGRESS],
							   quote_qualified_identifier(nspname,
									  connlog_member_names[MEMBER_PROGRESS]),
							   prog_modes, prog_names, lengthof(prog_modes));
	if (missing.len > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" lacks %s",
						GetUserNameFromId(roleid, false), missing.data)));
}

/*
 * Check the members of extension extoid, in schema nspoid, at version, and
 * the table the rows go to, and the privileges the statements need; fill
 * in the target.  Runs inside a transaction; raises an error that says
 * what is wrong, leaving a target that only connlog_target_forget() may
 * touch.
 */
void
connlog_target_find(Oid extoid, Oid nspoid, const char *version)
{
	const char *setting = connlog_effective_table();
	char	   *nspname;
	char	   *rows_name;
	char	   *rows_nsp = NULL;	/* connlog.target_table's, if set */
	char	   *rows_rel = NULL;

	if (target.cxt == NULL)
		target.cxt = AllocSetContextCreate(TopMemoryContext,
										   "connlog statements",
										   ALLOCSET_SMALL_SIZES);
	nspname = get_namespace_name(nspoid);
	if (nspname == NULL)
		elog(ERROR, "cache lookup failed for schema %u", nspoid);
	for (int m = 0; m < NUM_MEMBERS; m++)
	{
		/* connlog.durability's progress, which version 1.0 does not have */
		if (m == MEMBER_PROGRESS && strcmp(version, "1.0") == 0)
			continue;
		/* connlog.target_table replaces connection_logs */
		if (m == MEMBER_LOGS && setting[0] != '\0')
			continue;
		target.member_relids[m] = find_member_table(extoid, nspoid, nspname,
													connlog_member_names[m]);
	}
	find_row_type(extoid, nspoid, nspname);
	target.setting = MemoryContextStrdup(target.cxt, setting);
	if (setting[0] == '\0')
		rows_name = quote_qualified_identifier(nspname,
										  connlog_member_names[MEMBER_LOGS]);
	else
	{
		/* the setting's check hook accepts nothing else */
		if (!connlog_table_name(setting, &rows_nsp, &rows_rel))
			elog(ERROR, "invalid connlog.target_table \"%s\"", setting);
		rows_name = quote_qualified_identifier(rows_nsp, rows_rel);
		target.member_relids[MEMBER_LOGS] = find_rows_table(rows_nsp, rows_rel,
															rows_name);
	}
	target.rows_table = MemoryContextStrdup(target.cxt, rows_name);
	check_privileges(nspoid, nspname);

	/* connection_logs keeps extra in a column of its own from 1.3 on */
	target.own_extra = setting[0] == '\0' && target.row_ncols == UPSERT_NCOLS;
	target.extoid = extoid;
	target.version = MemoryContextStrdup(target.cxt, version);
	target.nspname = MemoryContextStrdup(target.cxt, nspname);
	if (rows_nsp != NULL)
	{
		target.rows_nsp = MemoryContextStrdup(target.cxt, rows_nsp);
		target.rows_rel = MemoryContextStrdup(target.cxt, rows_rel);
	}
}

/*
 * Forget the target, with the statements prepared for it (plans.c): until
 * it is found again, connlog_enqueue checks extra's keys as it would
 * without a worker.
 */
void
connlog_target_forget(void)
{
	MemoryContext cxt = target.cxt;

	memset(&target, 0, sizeof(target));
	target.cxt = cxt;
	target.row_ncols = UPSERT_NCOLS;
	if (cxt != NULL)
		MemoryContextReset(cxt);
	/* until the statements are prepared again, the worker checks keys */
	connlog_columns_publish(CL_COLUMNS_UNKNOWN, InvalidOid, NULL, 0);
}

/*
 * connlog.table, the deprecated name of connlog.target_table, which is
 * used while connlog.target_table is empty (connlog_effective_table): say
 * once what the worker makes of it, and again only when the settings
 * change.
 */
void
connlog_target_warn_setting(void)
{
	const char *old = connlog_table;
	const char *setting = connlog_target_table;
	char	   *key;
	bool		news;

	if (old[0] == '\0')
	{
		(void) connlog_log_once(&table_warned, NULL);
		return;
	}
	key = psprintf("%s\n%s", old, setting);
	news = connlog_log_once(&table_warned, key);
	pfree(key);
	if (!news)
		return;
	if (setting[0] == '\0')
		ereport(WARNING,
				(errmsg("connlog.table is deprecated"),
				 errdetail("The worker writes into the table connlog.table names, \"%s\".",
						   old),
				 errhint("Set connlog.target_table instead, and remove connlog.table.")));
	else if (strcmp(old, setting) != 0)
		ereport(WARNING,
				(errmsg("connlog.table is deprecated and ignored"),
				 errdetail("The worker writes into the table connlog.target_table names, \"%s\", not into \"%s\", which connlog.table names.",
						   setting, old),
				 errhint("Remove connlog.table.")));
	else
		ereport(WARNING,
				(errmsg("connlog.table is deprecated"),
			  errdetail("connlog.target_table names the same table, \"%s\".",
						setting),
				 errhint("Remove connlog.table.")));
}

/*
 * A statement just prepared references relid.  The statement's tables
 * were checked by name just before; should a name have come to mean
 * something else while the statement was parsed (its schema renamed and
 * the name taken, say), the statement would reference a relation of that
 * name in a schema of that name that is not the member (or the table
 * connlog.target_table names), which is refused here.  Other relations the
 * rewriter brings in (a column default's sequence, a policy's table) are
 * the table owner's and pass.
 */
void
connlog_target_check_relation(Oid relid)
{
	char	   *relname = get_rel_name(relid);
	char	   *relnsp = get_namespace_name(get_rel_namespace(relid));

	if (relname == NULL || relnsp == NULL)
		return;
	if (target.rows_nsp != NULL && strcmp(relnsp, target.rows_nsp) == 0 &&
		strcmp(relname, target.rows_rel) == 0 &&
		relid != target.member_relids[MEMBER_LOGS])
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("relation \"%s\" changed while connlog prepared its statements",
						target.rows_table)));
	if (strcmp(relnsp, target.nspname) != 0)
		return;
	for (int m = 0; m < NUM_MEMBERS; m++)
		if (strcmp(relname, connlog_member_names[m]) == 0 &&
			relid != target.member_relids[m])
			report_not_member(target.nspname, relname);
}

/*
 * Retention's DELETE on connlog.target_table runs as the table's owner, as
 * the upsert does; the worker's role must have been granted DELETE all the
 * same, as on connection_logs, so that retention deletes only where an
 * administrator allowed it.
 */
void
connlog_target_check_delete(void)
{
	if (OidIsValid(target.rows_owner) &&
		pg_class_aclcheck(target.member_relids[MEMBER_LOGS], GetUserId(),
						  ACL_DELETE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" lacks DELETE on table %s",
						GetUserNameFromId(GetUserId(), false),
						target.rows_table)));
}

/*
 * A column extra may name: one of the table's own, not one of connlog's
 * sixteen, and one an INSERT may give a value (not generated, not an
 * identity GENERATED ALWAYS).
 */
bool
connlog_target_extra_column(Form_pg_attribute att)
{
	const char *name = NameStr(att->attname);

	return !att->attisdropped && att->attnum > 0 &&
		att->attgenerated == '\0' &&
		att->attidentity != ATTRIBUTE_IDENTITY_ALWAYS &&
		!cl_extra_reserved_key(name, strlen(name));
}

/*
 * Tell connlog_enqueue which keys extra may have (ring.c): any, for
 * connection_logs from 1.3 on; else the columns of the table that extra
 * may name (none for connection_logs before 1.3).
 */
void
connlog_target_publish_columns(void)
{
	Relation	rel = table_open(target.member_relids[MEMBER_LOGS],
								 AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	StringInfoData names;

	if (target.own_extra)
		connlog_columns_publish(CL_COLUMNS_ANY, RelationGetRelid(rel),
								NULL, 0);
	else
	{
		initStringInfo(&names);
		for (int i = 0; i < desc->natts && target.setting[0] != '\0'; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (connlog_target_extra_column(att))
				appendBinaryStringInfo(&names, NameStr(att->attname),
									   strlen(NameStr(att->attname)) + 1);
		}
		connlog_columns_publish(CL_COLUMNS_LISTED, RelationGetRelid(rel),
								names.data, (uint32) names.len);
		pfree(names.data);
	}
	table_close(rel, AccessShareLock);
}
