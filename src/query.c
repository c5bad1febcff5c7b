/*-------------------------------------------------------------------------
 *
 * query.c
 *		connlog_convert(): how the query functions convert a column of
 *		the table connlog.target_table names to the type connection_logs has.
 *
 * When connlog.target_table names an application's table,
 * connlog_table_query reads it as connection_logs rows, and a column
 * whose type is not connection_logs' must be converted.  This function
 * converts with exactly two functions, found by OID in pg_type: the output
 * function of the value's type and the input function of the target
 * type; never a cast, and nothing looked up by name.
 *
 * See doc/internals.md, "connlog_convert".
 *
 * IDENTIFICATION
 *	  src/query.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/lsyscache.h"

PG_FUNCTION_INFO_V1(connlog_convert);

/*
 * connlog_convert(value "any", target anyelement) RETURNS anyelement
 *
 * value as the type of target, whose value is not used (the caller passes
 * a NULL of that type).  "any" keeps the parser from coercing value, so
 * its type here is the column's own.  Not STRICT, since target is always
 * NULL; a NULL value gives NULL.
 */
Datum
connlog_convert(PG_FUNCTION_ARGS)
{
	Oid			from = get_fn_expr_argtype(fcinfo->flinfo, 0);
	Oid			to = get_fn_expr_rettype(fcinfo->flinfo);
	Oid			typoutput;
	bool		typisvarlena;
	Oid			typinput;
	Oid			typioparam;
	char	   *str;

	if (!OidIsValid(from) || !OidIsValid(to))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		errmsg("could not determine the argument types of connlog_convert")));
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();

	getTypeOutputInfo(from, &typoutput, &typisvarlena);
	str = OidOutputFunctionCall(typoutput, PG_GETARG_DATUM(0));
	getTypeInputInfo(to, &typinput, &typioparam);
	PG_RETURN_DATUM(OidInputFunctionCall(typinput, str, typioparam, -1));
}
