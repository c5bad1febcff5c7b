/*-------------------------------------------------------------------------
 *
 * target.h
 *		What the worker's statements write to: the extension, its member
 *		objects and the table the rows go to (target.c).
 *
 * IDENTIFICATION
 *	  src/target.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_TARGET_H
#define CONNLOG_TARGET_H

#include "access/tupdesc.h"
#include "catalog/pg_attribute.h"

#include "batch.h"
#include "convert.h"

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
 * The extension's tables that the statements use, in the order of
 * connlog_member_names; a statement says which it uses as a mask of
 * 1 << MEMBER_x.
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

extern const char *const connlog_member_names[NUM_MEMBERS];

/*
 * A column of connlog.target_table that takes connlog's text through its
 * type's input function; every upsert's parameters $2, $3, ... carry
 * their values, one array each, in the order of their COL_x.
 */
typedef struct ConvertedColumn
{
	int			col;			/* COL_x */
	InputConversion conv;
} ConvertedColumn;

/*
 * The target, as connlog_target_find() found and checked it for the
 * statements prepared now (plans.c); forgotten with them.  Strings are in
 * cxt, emptied when it is forgotten.
 */
typedef struct ConnlogTarget
{
	MemoryContext cxt;			/* its strings and the conversions' caches */

	/* the extension; InvalidOid: none found since last forgotten */
	Oid			extoid;
	char	   *version;		/* its extversion */
	char	   *nspname;		/* its schema */
	Oid			member_relids[NUM_MEMBERS]; /* InvalidOid: not in this version */

	/* the table the rows go to */
	char	   *setting;		/* connlog_effective_table() found for */
	char	   *rows_table;		/* quoted and qualified */
	char	   *rows_nsp;		/* connlog.target_table's, NULL if unset */
	char	   *rows_rel;
	Oid			rows_owner;		/* whom its statements run as; InvalidOid:
								 * connection_logs */
	bool		own_extra;		/* connection_logs' column extra (1.3) */

	/* connlog_batch_row */
	Oid			row_typid;
	Oid			row_array_typid;
	int			row_ncols;		/* UPSERT_NCOLS from 1.3, COL_EXTRA before */
	Oid			type_enum_typid;	/* connection_type, if the type column is
									 * one; else InvalidOid: text */
	Oid			type_label_oids[CL_NUM_TYPES];	/* InvalidOid: label missing */

	/* connlog.target_table's converted columns */
	ConvertedColumn converted[ROWS_TABLE_NCOLS];
	int			nconverted;
	bool		col_converted[UPSERT_NCOLS];	/* by COL_x */
} ConnlogTarget;

/* read-only outside target.c */
extern const ConnlogTarget *const connlog_target;

/* finding and checking it, inside a transaction */
extern bool connlog_target_find_extension(Oid *extoid, Oid *nspoid,
										  char **version);
extern void connlog_target_find(Oid extoid, Oid nspoid, const char *version);
extern void connlog_target_forget(void);
extern void connlog_target_warn_setting(void);
extern void connlog_target_lock(int uses);
extern void connlog_target_check_relation(Oid relid);
extern void connlog_target_check_delete(void);
extern void connlog_target_publish_columns(void);
extern bool connlog_target_extra_column(Form_pg_attribute att);
extern InputConversion *connlog_target_conversion(int j);

#endif							/* CONNLOG_TARGET_H */
