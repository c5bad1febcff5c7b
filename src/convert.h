/*-------------------------------------------------------------------------
 *
 * convert.h
 *		Text into a column through the input function of the column's
 *		type (convert.c).
 *
 * IDENTIFICATION
 *	  src/convert.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_CONVERT_H
#define CONNLOG_CONVERT_H

#include "fmgr.h"

/*
 * The conversion of text into a column of the table connlog.target_table
 * names: looked up once, when the statement it feeds is prepared, and used
 * for each batch that statement writes.
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

extern bool connlog_input_conversion_init(InputConversion *ic, Oid typid,
										  int32 typmod, MemoryContext cxt);
extern bool connlog_input_conversion_text(InputConversion *ic, Oid typid,
										  int32 typmod, MemoryContext cxt);
extern Datum connlog_input_array(InputConversion *ic, char **texts, int n);

#endif							/* CONNLOG_CONVERT_H */
