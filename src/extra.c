/*-------------------------------------------------------------------------
 *
 * extra.c
 *		connlog_enqueue's extra: a jsonb object of values for the columns of
 *		the target table beyond connlog's sixteen, checked key by key and
 *		encoded in the record's format (batch.h).
 *
 * IDENTIFICATION
 *	  src/extra.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_attribute.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "batch.h"
#include "extra.h"
#include "ring.h"

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
void
connlog_encode_extra(Jsonb *jb, const char *func, StringInfo out)
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
