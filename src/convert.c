/*-------------------------------------------------------------------------
 *
 * convert.c
 *		Text into a column of the table connlog.target_table names, through
 *		the input function of the column's type.
 *
 * The one conversion of connlog's text fields into a column of another
 * type (the converted columns, target.c) and of extra's values into the
 * application's columns (plans.c): the input function of the column's
 * type, found by OID in pg_type and called with the column's typmod,
 * never a cast.  The statements' callers run it as the table's owner
 * (connlog_as_owner_begin, runner.c).  See doc/internals.md, "Input
 * functions".
 *
 * IDENTIFICATION
 *	  src/convert.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/lsyscache.h"

#include "convert.h"

/*
 * Look up the conversion of text into type typid with typmod, once per
 * statement.  False if the type has no array type, which the statement's
 * parameter needs.  The input function's cache (a domain's constraints,
 * say) goes into cxt, with the statement's other memory.
 */
bool
connlog_input_conversion_init(InputConversion *ic, Oid typid, int32 typmod,
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
 * Can text go into a column of type typid through that type's input
 * function?  Only a type whose values are spelled as text (its category,
 * or its domain's base type's, is string, enum or user-defined): the
 * values of a number or a time never read as a workspace name or a
 * connection type, so every row would fail.  If so, look up ic as
 * connlog_input_conversion_init() does.
 */
bool
connlog_input_conversion_text(InputConversion *ic, Oid typid, int32 typmod,
							  MemoryContext cxt)
{
	char		category;
	bool		preferred;

	get_type_category_preferred(getBaseType(typid), &category, &preferred);
	if (category != TYPCATEGORY_STRING && category != TYPCATEGORY_ENUM &&
		category != TYPCATEGORY_USER)
		return false;
	return connlog_input_conversion_init(ic, typid, typmod, cxt);
}

/*
 * texts[0 .. n) (NULL: no value) through ic's input function, as an array
 * of its type.  The caller runs this as the table's owner.
 */
Datum
connlog_input_array(InputConversion *ic, char **texts, int n)
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
