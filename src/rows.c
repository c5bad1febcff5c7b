/*-------------------------------------------------------------------------
 *
 * rows.c
 *		A batch's entries as the values of the connlog worker's statements:
 *		the upserts' arguments, and an event as JSON.
 *
 * A batch goes to the upsert as one array of the extension's composite
 * type connlog_batch_row, built here tuple by tuple; the table's own
 * columns take the values through ordinary INSERT assignment.  Only the
 * values that need their column type's input function (convert.c), a
 * converted text field's and extra's on connlog.target_table, come in
 * arrays of their own, which the upsert zips with the rows by ROWS FROM.
 * The entries are grouped by the statement that writes them
 * (UpsertGroup): those whose extra names the same set of the table's
 * columns share one (plans.c, "Application columns").
 *
 * An event as JSON is connection_logs.extra's value (its extra), the
 * event of a row of connection_logs_rejected, and the log_events line.
 *
 * See doc/internals.md, "Statements: the runner, the target, the plans".
 *
 * IDENTIFICATION
 *	  src/rows.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "catalog/pg_enum.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/inet.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

#include "batch.h"
#include "rows.h"
#include "target.h"

static void append_extra_json(StringInfo buf, const ClEvent *ev);

Datum
connlog_uuid_datum(const uint8 *bytes)
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
 * The type column's value for ev: the text, or before 1.2 the label of
 * connection_type.  A type the enum has no label for fails the statement
 * with a data exception, as casting it would, so the worker's split
 * rejects only the rows that carry it.
 */
static Datum
type_datum(const ClEvent *ev)
{
	const ConnlogTarget *t = connlog_target;
	ClText		type = cl_event_type(ev);
	Oid			label;

	if (!OidIsValid(t->type_enum_typid))
		return text_datum(&type);
	if (!(ev->flags & CL_HAS_TYPE_TEXT))
		label = t->type_label_oids[ev->type];
	else
		label = GetSysCacheOid2(ENUMTYPOIDNAME, Anum_pg_enum_oid,
								ObjectIdGetDatum(t->type_enum_typid),
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

/* connection_logs.extra's value: ev's extra as a jsonb */
static Datum
extra_jsonb(const ClEvent *ev)
{
	StringInfoData buf;

	initStringInfo(&buf);
	append_extra_json(&buf, ev);
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/* Column col of a row: text t if present, else NULL */
static void
optional_text(Datum *v, bool *null, int col, bool present, const ClText *t)
{
	null[col] = !present;
	v[col] = present ? text_datum(t) : (Datum) 0;
}

/* Column col of a row: uuid u if present, else NULL */
static void
optional_uuid(Datum *v, bool *null, int col, bool present, const uint8 *u)
{
	null[col] = !present;
	v[col] = present ? connlog_uuid_datum(u) : (Datum) 0;
}

/*
 * Entry e of b as a connlog_batch_row of desc; with_extra: fill extra.  A
 * converted column is left NULL: its value is in its own array.
 */
static Datum
batch_row(TupleDesc desc, const ClBatch *b, const ClEntry *e, bool with_extra)
{
	const ConnlogTarget *t = connlog_target;
	ClEvent		ev;
	Datum		v[UPSERT_NCOLS];
	bool		null[UPSERT_NCOLS];

	cl_batch_entry_event(b, e, &ev);
	memset(null, 0, sizeof(null));
	v[COL_ID] = connlog_uuid_datum(ev.id);
	v[COL_CONNECT_TIME] = TimestampTzGetDatum(e->connect_time);
	v[COL_ORGANIZATION_ID] = connlog_uuid_datum(ev.organization_id);
	v[COL_WORKSPACE_OWNER_ID] = connlog_uuid_datum(ev.workspace_owner_id);
	v[COL_WORKSPACE_ID] = connlog_uuid_datum(ev.workspace_id);
	v[COL_WORKSPACE_NAME] = text_datum(&ev.workspace_name);
	v[COL_AGENT_NAME] = text_datum(&ev.agent_name);
	/* a type the enum of 1.1 lacks must not fail a column converted anyway */
	if (!t->col_converted[COL_TYPE])
		v[COL_TYPE] = type_datum(&ev);
	if (ev.flags & CL_HAS_IP)
		v[COL_IP] = inet_datum(&ev);
	else
		null[COL_IP] = true;
	v[COL_CODE] = Int32GetDatum(ev.code);
	null[COL_CODE] = !(ev.flags & CL_HAS_CODE);
	optional_text(v, null, COL_USER_AGENT,
				  (ev.flags & CL_HAS_USER_AGENT) != 0, &ev.user_agent);
	optional_uuid(v, null, COL_USER_ID,
				  (ev.flags & CL_HAS_USER_ID) != 0, ev.user_id);
	optional_text(v, null, COL_SLUG_OR_PORT,
				  (ev.flags & CL_HAS_SLUG_OR_PORT) != 0, &ev.slug_or_port);
	optional_uuid(v, null, COL_CONNECTION_ID,
				  (ev.flags & CL_HAS_CONNECTION_ID) != 0, ev.connection_id);
	v[COL_DISCONNECT_TIME] = TimestampTzGetDatum(e->disconnect_time);
	null[COL_DISCONNECT_TIME] = (e->disconnect_time == CL_NO_TIME);
	optional_text(v, null, COL_DISCONNECT_REASON,
				  (ev.flags & CL_HAS_REASON) != 0, &ev.disconnect_reason);
	if (with_extra && ev.extra_len > 0)
		v[COL_EXTRA] = extra_jsonb(&ev);
	else
		null[COL_EXTRA] = true;
	for (int c = 0; c < ROWS_TABLE_NCOLS; c++)
		null[c] |= t->col_converted[c];
	return HeapTupleGetDatum(heap_form_tuple(desc, v, null));
}

/* rows[0 .. n) as a connlog_batch_row[] */
static Datum
batch_rows_array(Datum *rows, int n)
{
	Oid			row_typid = connlog_target->row_typid;
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(row_typid, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_array(rows, n, row_typid, typlen,
										   typbyval, typalign));
}

/* The group in *groups of the entries whose extra has ev's set of columns */
static UpsertGroup *
extra_group(List **groups, const ClEvent *ev)
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
	foreach(lc, *groups)
	{
		UpsertGroup *x = lfirst(lc);

		if (x->extra != NULL && x->extra->sig_len == sig.len &&
			memcmp(x->extra->sig, sig.data, sig.len) == 0)
			g = x;
	}
	if (g == NULL)
	{
		g = palloc0(sizeof(UpsertGroup));
		g->extra = connlog_extra_plan(sig.data, sig.len);
		*groups = lappend(*groups, g);
	}
	pfree(sig.data);
	return g;
}

/*
 * The text connlog gives column c (one it holds as text) for ev in *t;
 * false if it gives NULL.
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
 * application columns, which connlog_rows_convert() turns into their
 * arrays.  with_extra: the rows carry extra, for connection_logs' column.
 */
static void
build_group_args(const ClBatch *b, UpsertGroup *g, TupleDesc desc,
				 bool with_extra)
{
	const ConnlogTarget *t = connlog_target;
	int			n = list_length(g->entries);
	Datum	   *rows = palloc(sizeof(Datum) * n);
	ListCell   *ec;
	int			k = 0;

	g->ntexts = t->nconverted + (g->extra != NULL ? g->extra->ncols : 0);
	g->texts = palloc(sizeof(char *) * g->ntexts * n);
	foreach(ec, g->entries)
	{
		const ClEntry *e = &b->entries[lfirst_int(ec)];
		ClEvent		ev;
		ClText		value;

		cl_batch_entry_event(b, e, &ev);
		rows[k] = batch_row(desc, b, e, with_extra);
		for (int j = 0; j < t->nconverted; j++)
			g->texts[j * n + k] =
				event_text(&ev, t->converted[j].col, &value) ?
				pnstrdup(value.data, value.len) : NULL;
		if (g->extra != NULL)
		{
			const char *pos = ev.extra;
			ClExtraItem it;
			int			j = t->nconverted;

			while (cl_extra_next(&pos, ev.extra + ev.extra_len, &it))
				g->texts[j++ * n + k] = pnstrdup(it.value, it.value_len);
		}
		k++;
	}
	g->args = palloc(sizeof(Datum) * (1 + g->ntexts));
	g->args[0] = batch_rows_array(rows, n);
}

/*
 * The entries [start, start + n) of b, but those skip marks (skip may be
 * NULL), as the upserts' arguments, but for the converted values
 * (connlog_rows_convert): a list of UpsertGroup.  On connection_logs
 * every entry is a row of PLAN_UPSERT, its extra in the column extra
 * (before 1.3, which has none, an entry with extra fails; connlog_enqueue
 * had no extra then).  On connlog.target_table, an entry whose extra
 * names columns goes to the group of its set of columns.
 */
List *
connlog_rows_groups(const ClBatch *b, int start, int n, const bool *skip)
{
	const ConnlogTarget *t = connlog_target;
	TupleDesc	desc = lookup_rowtype_tupdesc(t->row_typid, -1);
	bool		app_table = t->setting[0] != '\0';
	List	   *groups = NIL;
	UpsertGroup *plain = NULL;
	ListCell   *lc;

	connlog_extra_plans_unmark();
	for (int i = 0; i < n; i++)
	{
		const ClEntry *e = &b->entries[start + i];
		ClEvent		ev;
		UpsertGroup *g;

		if (skip != NULL && skip[i])
			continue;
		cl_batch_entry_event(b, e, &ev);
		if (ev.extra_len > 0 && app_table)
			g = extra_group(&groups, &ev);
		else
		{
			if (ev.extra_len > 0 && t->row_ncols < UPSERT_NCOLS)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("connection_logs has no column extra"),
						 errdetail("The event carries extra, which connection_logs keeps only from version 1.3 of the extension on.")));
			if (plain == NULL)
			{
				plain = palloc0(sizeof(UpsertGroup));
				groups = lcons(plain, groups);
			}
			g = plain;
		}
		g->entries = lappend_int(g->entries, start + i);
	}
	foreach(lc, groups)
		build_group_args(b, lfirst(lc), desc, !app_table);
	ReleaseTupleDesc(desc);
	return groups;
}

/*
 * Each group's arrays, $2 on: its texts through the input functions of
 * the converted columns, then of its application columns.  The caller runs
 * this as the table's owner.
 */
void
connlog_rows_convert(List *groups)
{
	const ConnlogTarget *t = connlog_target;
	ListCell   *lc;

	foreach(lc, groups)
	{
		UpsertGroup *g = lfirst(lc);
		int			n = list_length(g->entries);

		for (int j = 0; j < g->ntexts; j++)
		{
			InputConversion *ic = j < t->nconverted ?
			connlog_target_conversion(j) :
			&g->extra->conv[j - t->nconverted];

			g->args[1 + j] = connlog_input_array(ic, g->texts + j * n, n);
		}
	}
}

/* ---------------------------------------------------------------------
 * One event as JSON
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
												connlog_uuid_datum(bytes))));
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
 * a rejected event can be replayed by name; NULL fields are left out.  e,
 * if not NULL, is the merged row the event is part of.  palloc'd.
 */
char *
connlog_event_json(const ClEvent *ev, const ClEntry *e)
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
