/*-------------------------------------------------------------------------
 *
 * enqueue.c
 *		connlog_enqueue() and connlog_enqueue_batch(): the hot path that
 *		turns a call into events in the ring.
 *
 * connlog_enqueue() validates its arguments, encodes the event (batch.c)
 * into a stack buffer and copies it into the ring (ring.c); it touches no
 * table and takes no lock a writer holds, and with connlog.durability =
 * memory (the default) it writes no WAL (wal.c for the other modes).
 * What needs the catalogs (the database check, enum OID to label) is
 * looked up once per backend and cached, so a call costs about what
 * SELECT 1 costs.  connlog_enqueue_batch() checks and encodes every
 * element first and stores all its events at once, or none.  See
 * doc/internals.md, "Enqueue: the hot path".
 *
 * IDENTIFICATION
 *	  src/enqueue.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_enum.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "batch.h"
#include "compat.h"
#include "connlog.h"
#include "extra.h"
#include "ring.h"
#include "status.h"
#include "wal.h"

static uint32 wait_event_ring_full;

/* connlog_enqueue's arguments, by position */
enum
{
	ARG_ID,
	ARG_EVENT_TIME,
	ARG_ORGANIZATION_ID,
	ARG_WORKSPACE_OWNER_ID,
	ARG_WORKSPACE_ID,
	ARG_WORKSPACE_NAME,
	ARG_AGENT_NAME,
	ARG_TYPE,
	ARG_STATUS,
	ARG_CONNECTION_ID,
	ARG_IP,
	ARG_CODE,
	ARG_USER_AGENT,
	ARG_USER_ID,
	ARG_SLUG_OR_PORT,
	ARG_DISCONNECT_REASON,
	ARG_EXTRA,					/* from 1.3 */
	NUM_ARGS
};

static const char *const arg_names[NUM_ARGS] = {
	"id", "event_time", "organization_id", "workspace_owner_id",
	"workspace_id", "workspace_name", "agent_name", "type", "status",
	"connection_id", "ip", "code", "user_agent", "user_id", "slug_or_port",
	"disconnect_reason", "extra"
};

PG_FUNCTION_INFO_V1(connlog_enqueue);
PG_FUNCTION_INFO_V1(connlog_enqueue_1_2);
PG_FUNCTION_INFO_V1(connlog_enqueue_batch);

/*
 * Refuse events that no worker would write: without a registered worker,
 * on a standby, and in any database but connlog.database.  The database
 * check needs the catalog, so its answer is kept for the life of the
 * backend.
 */
static void
check_can_enqueue(void)
{
	static int	database_ok = -1;

	connlog_require_worker();
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
			  errmsg("cannot enqueue connection log events during recovery"),
				 errhint("Call connlog_enqueue on the primary server.")));
	if (database_ok < 0)
	{
		char	   *name = get_database_name(MyDatabaseId);

		database_ok = (name != NULL && strcmp(name, connlog_database) == 0);
	}
	if (!database_ok)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			  errmsg("connlog_enqueue can only be called in database \"%s\"",
					 connlog_database),
				 errdetail("The connlog worker writes to the database named by connlog.database; this is database \"%s\".",
						   get_database_name(MyDatabaseId))));
}

/*
 * Map an enum value's OID to its position in labels.  OIDs of enum values
 * never change meaning, so a small per-backend cache is always right, even
 * across DROP and CREATE EXTENSION (new values get new OIDs).
 */
static uint8
enum_index(Oid value, const char *const *labels, int nlabels)
{
	static struct
	{
		Oid			oid;
		uint8		index;
	}			cache[16];
	static int	ncache = 0;
	HeapTuple	tup;
	const char *label;
	int			index = -1;

	for (int i = 0; i < ncache; i++)
		if (cache[i].oid == value)
			return cache[i].index;

	tup = SearchSysCache1(ENUMOID, ObjectIdGetDatum(value));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid internal value for enum: %u", value)));
	label = NameStr(((Form_pg_enum) GETSTRUCT(tup))->enumlabel);
	for (int i = 0; i < nlabels; i++)
		if (strcmp(label, labels[i]) == 0)
			index = i;
	if (index < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			  errmsg("connlog does not know the enum value \"%s\"", label)));
	ReleaseSysCache(tup);
	if (ncache < lengthof(cache))
	{
		cache[ncache].oid = value;
		cache[ncache].index = (uint8) index;
		ncache++;
	}
	return (uint8) index;
}

static void
get_uuid(FunctionCallInfo fcinfo, int arg, uint8 *dst)
{
	memcpy(dst, PG_GETARG_UUID_P(arg)->data, UUID_LEN);
}

/*
 * The error for an event over CL_MAX_RECORD bytes: len is the size of
 * argument name, or with name NULL the event's.
 */
pg_noreturn static void
too_large(const char *name, size_t len)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("connection log event is too large"),
			 name != NULL ?
			 errdetail("Argument \"%s\" is %zu bytes; connlog stores at most %d bytes per event.",
					   name, len, CL_MAX_RECORD) :
			 errdetail("The event needs %zu bytes; connlog stores at most %d bytes per event.",
					   len, CL_MAX_RECORD)));
	pg_unreachable();
}

/*
 * A text value of argument name; too long a field is reported with the
 * event's size.
 */
static void
set_text(text *t, const char *name, ClText *dst)
{
	size_t		len = VARSIZE_ANY_EXHDR(t);

	if (len > CL_MAX_RECORD)
		too_large(name, len);
	dst->data = VARDATA_ANY(t);
	dst->len = (uint16) len;
}

static void
get_text(FunctionCallInfo fcinfo, int arg, ClText *dst)
{
	set_text(PG_GETARG_TEXT_PP(arg), arg_names[arg], dst);
}

/*
 * The type argument of connlog_enqueue from 1.2 on (and of
 * connlog_enqueue_batch), which is text: any value of 1 to
 * CL_MAX_TYPE_LEN bytes (batch.h says why that bound).  func names the
 * function in the errors.
 */
static void
set_type_text(text *t, const char *func, ClEvent *ev)
{
	size_t		len = VARSIZE_ANY_EXHDR(t);

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"type\" of %s must not be empty", func)));
	if (len > CL_MAX_TYPE_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
		   errmsg("argument \"type\" of %s must not be longer than %d bytes",
				  func, CL_MAX_TYPE_LEN),
				 errdetail("The value given is %zu bytes long.", len)));
	cl_set_type(ev, VARDATA_ANY(t), (uint16) len);
}

/*
 * Optional arguments that carry no value are stored as NULL, as coder's
 * BatchUpsertConnectionLogs does with its Go zero values: an empty string
 * and the all-zero UUID.  For connection_id this matters beyond storage:
 * the zero UUID would otherwise make unrelated web events merge.
 */
static bool
uuid_arg_present(FunctionCallInfo fcinfo, int arg)
{
	static const uint8 zero[UUID_LEN] = {0};

	return !PG_ARGISNULL(arg) &&
		memcmp(PG_GETARG_UUID_P(arg)->data, zero, UUID_LEN) != 0;
}

static bool
text_arg_present(FunctionCallInfo fcinfo, int arg)
{
	return !PG_ARGISNULL(arg) &&
		VARSIZE_ANY_EXHDR(PG_GETARG_DATUM(arg)) > 0;
}

/* The bytes of ev's record, which must not exceed CL_MAX_RECORD */
static size_t
checked_size(const ClEvent *ev)
{
	size_t		len = cl_encoded_size(ev);

	if (len > CL_MAX_RECORD)
		too_large(NULL, len);
	return len;
}

/*
 * Store the nrecs records of recs[0 .. len) in the ring, all or none, and,
 * with connlog.durability other than memory, write their WAL records:
 * outside the ring lock, so producers' WAL inserts run side by side and
 * their flushes group-commit (see wal.c).  msg, if not NULL, has room for
 * the WAL record's header before a record, and a single record already
 * sits right after it (connlog_enqueue's buffer), so it is not copied.
 */
static void
store_events(const char *recs, uint32 len, uint32 nrecs, char *msg, bool wal)
{
	uint64		seq;

	if (wal)
		connlog_wal_check_enqueue();
	switch (connlog_ring_put_many(recs, len, nrecs,
								  (ConnlogPutMode) connlog_overflow,
								  connlog_batch_size,
								  connlog_enqueue_timeout_ms,
								  CONNLOG_WAIT_EVENT(wait_event_ring_full,
													 "ConnlogRingFull"),
								  wal, &seq))
	{
		case CL_PUT_STORED:
			if (wal)
			{
				XLogRecPtr	end = InvalidXLogRecPtr;
				uint32		off = 0;

				if (msg == NULL)
					msg = palloc(CONNLOG_WAL_HEADER_SIZE + CL_MAX_RECORD);
				for (uint32 r = 0; r < nrecs; r++)
				{
					uint32		rlen = cl_record_length(recs + off);

					if (recs + off != msg + CONNLOG_WAL_HEADER_SIZE)
						memcpy(msg + CONNLOG_WAL_HEADER_SIZE, recs + off, rlen);
					end = connlog_wal_insert(msg, seq + r, rlen);
					off += rlen;
				}
				if (connlog_durability == CL_DURABILITY_FLUSH)
					connlog_wal_flush(end);
			}
			break;
		case CL_PUT_DROPPED:
			break;
		case CL_PUT_FULL:
			connlog_ring_full_error();
	}
}

/*
 * connlog_enqueue(id, event_time, ..., disconnect_reason) returns void
 *
 * Not STRICT: NULLs in the optional arguments are normal, and a NULL in a
 * required one deserves an error that names it, not a silent no-op.
 *
 * Two entry points: connlog_enqueue takes the type as a connection_type
 * (1.0 and 1.1, and the overload 1.2 and 1.3 keep for callers that cast to
 * it), connlog_enqueue_1_2 as text, with 1.2's sixteen arguments or 1.3's
 * seventeen, the last being extra (PG_NARGS() tells which).  A NULL extra
 * costs one test.
 */
static Datum
enqueue(FunctionCallInfo fcinfo, bool type_is_text)
{
	ClEvent		ev;

	/* room for the WAL record's header before the ring record */
	char		buf[CONNLOG_WAL_HEADER_SIZE + 1024];
	char	   *msg = buf;
	char	   *rec = buf + CONNLOG_WAL_HEADER_SIZE;
	size_t		len;
	bool		wal = connlog_durability != CL_DURABILITY_MEMORY;

	/* the worker would wait on its own ring: see guard.c */
	if (unlikely(connlog_is_worker))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		errmsg("connlog_enqueue cannot be called from connlog's own worker"),
				 errdetail("Code of the table connlog writes to, such as a trigger, called it while the worker wrote rows there.")));
	check_can_enqueue();
	for (int i = ARG_ID; i <= ARG_STATUS; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("argument \"%s\" of connlog_enqueue must not be null",
					   arg_names[i])));

	memset(&ev, 0, sizeof(ev));
	ev.event_time = PG_GETARG_TIMESTAMPTZ(ARG_EVENT_TIME);
	if (TIMESTAMP_NOT_FINITE(ev.event_time))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		errmsg("argument \"event_time\" of connlog_enqueue must be finite")));
	get_uuid(fcinfo, ARG_ID, ev.id);
	get_uuid(fcinfo, ARG_ORGANIZATION_ID, ev.organization_id);
	get_uuid(fcinfo, ARG_WORKSPACE_OWNER_ID, ev.workspace_owner_id);
	get_uuid(fcinfo, ARG_WORKSPACE_ID, ev.workspace_id);
	get_text(fcinfo, ARG_WORKSPACE_NAME, &ev.workspace_name);
	get_text(fcinfo, ARG_AGENT_NAME, &ev.agent_name);
	if (type_is_text)
		set_type_text(PG_GETARG_TEXT_PP(ARG_TYPE), "connlog_enqueue", &ev);
	else
		ev.type = enum_index(PG_GETARG_OID(ARG_TYPE), connlog_type_labels,
							 CL_NUM_TYPES);
	ev.status = enum_index(PG_GETARG_OID(ARG_STATUS), connlog_status_labels,
						   2);

	if (uuid_arg_present(fcinfo, ARG_CONNECTION_ID))
	{
		ev.flags |= CL_HAS_CONNECTION_ID;
		get_uuid(fcinfo, ARG_CONNECTION_ID, ev.connection_id);
	}
	if (!PG_ARGISNULL(ARG_IP))
	{
		inet	   *ip = PG_GETARG_INET_PP(ARG_IP);

		ev.flags |= CL_HAS_IP;
		ev.ip_family = ip_family(ip) == PGSQL_AF_INET ? 4 : 6;
		ev.ip_bits = ip_bits(ip);
		memcpy(ev.ip_addr, ip_addr(ip), ip_addrsize(ip));
	}
	if (!PG_ARGISNULL(ARG_CODE))
	{
		ev.flags |= CL_HAS_CODE;
		ev.code = PG_GETARG_INT32(ARG_CODE);
	}
	if (text_arg_present(fcinfo, ARG_USER_AGENT))
	{
		ev.flags |= CL_HAS_USER_AGENT;
		get_text(fcinfo, ARG_USER_AGENT, &ev.user_agent);
	}
	if (uuid_arg_present(fcinfo, ARG_USER_ID))
	{
		ev.flags |= CL_HAS_USER_ID;
		get_uuid(fcinfo, ARG_USER_ID, ev.user_id);
	}
	if (text_arg_present(fcinfo, ARG_SLUG_OR_PORT))
	{
		ev.flags |= CL_HAS_SLUG_OR_PORT;
		get_text(fcinfo, ARG_SLUG_OR_PORT, &ev.slug_or_port);
	}
	if (text_arg_present(fcinfo, ARG_DISCONNECT_REASON))
	{
		ev.flags |= CL_HAS_REASON;
		get_text(fcinfo, ARG_DISCONNECT_REASON, &ev.disconnect_reason);
	}
	if (PG_NARGS() > ARG_EXTRA && !PG_ARGISNULL(ARG_EXTRA))
	{
		StringInfoData extra;

		initStringInfo(&extra);
		connlog_encode_extra(PG_GETARG_JSONB_P(ARG_EXTRA), "connlog_enqueue", &extra);
		if (extra.len > 0)
		{
			ev.extra = extra.data;
			ev.extra_len = (uint32) extra.len;
		}
	}

	len = checked_size(&ev);
	if (CONNLOG_WAL_HEADER_SIZE + len > sizeof(buf))
	{
		msg = palloc(CONNLOG_WAL_HEADER_SIZE + len);
		rec = msg + CONNLOG_WAL_HEADER_SIZE;
	}
	cl_encode(&ev, len, rec);
	store_events(rec, (uint32) len, 1, msg, wal);
	PG_RETURN_VOID();
}

Datum
connlog_enqueue(PG_FUNCTION_ARGS)
{
	return enqueue(fcinfo, false);
}

Datum
connlog_enqueue_1_2(PG_FUNCTION_ARGS)
{
	return enqueue(fcinfo, true);
}

/*
 * connlog_enqueue_batch(id uuid[], connect_time timestamptz[], ...,
 * disconnect_time timestamptz[]) returns bigint
 *
 * A drop-in for coder's BatchUpsertConnectionLogs: the same seventeen
 * arrays, in its order, one element per row it would upsert, enqueued as
 * events instead.  coder merges a connection's connect and disconnect in
 * its batcher before it upserts, so an element stands for up to two
 * events: a connect at connect_time, a disconnect at disconnect_time.
 * The zero time ('0001-01-01 00:00:00+00', Go's zero value) and NULL mean
 * none; a disconnect_time equal to connect_time (coder's standalone
 * disconnect) is one disconnect.  An element without a connection_id (a
 * web event) never merges, so it must be one event: a disconnect_time
 * later than its connect_time is refused.  code counts only where
 * code_valid is true; empty texts and zero UUIDs are NULL, as in
 * connlog_enqueue, which validates each event the same way.
 *
 * All or nothing: every element is checked and encoded first, then all
 * events go into the ring at once (connlog_ring_put_many), so an error
 * leaves nothing enqueued.  Returns the number of events enqueued.
 */
enum
{
	BATCH_ID,
	BATCH_CONNECT_TIME,
	BATCH_ORGANIZATION_ID,
	BATCH_WORKSPACE_OWNER_ID,
	BATCH_WORKSPACE_ID,
	BATCH_WORKSPACE_NAME,
	BATCH_AGENT_NAME,
	BATCH_TYPE,
	BATCH_CODE,
	BATCH_CODE_VALID,
	BATCH_IP,
	BATCH_USER_AGENT,
	BATCH_USER_ID,
	BATCH_SLUG_OR_PORT,
	BATCH_CONNECTION_ID,
	BATCH_DISCONNECT_REASON,
	BATCH_DISCONNECT_TIME,
	BATCH_NARGS
};

static const char *const batch_arg_names[BATCH_NARGS] = {
	"id", "connect_time", "organization_id", "workspace_owner_id",
	"workspace_id", "workspace_name", "agent_name", "type", "code",
	"code_valid", "ip", "user_agent", "user_id", "slug_or_port",
	"connection_id", "disconnect_reason", "disconnect_time"
};

/* Go's zero time.Time, 0001-01-01 00:00:00+00, as a TimestampTz */
#define GO_ZERO_TIME	INT64CONST(-63082281600000000)

typedef struct BatchElement
{
	int			index;			/* counted from 1 */
} BatchElement;

static void
batch_element_context(void *arg)
{
	errcontext("element %d of the arrays of connlog_enqueue_batch",
			   ((BatchElement *) arg)->index);
}

static bool
batch_uuid_present(Datum d, bool isnull)
{
	static const uint8 zero[UUID_LEN] = {0};

	return !isnull && memcmp(DatumGetUUIDP(d)->data, zero, UUID_LEN) != 0;
}

static bool
batch_text_present(Datum d, bool isnull)
{
	return !isnull && VARSIZE_ANY_EXHDR(DatumGetPointer(d)) > 0;
}

/* A time of an element, or CL_NO_TIME for none (NULL or Go's zero) */
static int64
batch_time(Datum d, bool isnull, const char *name)
{
	TimestampTz t;

	if (isnull || DatumGetTimestampTz(d) == GO_ZERO_TIME)
		return CL_NO_TIME;
	t = DatumGetTimestampTz(d);
	if (TIMESTAMP_NOT_FINITE(t))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("argument \"%s\" of connlog_enqueue_batch must be finite",
				   name)));
	return t;
}

/* Append ev's record to buf */
static void
batch_append(StringInfo buf, const ClEvent *ev)
{
	size_t		len = checked_size(ev);

	enlargeStringInfo(buf, (int) len);
	cl_encode(ev, len, buf->data + buf->len);
	buf->len += (int) len;
}

/*
 * Deconstruct the arguments of connlog_enqueue_batch into values and
 * nulls; returns the arrays' common length.
 */
static int
batch_arrays(FunctionCallInfo fcinfo, Datum **values, bool **nulls)
{
	int			n = -1;

	for (int a = 0; a < BATCH_NARGS; a++)
	{
		ArrayType  *arr;
		int16		typlen;
		bool		typbyval;
		char		typalign;
		int			count;

		if (PG_ARGISNULL(a))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument \"%s\" of connlog_enqueue_batch must not be null",
							batch_arg_names[a])));
		arr = PG_GETARG_ARRAYTYPE_P(a);
		if (ARR_NDIM(arr) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("argument \"%s\" of connlog_enqueue_batch must be a one-dimensional array",
							batch_arg_names[a])));
		get_typlenbyvalalign(ARR_ELEMTYPE(arr), &typlen, &typbyval, &typalign);
		deconstruct_array(arr, ARR_ELEMTYPE(arr), typlen, typbyval, typalign,
						  &values[a], &nulls[a], &count);
		if (n < 0)
			n = count;
		else if (count != n)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("the arrays of connlog_enqueue_batch must all have the same length"),
					 errdetail("Argument \"%s\" has %d elements and argument \"%s\" has %d.",
							   batch_arg_names[0], n, batch_arg_names[a],
							   count)));
	}

	return n;
}

/*
 * Check element i of the arrays (values[a][i], nulls[a][i]) and append its
 * events, one or two, to recs, counting them in *nrecs.
 */
static void
batch_element(Datum **values, bool **nulls, int i, StringInfo recs,
			  uint32 *nrecs)
{
	ClEvent		ev;
	int64		connect_time;
	int64		disconnect_time;
	bool		has_code;

	for (int a = 0; a <= BATCH_TYPE; a++)
		if (nulls[a][i] && a != BATCH_CONNECT_TIME)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument \"%s\" of connlog_enqueue_batch must not have a null element",
							batch_arg_names[a])));
	memset(&ev, 0, sizeof(ev));
	memcpy(ev.id, DatumGetUUIDP(values[BATCH_ID][i])->data, UUID_LEN);
	memcpy(ev.organization_id,
		   DatumGetUUIDP(values[BATCH_ORGANIZATION_ID][i])->data, UUID_LEN);
	memcpy(ev.workspace_owner_id,
		   DatumGetUUIDP(values[BATCH_WORKSPACE_OWNER_ID][i])->data,
		   UUID_LEN);
	memcpy(ev.workspace_id,
		   DatumGetUUIDP(values[BATCH_WORKSPACE_ID][i])->data, UUID_LEN);
	set_text(DatumGetTextPP(values[BATCH_WORKSPACE_NAME][i]),
			 "workspace_name", &ev.workspace_name);
	set_text(DatumGetTextPP(values[BATCH_AGENT_NAME][i]), "agent_name",
			 &ev.agent_name);
	set_type_text(DatumGetTextPP(values[BATCH_TYPE][i]),
				  "connlog_enqueue_batch", &ev);
	if (batch_uuid_present(values[BATCH_CONNECTION_ID][i],
						   nulls[BATCH_CONNECTION_ID][i]))
	{
		ev.flags |= CL_HAS_CONNECTION_ID;
		memcpy(ev.connection_id,
			   DatumGetUUIDP(values[BATCH_CONNECTION_ID][i])->data,
			   UUID_LEN);
	}
	if (!nulls[BATCH_IP][i])
	{
		inet	   *ip = DatumGetInetPP(values[BATCH_IP][i]);

		ev.flags |= CL_HAS_IP;
		ev.ip_family = ip_family(ip) == PGSQL_AF_INET ? 4 : 6;
		ev.ip_bits = ip_bits(ip);
		memcpy(ev.ip_addr, ip_addr(ip), ip_addrsize(ip));
	}
	if (batch_text_present(values[BATCH_USER_AGENT][i],
						   nulls[BATCH_USER_AGENT][i]))
	{
		ev.flags |= CL_HAS_USER_AGENT;
		set_text(DatumGetTextPP(values[BATCH_USER_AGENT][i]),
				 "user_agent", &ev.user_agent);
	}
	if (batch_uuid_present(values[BATCH_USER_ID][i],
						   nulls[BATCH_USER_ID][i]))
	{
		ev.flags |= CL_HAS_USER_ID;
		memcpy(ev.user_id, DatumGetUUIDP(values[BATCH_USER_ID][i])->data,
			   UUID_LEN);
	}
	if (batch_text_present(values[BATCH_SLUG_OR_PORT][i],
						   nulls[BATCH_SLUG_OR_PORT][i]))
	{
		ev.flags |= CL_HAS_SLUG_OR_PORT;
		set_text(DatumGetTextPP(values[BATCH_SLUG_OR_PORT][i]),
				 "slug_or_port", &ev.slug_or_port);
	}

	connect_time = batch_time(values[BATCH_CONNECT_TIME][i],
							  nulls[BATCH_CONNECT_TIME][i],
							  "connect_time");
	disconnect_time = batch_time(values[BATCH_DISCONNECT_TIME][i],
								 nulls[BATCH_DISCONNECT_TIME][i],
								 "disconnect_time");
	if (connect_time == CL_NO_TIME && disconnect_time == CL_NO_TIME)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("an element of connlog_enqueue_batch must have a connect_time or a disconnect_time")));
	if (connect_time != CL_NO_TIME && disconnect_time != CL_NO_TIME &&
		connect_time != disconnect_time &&
		!(ev.flags & CL_HAS_CONNECTION_ID))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an element of connlog_enqueue_batch without a connection_id must not have both a connect_time and a later disconnect_time"),
				 errdetail("Events without a connection_id are never merged, so such an element cannot become one row.")));

	/*
	 * code goes with the disconnect, or with the connect of an element that
	 * has none: a web event's HTTP status, which coder gives with the event's
	 * only time
	 */
	has_code = !nulls[BATCH_CODE_VALID][i] &&
		DatumGetBool(values[BATCH_CODE_VALID][i]) &&
		!nulls[BATCH_CODE][i];
	if (has_code && disconnect_time == CL_NO_TIME)
	{
		ev.flags |= CL_HAS_CODE;
		ev.code = DatumGetInt32(values[BATCH_CODE][i]);
	}

	/* the connect, unless the element is a standalone disconnect */
	if (connect_time != CL_NO_TIME && connect_time != disconnect_time)
	{
		ev.event_time = connect_time;
		ev.status = CL_STATUS_CONNECTED;
		batch_append(recs, &ev);
		(*nrecs)++;
	}
	if (disconnect_time == CL_NO_TIME)
		return;

	/* the disconnect, which also carries code and disconnect_reason */
	if (has_code)
	{
		ev.flags |= CL_HAS_CODE;
		ev.code = DatumGetInt32(values[BATCH_CODE][i]);
	}
	if (batch_text_present(values[BATCH_DISCONNECT_REASON][i],
						   nulls[BATCH_DISCONNECT_REASON][i]))
	{
		ev.flags |= CL_HAS_REASON;
		set_text(DatumGetTextPP(values[BATCH_DISCONNECT_REASON][i]),
				 "disconnect_reason", &ev.disconnect_reason);
	}
	ev.event_time = disconnect_time;
	ev.status = CL_STATUS_DISCONNECTED;
	batch_append(recs, &ev);
	(*nrecs)++;
}

Datum
connlog_enqueue_batch(PG_FUNCTION_ARGS)
{
	Datum	   *values[BATCH_NARGS];
	bool	   *nulls[BATCH_NARGS];
	int			n;
	StringInfoData recs;
	uint32		nrecs = 0;
	BatchElement elem;
	ErrorContextCallback callback;
	bool		wal = connlog_durability != CL_DURABILITY_MEMORY;

	check_can_enqueue();
	n = batch_arrays(fcinfo, values, nulls);
	initStringInfo(&recs);
	callback.callback = batch_element_context;
	callback.arg = &elem;
	callback.previous = error_context_stack;
	error_context_stack = &callback;
	for (int i = 0; i < n; i++)
	{
		elem.index = i + 1;
		batch_element(values, nulls, i, &recs, &nrecs);
	}
	error_context_stack = callback.previous;

	if (nrecs == 0)
		PG_RETURN_INT64(0);
	if (!connlog_ring_entries_fit((uint64) recs.len, nrecs, wal))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%u connection log events do not fit in the connlog ring at once",
						nrecs),
				 errdetail("They need more than connlog.ring_size, %d kB.",
						   connlog_ring_size_kb),
				 errhint("Call connlog_enqueue_batch with fewer elements.")));
	store_events(recs.data, (uint32) recs.len, nrecs, NULL, wal);
	PG_RETURN_INT64((int64) nrecs);
}
