/*-------------------------------------------------------------------------
 *
 * rows.h
 *		A batch's entries as the values of the worker's statements: the
 *		upserts' arguments, and an event as JSON (rows.c).
 *
 * IDENTIFICATION
 *	  src/rows.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_ROWS_H
#define CONNLOG_ROWS_H

#include "nodes/pg_list.h"

#include "batch.h"
#include "plans.h"

/*
 * The upserts' arguments: the entries in groups, one per statement: those
 * without application columns for PLAN_UPSERT, and on
 * connlog.target_table those with them, one group per set of columns.
 */
typedef struct UpsertGroup
{
	ExtraPlan  *extra;			/* its statement; NULL: PLAN_UPSERT */
	List	   *entries;		/* batch indexes of its entries */
	int			ntexts;			/* converted columns, then extra's */
	char	  **texts;			/* column j's n texts from j * n */
	Datum	   *args;			/* $1, the rows; then one array per column */
} UpsertGroup;

extern List *connlog_rows_groups(const ClBatch *b, int start, int n,
								 const bool *skip);
extern void connlog_rows_convert(List *groups);
extern Datum connlog_uuid_datum(const uint8 *bytes);
extern char *connlog_event_json(const ClEvent *ev, const ClEntry *e);

#endif							/* CONNLOG_ROWS_H */
