/*-------------------------------------------------------------------------
 *
 * connlog_fuzz.c
 *		libFuzzer target for the record codec and merge rules of batch.c.
 *
 * Every input is used twice.  First as raw bytes, whole and cut into
 * 2-byte length-prefixed chunks, each handed to cl_decode() from an
 * exactly-sized heap copy so that ASan flags any read past the record.
 * Then as a script that builds events from small pools of keys (so that
 * merges are common), now and then deliberately malformed or oversized.
 * Each event must round-trip through cl_encode()/cl_decode() or be
 * rejected as the model predicts, and every event that decodes must be
 * refused by cl_event_refused() exactly when a model of connlog_enqueue's
 * rules says so.  The valid ones go into small batches, cut where the
 * script says or when full.  The model is the table itself: rows upserted
 * one at a time the way the worker's upsert does (plans.c).  Each
 * batch's entries must be the rows its events make upserted one by one
 * into an empty table, and the batches' rows upserted batch after batch
 * must leave the table all the events one by one leave: where the batch
 * boundaries fall must not matter.  A violated invariant prints what
 * failed and aborts.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -DCONNLOG_STANDALONE
 *		  -Isrc fuzz/connlog_fuzz.c src/batch.c   (fuzz/run does this)
 * fuzz/selftest.c includes this file to run the same checks without
 * libFuzzer.
 *
 * IDENTIFICATION
 *	  fuzz/connlog_fuzz.c
 *
 *-------------------------------------------------------------------------
 */
#include "batch.h"

#include <stdio.h>
#include <string.h>

/* Events per script; enough to fill any batch the script can ask for */
#define MAX_EVENTS		64

#define CHECK(cond) \
	do { \
		if (!(cond)) \
			fail(__LINE__, #cond); \
	} while (0)

int			LLVMFuzzerTestOneInput(const uint8 *data, size_t size);

/*
 * Small key pools so that merges are common: ids differing only in their
 * first or last byte, and the nil UUID, which an absent connection_id
 * decodes to but must still never match.
 */
static const uint8 conn_pool[4][16] = {{0}, {1}, {[15] = 1}, {1,[15] = 1}};
static const uint8 ws_pool[2][16] = {{7}, {7,[15] = 7}};
static const char *const agent_pool[4] = {"", "a", "ab", "main"};

/*
 * Keys of extra, in jsonb's order (shorter first, then bytewise); "id" is
 * one of connlog's own columns, which enqueue refuses as a key.
 */
#define NUM_EXTRA_KEYS	5
static const char *const extra_keys[NUM_EXTRA_KEYS] = {
	"a", "b", "cs", "id", "xyz"
};

/* Room for one event's extra: every key with a value of up to 15 bytes */
#define EXTRA_BUF		(NUM_EXTRA_KEYS * (1 + 3 + 1 + 2 + 15))

/* Source of text bytes; big enough for any length a script can pick */
static char pattern[65536 + 256];

static void
fail(int line, const char *what)
{
	fprintf(stderr, "connlog_fuzz.c:%d: invariant violated: %s\n", line, what);
	abort();
}

/* malloc exactly len bytes (never 0, which may return NULL) and copy */
static char *
dup_exact(const void *src, size_t len)
{
	char	   *p = malloc(len > 0 ? len : 1);

	CHECK(p != NULL);
	memcpy(p, src, len);
	return p;
}

static bool
text_equal(ClText a, ClText b)
{
	return (a.data == NULL) == (b.data == NULL) && a.len == b.len &&
		(a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

static bool
event_equal(const ClEvent *a, const ClEvent *b)
{
	return a->event_time == b->event_time &&
		memcmp(a->id, b->id, 16) == 0 &&
		memcmp(a->organization_id, b->organization_id, 16) == 0 &&
		memcmp(a->workspace_owner_id, b->workspace_owner_id, 16) == 0 &&
		memcmp(a->workspace_id, b->workspace_id, 16) == 0 &&
		memcmp(a->connection_id, b->connection_id, 16) == 0 &&
		memcmp(a->user_id, b->user_id, 16) == 0 &&
		a->flags == b->flags && a->type == b->type &&
		a->status == b->status && a->ip_family == b->ip_family &&
		a->ip_bits == b->ip_bits &&
		memcmp(a->ip_addr, b->ip_addr, 16) == 0 &&
		a->code == b->code &&
		text_equal(a->workspace_name, b->workspace_name) &&
		text_equal(a->agent_name, b->agent_name) &&
		text_equal(a->user_agent, b->user_agent) &&
		text_equal(a->slug_or_port, b->slug_or_port) &&
		text_equal(a->disconnect_reason, b->disconnect_reason) &&
		text_equal(a->type_text, b->type_text);
}

/* a text connlog_enqueue could have been given: no NUL byte */
static bool
model_text_ok(ClText t, bool optional)
{
	for (uint16 i = 0; i < t.len; i++)
		if (t.data[i] == '\0')
			return false;
	return !optional || t.len > 0;
}

static bool
model_uuid_set(const uint8 *u)
{
	for (int i = 0; i < 16; i++)
		if (u[i] != 0)
			return true;
	return false;
}

/*
 * The sixteen columns connlog_enqueue has an argument for, which no key of
 * extra may name.  A damaged record can hold any key, not only the pool's.
 */
static const char *const own_columns[] = {
	"id", "connect_time", "organization_id", "workspace_owner_id",
	"workspace_id", "workspace_name", "agent_name", "type", "ip", "code",
	"user_agent", "user_id", "slug_or_port", "connection_id",
	"disconnect_time", "disconnect_reason"
};

static bool
model_own_column(ClText key)
{
	for (int i = 0; i < (int) (sizeof(own_columns) / sizeof(own_columns[0])); i++)
		if (strlen(own_columns[i]) == key.len &&
			memcmp(own_columns[i], key.data, key.len) == 0)
			return true;
	return false;
}

/*
 * An extra enqueue makes: no key is one of connlog's own columns, no key
 * or value holds a NUL byte.  Walks the entries without batch.c's help:
 * key length, key, kind, value length, value.
 */
static bool
model_extra_ok(const ClEvent *ev)
{
	const char *p = ev->extra;
	const char *end;

	if (p == NULL)
		return true;
	end = p + ev->extra_len;
	while (p < end)
	{
		uint8		klen = (uint8) p[0];
		ClText		key = {p + 1, klen};
		uint16		vlen;
		ClText		value;

		memcpy(&vlen, p + 2 + klen, 2);
		value.data = p + 4 + klen;
		value.len = vlen;
		if (model_own_column(key) ||
			!model_text_ok(key, false) || !model_text_ok(value, false))
			return false;
		p = value.data + vlen;
	}
	return true;
}

/*
 * The model of cl_event_refused(): would connlog_enqueue have made this
 * decoded event?  Its time is a finite timestamptz, optional fields are
 * present only with a value (a UUID other than nil, a text not empty), a
 * type given as text is 1 to CL_MAX_TYPE_LEN bytes, no text holds a NUL
 * byte.
 */
static bool
model_enqueue_accepts(const ClEvent *ev)
{
	return ev->event_time >= CL_MIN_EVENT_TIME &&
		ev->event_time < CL_END_EVENT_TIME &&
		(!(ev->flags & CL_HAS_CONNECTION_ID) || model_uuid_set(ev->connection_id)) &&
		(!(ev->flags & CL_HAS_USER_ID) || model_uuid_set(ev->user_id)) &&
		(!(ev->flags & CL_HAS_USER_AGENT) || model_text_ok(ev->user_agent, true)) &&
		(!(ev->flags & CL_HAS_SLUG_OR_PORT) || model_text_ok(ev->slug_or_port, true)) &&
		(!(ev->flags & CL_HAS_REASON) || model_text_ok(ev->disconnect_reason, true)) &&
		(!(ev->flags & CL_HAS_TYPE_TEXT) ||
		 (model_text_ok(ev->type_text, true) &&
		  ev->type_text.len <= CL_MAX_TYPE_LEN)) &&
		model_text_ok(ev->workspace_name, false) &&
		model_text_ok(ev->agent_name, false) &&
		model_extra_ok(ev);
}

/*
 * Decode untrusted bytes.  Whatever decodes must be canonical (encoding
 * it again gives the same bytes back), and cl_batch_add() must accept
 * exactly what cl_decode() accepts.  b may be NULL to skip the batch.
 */
static void
decode_raw(const void *data, size_t len, ClBatch *b)
{
	char	   *rec = dup_exact(data, len);
	ClEvent		ev;
	bool		ok = cl_decode(rec, len, &ev);

	if (ok)
	{
		char	   *again = dup_exact(rec, len);

		CHECK(cl_encoded_size(&ev) == len);
		memset(again, 0, len);
		CHECK(cl_encode(&ev, len, again) == len);
		CHECK(memcmp(again, rec, len) == 0);
		free(again);
		CHECK((cl_event_refused(&ev) == NULL) == model_enqueue_accepts(&ev));
	}
	if (b != NULL)
	{
		if (cl_batch_full(b))
			cl_batch_reset(b, 0);
		CHECK(cl_batch_add(b, rec, len) == ok);
	}
	free(rec);
}

/* ---------------------------------------------------------------------
 * Scripts
 * ---------------------------------------------------------------------
 */
typedef struct Script
{
	const uint8 *p;
	const uint8 *end;
} Script;

/* Next script byte; an exhausted script reads as zeros */
static uint8
next(Script *s)
{
	return s->p < s->end ? *s->p++ : 0;
}

/* A text mostly short (often empty), now and then up to ~64kB */
static ClText
gen_text(Script *s)
{
	uint8		l = next(s);
	ClText		t;

	t.data = pattern + next(s);
	t.len = l < 0xF0 ? l % 24 : (uint16) ((l & 0x0F) << 12 | next(s) << 4);
	return t;
}

/*
 * Build event number serial from the script.  The serial goes into the
 * event's id, so a batch entry's winning record names its event.  Returns
 * false if the event was deliberately made invalid (ignoring its size,
 * which the caller checks).
 */
static bool
gen_event(Script *s, uint32 serial, ClEvent *ev, char *extra_buf)
{
	uint8		key = next(s);
	uint8		mode = next(s);
	uint8		opt = next(s);
	int			bad = next(s) >= 240 ? 1 + next(s) % 7 : 0;
	const char *agent = agent_pool[(key >> 5) & 3];
	bool		offpool = (key & 0x80) && (opt & 0x80);

	memset(ev, 0, sizeof(ClEvent));
	memcpy(ev->id, &serial, sizeof(serial));
	memcpy(ev->organization_id, pattern + next(s), 16);
	memcpy(ev->workspace_owner_id, pattern + next(s), 16);
	/* now and then ids off the pools, so any id bytes get round-tripped */
	memcpy(ev->workspace_id,
		   offpool ? (uint8 *) pattern + next(s) : ws_pool[(key >> 4) & 1],
		   16);
	if (key & 3)
	{
		ev->flags |= CL_HAS_CONNECTION_ID;
		memcpy(ev->connection_id,
		   offpool ? (uint8 *) pattern + next(s) : conn_pool[(key >> 2) & 3],
			   16);
	}
	ev->status = mode & 1;
	ev->type = (mode >> 1) % CL_NUM_TYPES;
	if (mode & 0x80)
	{
		uint64		t = 0;

		for (int i = 0; i < 8; i++)
			t = t << 8 | next(s);
		ev->event_time = (int64) t;
	}
	else
		ev->event_time = 1000 + (next(s) & 15); /* ties are common */

	ev->flags |= opt & CL_HAS_ALL & ~CL_HAS_CONNECTION_ID;
	if (ev->flags & CL_HAS_USER_ID)
		memcpy(ev->user_id, pattern + next(s), 16);
	if (ev->flags & CL_HAS_CODE)
		for (int i = 0; i < 4; i++)
			ev->code = (int32) ((uint32) ev->code << 8 | next(s));
	if (ev->flags & CL_HAS_IP)
	{
		ev->ip_family = (next(s) & 1) ? 4 : 6;
		ev->ip_bits = next(s) % (ev->ip_family == 4 ? 33 : 129);
		memcpy(ev->ip_addr, pattern + next(s), ev->ip_family == 4 ? 4 : 16);
	}
	if (ev->flags & CL_HAS_USER_AGENT)
		ev->user_agent = gen_text(s);
	if (ev->flags & CL_HAS_SLUG_OR_PORT)
		ev->slug_or_port = gen_text(s);
	if (ev->flags & CL_HAS_REASON)
		ev->disconnect_reason = gen_text(s);
	if (ev->flags & CL_HAS_TYPE_TEXT)
	{
		/* around CL_MAX_TYPE_LEN, now and then empty or with a NUL byte */
		ev->type = 0;
		ev->type_text.data = pattern + next(s);
		ev->type_text.len = next(s) % (CL_MAX_TYPE_LEN + 8);
	}
	ev->workspace_name = gen_text(s);
	ev->agent_name.data = agent;
	ev->agent_name.len = (uint16) strlen(agent);
	if (mode & 0x40)
	{
		/* a subset of the pool's keys, in order, each with a value */
		uint8		keys = next(s);
		char	   *p = extra_buf;

		for (int k = 0; k < NUM_EXTRA_KEYS; k++)
		{
			uint8		klen = (uint8) strlen(extra_keys[k]);
			uint8		kind = next(s) % 4;
			uint16		vlen = next(s) % 16;

			if (!(keys & (1 << k)))
				continue;
			*p++ = (char) klen;
			memcpy(p, extra_keys[k], klen);
			p += klen;
			*p++ = (char) kind;
			memcpy(p, &vlen, 2);
			p += 2;
			memcpy(p, pattern + next(s), vlen);
			p += vlen;
		}
		ev->extra = extra_buf;
		ev->extra_len = (uint32) (p - extra_buf);
		if (ev->extra_len == 0)
			ev->extra = NULL;
	}

	switch (bad)
	{
		case 1:
			ev->event_time = CL_NO_TIME;
			break;
		case 2:
			ev->type = CL_NUM_TYPES + (mode >> 4);
			break;
		case 3:
			ev->status = CL_STATUS_DISCONNECTED + 1 + (mode >> 4);
			break;
		case 4:
			/* a type given as text carries no index */
			ev->flags |= CL_HAS_TYPE_TEXT;
			ev->type = 1 + (mode >> 1) % (CL_NUM_TYPES - 1);
			if (ev->type_text.data == NULL)
				ev->type_text.data = pattern;
			break;
		case 5:
			/* the server's PGSQL_AF_INET, which must be mapped to 4 */
			ev->flags |= CL_HAS_IP;
			ev->ip_family = 2;
			break;
		case 6:
			ev->flags |= CL_HAS_IP;
			ev->ip_family = (mode & 2) ? 4 : 6;
			ev->ip_bits = (ev->ip_family == 4 ? 33 : 129) + (mode >> 5);
			break;
		case 7:
			if (ev->extra_len > 0 && (mode & 0x20))
			{
				/* a key of extra empty or too long to name a column */
				extra_buf[0] = (char) ((mode & 0x10) ? 0 :
									   CL_MAX_EXTRA_KEY + 1);
				break;
			}
			ev->flags &= ~CL_HAS_IP;
			ev->ip_family = 4;
			break;
	}
	return bad == 0 && ev->event_time != CL_NO_TIME;
}

/*
 * Damage a valid record.  Cut short, even with its length word patched to
 * match (what a torn write would look like), it must be rejected; with a
 * byte flipped it must be rejected or still be canonical.
 */
static void
probe_damaged(const char *rec, size_t len, Script *s)
{
	size_t		cut = len * next(s) / 256;
	uint8		x = next(s);
	char	   *p = dup_exact(rec, cut);
	ClEvent		ev;

	if (cut >= 4)
	{
		uint32		cut32 = (uint32) cut;

		memcpy(p, &cut32, 4);
	}
	CHECK(!cl_decode(p, cut, &ev));
	free(p);

	if (x != 0)
	{
		p = dup_exact(rec, len);
		p[((size_t) next(s) << 8 | x) % len] ^= x;
		decode_raw(p, len, NULL);
		free(p);
	}
}

/* ---------------------------------------------------------------------
 * The model: connection_logs under the worker's upsert
 * ---------------------------------------------------------------------
 */

/* The conflict key as the table defines it; NULL ids never match */
static bool
model_same_key(const ClEvent *a, const ClEvent *b)
{
	return (a->flags & CL_HAS_CONNECTION_ID) &&
		(b->flags & CL_HAS_CONNECTION_ID) &&
		memcmp(a->connection_id, b->connection_id, 16) == 0 &&
		memcmp(a->workspace_id, b->workspace_id, 16) == 0 &&
		text_equal(a->agent_name, b->agent_name);
}

/*
 * A row of connection_logs, or one the worker upserts: the event that
 * supplies its fields (code and disconnect_reason included), its span,
 * and how many events it holds.  event_time and status are not columns,
 * but they follow id (they are the base event's) and are compared too.
 */
typedef struct Row
{
	ClEvent		ev;
	int64		connect_time;
	int64		disconnect_time;	/* CL_NO_TIME is NULL */
	uint32		nevents;
	/* the application's columns: each pool key's kind and value */
	bool		has[NUM_EXTRA_KEYS];
	uint8		kind[NUM_EXTRA_KEYS];
	ClText		value[NUM_EXTRA_KEYS];
} Row;

/* Fill r's columns from ev's extra, which holds keys of the pool only */
static void
row_columns(Row *r, const ClEvent *ev)
{
	const char *p = ev->extra;
	const char *end;

	memset(r->has, 0, sizeof(r->has));
	if (p == NULL)
		return;
	end = p + ev->extra_len;
	while (p < end)
	{
		uint8		klen = (uint8) p[0];
		uint16		vlen;
		int			k;

		for (k = 0; k < NUM_EXTRA_KEYS; k++)
			if (strlen(extra_keys[k]) == klen &&
				memcmp(extra_keys[k], p + 1, klen) == 0)
				break;
		CHECK(k < NUM_EXTRA_KEYS && !r->has[k]);
		memcpy(&vlen, p + 2 + klen, 2);
		r->has[k] = true;
		r->kind[k] = (uint8) p[1 + klen];
		r->value[k].data = p + 4 + klen;
		r->value[k].len = vlen;
		p += 4 + klen + vlen;
	}
	CHECK(p == end);
}

typedef struct Table
{
	Row			rows[MAX_EVENTS];	/* in the order they were inserted */
	int			n;
} Table;

/*
 * Upsert r into t exactly as plans.c's upsert_sql does: insert it, or
 * on conflict keep the row but for connect_time = LEAST, disconnect_time
 * = GREATEST (which ignores NULL, as CL_NO_TIME = INT64_MIN does here),
 * code, disconnect_reason and each application column (a key of extra) =
 * COALESCE(old, new).
 */
static void
model_upsert(Table *t, const Row *r)
{
	for (int i = 0; i < t->n; i++)
	{
		Row		   *o = &t->rows[i];

		if (!model_same_key(&o->ev, &r->ev))
			continue;
		if (r->connect_time < o->connect_time)
			o->connect_time = r->connect_time;
		if (r->disconnect_time > o->disconnect_time)
			o->disconnect_time = r->disconnect_time;
		if (!(o->ev.flags & CL_HAS_CODE) && (r->ev.flags & CL_HAS_CODE))
		{
			o->ev.code = r->ev.code;
			o->ev.flags |= CL_HAS_CODE;
		}
		if (!(o->ev.flags & CL_HAS_REASON) && (r->ev.flags & CL_HAS_REASON))
		{
			o->ev.disconnect_reason = r->ev.disconnect_reason;
			o->ev.flags |= CL_HAS_REASON;
		}
		/* an application column: COALESCE(old, new) */
		for (int k = 0; k < NUM_EXTRA_KEYS; k++)
			if (!o->has[k] && r->has[k])
			{
				o->has[k] = true;
				o->kind[k] = r->kind[k];
				o->value[k] = r->value[k];
			}
		o->nevents += r->nevents;
		return;
	}
	CHECK(t->n < MAX_EVENTS);
	t->rows[t->n++] = *r;
}

/* The row one event makes on its own */
static Row
event_row(const ClEvent *ev)
{
	Row			r;

	r.ev = *ev;
	r.connect_time = ev->event_time;
	r.disconnect_time = ev->status == CL_STATUS_DISCONNECTED ?
		ev->event_time : CL_NO_TIME;
	r.nevents = 1;
	row_columns(&r, ev);
	return r;
}

/* The row the worker upserts for a batch entry (see rows.c) */
static Row
entry_row(const ClBatch *b, const ClEntry *e)
{
	Row			r;

	cl_batch_entry_event(b, e, &r.ev);
	r.connect_time = e->connect_time;
	r.disconnect_time = e->disconnect_time;
	r.nevents = e->nevents;
	row_columns(&r, &r.ev);
	return r;
}

static bool
row_equal(const Row *a, const Row *b)
{
	for (int k = 0; k < NUM_EXTRA_KEYS; k++)
		if (a->has[k] != b->has[k] ||
			(a->has[k] && (a->kind[k] != b->kind[k] ||
						   !text_equal(a->value[k], b->value[k]))))
			return false;
	return event_equal(&a->ev, &b->ev) &&
		a->connect_time == b->connect_time &&
		a->disconnect_time == b->disconnect_time &&
		a->nevents == b->nevents;
}

/* events[0 .. n) upserted one at a time into an empty table */
static void
model_sequential(Table *t, const ClEvent *events, int n)
{
	t->n = 0;
	for (int i = 0; i < n; i++)
	{
		Row			r = event_row(&events[i]);

		model_upsert(t, &r);
	}
}

static void
check_table(const Table *got, const Table *want)
{
	CHECK(got->n == want->n);
	for (int i = 0; i < got->n; i++)
		CHECK(row_equal(&got->rows[i], &want->rows[i]));
}

/*
 * Check a batch built from events[0 .. n), in that order: its entries, in
 * order, must be the rows that upserting the events one at a time into an
 * empty table makes (the merge rules' invariant, see batch.c).
 */
static void
check_batch(const ClBatch *b, const ClEvent *events, int n)
{
	static Table want;
	static Table got;

	CHECK(n <= MAX_EVENTS);
	CHECK(b->nevents == (uint64) n);
	CHECK(b->nentries <= b->capacity);
	model_sequential(&want, events, n);
	got.n = b->nentries;
	for (int k = 0; k < b->nentries; k++)
		got.rows[k] = entry_row(b, &b->entries[k]);
	check_table(&got, &want);
}

/* Encode ev and add it to b, which must accept it iff valid */
static void
add_event(ClBatch *b, const ClEvent *ev, bool valid)
{
	size_t		len = cl_encoded_size(ev);
	char	   *rec = malloc(len);
	int			nentries = b->nentries;
	uint64		nevents = b->nevents;

	CHECK(rec != NULL);
	CHECK(cl_encode(ev, len, rec) == len);
	CHECK(cl_batch_add(b, rec, len) == valid);
	if (!valid)
		CHECK(b->nentries == nentries && b->nevents == nevents);
	free(rec);					/* the batch must have copied it */
}

/*
 * Batch-boundary independence: batches[0 .. nb) hold events[0 .. n) in
 * order, cut wherever the script said.  Upserting their rows batch after
 * batch must leave the table that the events one at a time leave.
 */
static void
check_split(ClBatch *const *batches, int nb, const ClEvent *events, int n)
{
	static Table want;
	static Table got;
	uint64		added = 0;

	model_sequential(&want, events, n);
	got.n = 0;
	for (int i = 0; i < nb; i++)
	{
		for (int k = 0; k < batches[i]->nentries; k++)
		{
			Row			r = entry_row(batches[i], &batches[i]->entries[k]);

			model_upsert(&got, &r);
		}
		added += batches[i]->nevents;
	}
	CHECK(added == (uint64) n);
	check_table(&got, &want);
}

/*
 * Generate events from the script and add the valid ones to batches of
 * one capacity, starting a new batch when the current one is full or the
 * script cuts it.  Each batch is checked against the model, then all of
 * them together for batch-boundary independence.
 */
static void
run_script(const uint8 *data, size_t size)
{
	Script		s = {data, data + size};
	ClEvent		events[MAX_EVENTS];
	ClBatch    *batches[MAX_EVENTS];
	int			first[MAX_EVENTS];	/* each batch's first event */
	static char extra_bufs[MAX_EVENTS + 1][EXTRA_BUF];
	int			n = 0;
	int			nb = 1;
	int			capacity = 1 + next(&s) % 8;

	batches[0] = cl_batch_create(capacity);
	first[0] = 0;
	for (uint32 serial = 0; s.p < s.end && n < MAX_EVENTS; serial++)
	{
		ClBatch    *b = batches[nb - 1];
		ClEvent		ev;
		ClEvent		dec;
		bool		valid = gen_event(&s, serial, &ev, extra_bufs[n]);
		bool		cut = next(&s) < 48;
		size_t		len = cl_encoded_size(&ev);
		char	   *rec = malloc(len);

		CHECK(rec != NULL);
		CHECK(cl_encode(&ev, len, rec) == len);
		CHECK(cl_record_length(rec) == len);
		valid = valid && len <= CL_MAX_RECORD;
		CHECK(cl_decode(rec, len, &dec) == valid);
		if (valid)
		{
			CHECK(event_equal(&ev, &dec));
			CHECK(dec.extra_len == ev.extra_len &&
				  (ev.extra_len == 0 ||
				   memcmp(dec.extra, ev.extra, ev.extra_len) == 0));
			CHECK((cl_event_refused(&dec) == NULL) == model_enqueue_accepts(&dec));
			probe_damaged(rec, len, &s);
		}
		free(rec);
		if (valid && b->nevents > 0 && (cut || cl_batch_full(b)))
		{
			check_batch(b, events + first[nb - 1], n - first[nb - 1]);
			first[nb] = n;
			b = batches[nb++] = cl_batch_create(capacity);
		}
		add_event(b, &ev, valid);
		if (valid)
			events[n++] = ev;
	}
	check_batch(batches[nb - 1], events + first[nb - 1], n - first[nb - 1]);
	check_split(batches, nb, events, n);

	/* A reset batch must forget everything, its hash slots included. */
	cl_batch_reset(batches[0], 1);
	CHECK(batches[0]->nentries == 0 && batches[0]->nevents == 0 &&
		  !cl_batch_full(batches[0]));
	for (int i = first[nb - 1]; i < n; i++)
	{
		CHECK(!cl_batch_full(batches[0]));
		add_event(batches[0], &events[i], true);
	}
	check_batch(batches[0], events + first[nb - 1], n - first[nb - 1]);
	for (int i = 0; i < nb; i++)
		cl_batch_free(batches[i]);
}

int
LLVMFuzzerTestOneInput(const uint8 *data, size_t size)
{
	ClBatch    *b = cl_batch_create(4);

	if (pattern[1] == 0)
		for (size_t i = 0; i < sizeof(pattern); i++)
			pattern[i] = (char) (i * 31 + (i >> 8) + 1);

	decode_raw(data, size, b);
	for (size_t pos = 0; pos + 2 <= size;)
	{
		uint16		len;

		memcpy(&len, data + pos, 2);
		pos += 2;
		if (len > size - pos)
			len = (uint16) (size - pos);
		decode_raw(data + pos, len, b);
		pos += len;
	}
	cl_batch_free(b);

	run_script(data, size);
	return 0;
}
