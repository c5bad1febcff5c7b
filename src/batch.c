/*-------------------------------------------------------------------------
 *
 * batch.c
 *		Encode, decode and merge connection log events.
 *
 * Plain C with no server calls (see batch.h), so that the fuzzer can feed
 * it arbitrary bytes: cl_decode() treats its input as hostile, checking
 * every length against the record's end before it is used.
 *
 * Merge rules: within a batch, events with the same conflict key
 * (connection_id, workspace_id, agent_name) become one row, exactly what
 * upserting them one at a time in ring order through the worker's upsert
 * (plans.c, upsert_sql) would leave: the first event (the base) supplies the
 * fields the upsert does not update; code, disconnect_reason and each key of
 * extra are the first non-NULL ones; connect_time is the earliest time of any
 * of the events, a disconnect's own included, and disconnect_time the latest
 * disconnect time; a web event (no connection_id) gets a row of its own.  Why,
 * and what a retried batch changes: doc/internals.md, "Merging".
 *
 * IDENTIFICATION
 *	  src/batch.c
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_STANDALONE
#include "postgres.h"
#endif

#include <string.h>

#include "batch.h"

const char *const connlog_type_labels[CL_NUM_TYPES] = {
	"ssh", "vscode", "jetbrains", "reconnecting_pty", "workspace_app",
	"port_forwarding", "tunnel"
};

const char *const connlog_status_labels[2] = {"connected", "disconnected"};

/* Sequential writer and bounds-checked reader over a record */
typedef struct Cursor
{
	const char *p;
	const char *end;
} Cursor;

static bool
take(Cursor *c, void *dst, size_t n)
{
	if ((size_t) (c->end - c->p) < n)
		return false;
	memcpy(dst, c->p, n);
	c->p += n;
	return true;
}

static bool
take_text(Cursor *c, ClText *t, uint16 len)
{
	if ((size_t) (c->end - c->p) < len)
		return false;
	t->data = c->p;
	t->len = len;
	c->p += len;
	return true;
}

/* An optional text field, present if flag is in flags: length, then bytes */
static bool
take_optional_text(Cursor *c, uint8 flags, uint8 flag, ClText *t)
{
	uint16		len;

	if (!(flags & flag))
		return true;
	return take(c, &len, 2) && take_text(c, t, len);
}

static char *
put(char *p, const void *src, size_t n)
{
	memcpy(p, src, n);
	return p + n;
}

/* An optional text field, written if flag is in flags: length, then bytes */
static inline char *
put_optional_text(char *p, uint8 flags, uint8 flag, const ClText *t)
{
	if (!(flags & flag))
		return p;
	p = put(p, &t->len, 2);
	return put(p, t->data, t->len);
}

static int
ip_addr_size(uint8 family)
{
	return family == 4 ? 4 : 16;
}

/*
 * Bytes cl_encode() will write for ev.  Text lengths must already fit in
 * uint16, and so must extra's; the caller checks the total against
 * CL_MAX_RECORD.
 */
size_t
cl_encoded_size(const ClEvent *ev)
{
	size_t		n = CL_RECORD_FIXED_SIZE;

	if (ev->flags & CL_HAS_CONNECTION_ID)
		n += 16;
	if (ev->flags & CL_HAS_USER_ID)
		n += 16;
	if (ev->flags & CL_HAS_CODE)
		n += 4;
	if (ev->flags & CL_HAS_IP)
		n += ip_addr_size(ev->ip_family);
	if (ev->flags & CL_HAS_USER_AGENT)
		n += 2 + (size_t) ev->user_agent.len;
	if (ev->flags & CL_HAS_SLUG_OR_PORT)
		n += 2 + (size_t) ev->slug_or_port.len;
	if (ev->flags & CL_HAS_REASON)
		n += 2 + (size_t) ev->disconnect_reason.len;
	if (ev->flags & CL_HAS_TYPE_TEXT)
		n += 2 + (size_t) ev->type_text.len;
	if (ev->extra_len > 0)
		n += 2 + (size_t) ev->extra_len;
	n += (size_t) ev->workspace_name.len + ev->agent_name.len;
	return n;
}

/*
 * Write ev into buf.  len is cl_encoded_size(ev), which the caller needs
 * anyway to check the limit and size buf; passing it in keeps the hot path
 * from computing it twice.
 */
size_t
cl_encode(const ClEvent *ev, size_t len, char *buf)
{
	uint32		total = (uint32) len;
	char	   *p = buf;
	uint8		status = ev->status |
	(ev->extra_len > 0 ? CL_STATUS_HAS_EXTRA : 0);

	p = put(p, &total, 4);
	p = put(p, &ev->event_time, 8);
	p = put(p, ev->id, 16);
	p = put(p, ev->organization_id, 16);
	p = put(p, ev->workspace_owner_id, 16);
	p = put(p, ev->workspace_id, 16);
	p = put(p, &ev->flags, 1);
	p = put(p, &ev->type, 1);
	p = put(p, &status, 1);
	p = put(p, &ev->ip_family, 1);
	p = put(p, &ev->ip_bits, 1);
	p = put(p, &ev->workspace_name.len, 2);
	p = put(p, &ev->agent_name.len, 2);
	if (ev->flags & CL_HAS_CONNECTION_ID)
		p = put(p, ev->connection_id, 16);
	if (ev->flags & CL_HAS_USER_ID)
		p = put(p, ev->user_id, 16);
	if (ev->flags & CL_HAS_CODE)
		p = put(p, &ev->code, 4);
	if (ev->flags & CL_HAS_IP)
		p = put(p, ev->ip_addr, ip_addr_size(ev->ip_family));
	p = put_optional_text(p, ev->flags, CL_HAS_USER_AGENT, &ev->user_agent);
	p = put_optional_text(p, ev->flags, CL_HAS_SLUG_OR_PORT,
						  &ev->slug_or_port);
	p = put_optional_text(p, ev->flags, CL_HAS_REASON,
						  &ev->disconnect_reason);
	p = put_optional_text(p, ev->flags, CL_HAS_TYPE_TEXT, &ev->type_text);
	if (ev->extra_len > 0)
	{
		uint16		n = (uint16) ev->extra_len;

		p = put(p, &n, 2);
		p = put(p, ev->extra, ev->extra_len);
	}
	p = put(p, ev->workspace_name.data, ev->workspace_name.len);
	p = put(p, ev->agent_name.data, ev->agent_name.len);
	return (size_t) (p - buf);
}

/* The length word of a record; the caller guarantees 4 readable bytes. */
uint32
cl_record_length(const char *rec)
{
	uint32		len;

	memcpy(&len, rec, 4);
	return len;
}

/*
 * The next entry of an extra from *pos, which must be before end; moves
 * *pos past it.  Returns false, leaving *pos, if the bytes from *pos are
 * not one whole entry with a key of 1 to CL_MAX_EXTRA_KEY bytes and a
 * known kind.
 */
bool
cl_extra_next(const char **pos, const char *end, ClExtraItem *item)
{
	Cursor		c = {*pos, end};

	if (!take(&c, &item->key_len, 1) || item->key_len == 0 ||
		item->key_len > CL_MAX_EXTRA_KEY)
		return false;
	item->key = c.p;
	c.p += item->key_len;
	if (c.p > c.end || !take(&c, &item->kind, 1) ||
		item->kind > CL_EXTRA_JSON || !take(&c, &item->value_len, 2) ||
		(size_t) (c.end - c.p) < item->value_len)
		return false;
	item->value = c.p;
	c.p += item->value_len;
	*pos = c.p;
	return true;
}

/* jsonb's order of keys: the shorter first, then bytewise */
static int
key_cmp(const char *a, uint8 alen, const char *b, uint8 blen)
{
	if (alen != blen)
		return alen < blen ? -1 : 1;
	return memcmp(a, b, alen);
}

/*
 * Is extra[0 .. len) a sequence of whole entries, their keys in strictly
 * increasing order (so each key once)?
 */
static bool
extra_valid(const char *extra, size_t len)
{
	const char *p = extra;
	const char *end = extra + len;
	ClExtraItem prev = {0};
	ClExtraItem it;

	while (p < end)
	{
		if (!cl_extra_next(&p, end, &it) ||
			(prev.key != NULL &&
			 key_cmp(prev.key, prev.key_len, it.key, it.key_len) >= 0))
			return false;
		prev = it;
	}
	return true;
}

/*
 * Is key the name of one of the sixteen columns connlog_enqueue has an
 * argument for?  Those never come from extra.
 */
bool
cl_extra_reserved_key(const char *key, size_t len)
{
	static const char *const names[] = {
		"id", "connect_time", "organization_id", "workspace_owner_id",
		"workspace_id", "workspace_name", "agent_name", "type", "ip", "code",
		"user_agent", "user_id", "slug_or_port", "connection_id",
		"disconnect_time", "disconnect_reason"
	};

	for (int i = 0; i < (int) (sizeof(names) / sizeof(names[0])); i++)
		if (strlen(names[i]) == len && memcmp(names[i], key, len) == 0)
			return true;
	return false;
}

/*
 * Decode rec[0 .. len) into ev.  Returns false, leaving ev unspecified,
 * unless the bytes are exactly one well-formed record.
 */
bool
cl_decode(const char *rec, size_t len, ClEvent *ev)
{
	Cursor		c = {rec, rec + len};
	uint32		total;
	uint16		n;
	bool		has_extra;

	memset(ev, 0, sizeof(ClEvent));
	if (!take(&c, &total, 4) || total != len || len > CL_MAX_RECORD)
		return false;
	if (!take(&c, &ev->event_time, 8) ||
		!take(&c, ev->id, 16) ||
		!take(&c, ev->organization_id, 16) ||
		!take(&c, ev->workspace_owner_id, 16) ||
		!take(&c, ev->workspace_id, 16) ||
		!take(&c, &ev->flags, 1) ||
		!take(&c, &ev->type, 1) ||
		!take(&c, &ev->status, 1) ||
		!take(&c, &ev->ip_family, 1) ||
		!take(&c, &ev->ip_bits, 1) ||
		!take(&c, &ev->workspace_name.len, 2) ||
		!take(&c, &ev->agent_name.len, 2))
		return false;
	has_extra = (ev->status & CL_STATUS_HAS_EXTRA) != 0;
	ev->status &= ~CL_STATUS_HAS_EXTRA;
	if ((ev->flags & ~CL_HAS_ALL) != 0 ||
		ev->type >= ((ev->flags & CL_HAS_TYPE_TEXT) ? 1 : CL_NUM_TYPES) ||
		ev->status > CL_STATUS_DISCONNECTED ||
		ev->event_time == CL_NO_TIME)
		return false;
	if (ev->flags & CL_HAS_IP)
	{
		if ((ev->ip_family != 4 && ev->ip_family != 6) ||
			ev->ip_bits > (ev->ip_family == 4 ? 32 : 128))
			return false;
	}
	else if (ev->ip_family != 0 || ev->ip_bits != 0)
		return false;

	if ((ev->flags & CL_HAS_CONNECTION_ID) && !take(&c, ev->connection_id, 16))
		return false;
	if ((ev->flags & CL_HAS_USER_ID) && !take(&c, ev->user_id, 16))
		return false;
	if ((ev->flags & CL_HAS_CODE) && !take(&c, &ev->code, 4))
		return false;
	if ((ev->flags & CL_HAS_IP) &&
		!take(&c, ev->ip_addr, ip_addr_size(ev->ip_family)))
		return false;
	if (!take_optional_text(&c, ev->flags, CL_HAS_USER_AGENT,
							&ev->user_agent) ||
		!take_optional_text(&c, ev->flags, CL_HAS_SLUG_OR_PORT,
							&ev->slug_or_port) ||
		!take_optional_text(&c, ev->flags, CL_HAS_REASON,
							&ev->disconnect_reason) ||
		!take_optional_text(&c, ev->flags, CL_HAS_TYPE_TEXT,
							&ev->type_text))
		return false;
	if (has_extra)
	{
		ClText		extra;

		if (!take(&c, &n, 2) || n == 0 || !take_text(&c, &extra, n) ||
			!extra_valid(extra.data, extra.len))
			return false;
		ev->extra = extra.data;
		ev->extra_len = extra.len;
	}
	if (!take_text(&c, &ev->workspace_name, ev->workspace_name.len) ||
		!take_text(&c, &ev->agent_name, ev->agent_name.len))
		return false;
	return c.p == c.end;
}

static bool
uuid_is_nil(const uint8 *uuid)
{
	static const uint8 nil[16] = {0};

	return memcmp(uuid, nil, 16) == 0;
}

/* An optional text field connlog_enqueue stores: not empty, no NUL byte */
static bool
text_storable(ClText t)
{
	return t.len > 0 && memchr(t.data, '\0', t.len) == NULL;
}

/*
 * Would connlog_enqueue have accepted the event cl_decode() made of a
 * record?  cl_decode() accepts what the ring may hold; this adds what
 * enqueue itself guarantees of an event, so that one read back from
 * outside the ring (WAL, see replay.c) is held to the same rules: a finite
 * event_time in timestamptz's range, optional fields present only with a
 * value (a non-nil UUID, a non-empty text), a type of 1 to
 * CL_MAX_TYPE_LEN bytes, no NUL byte in any text (extra's keys and
 * values included), no key of extra that names one of connlog's own
 * columns.
 * Whether the texts are valid in the database's encoding is for the
 * caller to check.  Returns NULL if the event is acceptable, else what is
 * wrong with it (a static string).
 */
const char *
cl_event_refused(const ClEvent *ev)
{
	if (ev->event_time < CL_MIN_EVENT_TIME ||
		ev->event_time >= CL_END_EVENT_TIME)
		return "event_time is not a finite timestamp";
	if ((ev->flags & CL_HAS_CONNECTION_ID) && uuid_is_nil(ev->connection_id))
		return "connection_id is the nil UUID";
	if ((ev->flags & CL_HAS_USER_ID) && uuid_is_nil(ev->user_id))
		return "user_id is the nil UUID";
	if (((ev->flags & CL_HAS_USER_AGENT) && !text_storable(ev->user_agent)) ||
	((ev->flags & CL_HAS_SLUG_OR_PORT) && !text_storable(ev->slug_or_port)) ||
	  ((ev->flags & CL_HAS_REASON) && !text_storable(ev->disconnect_reason)))
		return "an optional text field is empty or contains a NUL byte";
	if ((ev->flags & CL_HAS_TYPE_TEXT) &&
	  (!text_storable(ev->type_text) || ev->type_text.len > CL_MAX_TYPE_LEN))
		return "type is empty, too long, or contains a NUL byte";
	if (memchr(ev->workspace_name.data, '\0', ev->workspace_name.len) != NULL ||
		memchr(ev->agent_name.data, '\0', ev->agent_name.len) != NULL)
		return "a text field contains a NUL byte";
	if (ev->extra_len > 0)
	{
		const char *p = ev->extra;
		ClExtraItem it;

		while (cl_extra_next(&p, ev->extra + ev->extra_len, &it))
		{
			if (memchr(it.key, '\0', it.key_len) != NULL ||
				memchr(it.value, '\0', it.value_len) != NULL)
				return "a key or value of extra contains a NUL byte";
			if (cl_extra_reserved_key(it.key, it.key_len))
				return "a key of extra names a column connlog_enqueue has an argument for";
		}
	}
	return NULL;
}

/*
 * Set ev's type to the len bytes at type (which the caller has checked
 * against CL_MAX_TYPE_LEN): the index of a known label, else the text,
 * which must outlive ev.
 */
void
cl_set_type(ClEvent *ev, const char *type, uint16 len)
{
	for (int i = 0; i < CL_NUM_TYPES; i++)
		if (strlen(connlog_type_labels[i]) == len &&
			memcmp(connlog_type_labels[i], type, len) == 0)
		{
			ev->type = (uint8) i;
			ev->flags &= ~CL_HAS_TYPE_TEXT;
			ev->type_text.data = NULL;
			ev->type_text.len = 0;
			return;
		}
	ev->type = 0;
	ev->flags |= CL_HAS_TYPE_TEXT;
	ev->type_text.data = type;
	ev->type_text.len = len;
}

/* ev's type, however it is encoded; points into ev's record or the labels */
ClText
cl_event_type(const ClEvent *ev)
{
	ClText		t;

	if (ev->flags & CL_HAS_TYPE_TEXT)
		return ev->type_text;
	t.data = connlog_type_labels[ev->type];
	t.len = (uint16) strlen(t.data);
	return t;
}

/* ---------------------------------------------------------------------
 * Batches
 * ---------------------------------------------------------------------
 */

/* FNV-1a over the conflict key */
static uint32
key_hash(const ClEvent *ev)
{
	uint64		h = UINT64_C(14695981039346656037);
	const uint8 *parts[3] = {ev->connection_id, ev->workspace_id,
	(const uint8 *) ev->agent_name.data};
	size_t		lens[3] = {16, 16, ev->agent_name.len};

	for (int i = 0; i < 3; i++)
		for (size_t j = 0; j < lens[i]; j++)
		{
			h ^= parts[i][j];
			h *= UINT64_C(1099511628211);
		}
	return (uint32) (h ^ (h >> 32));
}

static bool
same_key(const ClEvent *a, const ClEvent *b)
{
	return memcmp(a->connection_id, b->connection_id, 16) == 0 &&
		memcmp(a->workspace_id, b->workspace_id, 16) == 0 &&
		a->agent_name.len == b->agent_name.len &&
		memcmp(a->agent_name.data, b->agent_name.data, a->agent_name.len) == 0;
}

ClBatch *
cl_batch_create(int capacity)
{
	ClBatch    *b = cl_alloc0(sizeof(ClBatch));
	uint32		nslots = 16;

	while (nslots < (uint32) capacity * 2)
		nslots <<= 1;
	b->capacity = capacity;
	b->entries = cl_alloc(sizeof(ClEntry) * capacity);
	b->nslots = nslots;
	b->slots = cl_alloc(sizeof(int32) * nslots);
	b->arena_size = 256 * (size_t) capacity;
	b->arena = cl_alloc(b->arena_size);
	cl_batch_reset(b, 0);
	return b;
}

void
cl_batch_reset(ClBatch *b, uint64 seq_start)
{
	b->nentries = 0;
	b->arena_used = 0;
	b->nevents = 0;
	b->seq_start = b->seq_end = seq_start;
	memset(b->slots, -1, sizeof(int32) * b->nslots);
}

void
cl_batch_free(ClBatch *b)
{
	cl_free(b->entries);
	cl_free(b->slots);
	cl_free(b->arena);
	cl_free(b);
}

bool
cl_batch_full(const ClBatch *b)
{
	return b->nentries >= b->capacity;
}

/* Make room for len more bytes in the arena; it may move. */
static void
arena_reserve(ClBatch *b, size_t len)
{
	if (b->arena_used + len > b->arena_size)
	{
		while (b->arena_used + len > b->arena_size)
			b->arena_size *= 2;
		b->arena = cl_realloc(b->arena, b->arena_size);
	}
}

/*
 * Copy a record or a merged-in reason into the arena, growing it as
 * needed; returns its offset.  The source must not be in the arena.
 */
static uint32
arena_copy(ClBatch *b, const char *src, size_t len)
{
	uint32		off = (uint32) b->arena_used;

	arena_reserve(b, len);
	memcpy(b->arena + off, src, len);
	b->arena_used += len;
	return off;
}

/*
 * The event an entry stands for: its base event, with the code,
 * disconnect_reason and keys of extra of later events filled in where the
 * base had none.
 */
void
cl_batch_entry_event(const ClBatch *b, const ClEntry *e, ClEvent *ev)
{
	const char *rec = b->arena + e->rec_off;
	uint8		merged;

	/* cannot fail: the record was validated by cl_batch_add */
	(void) cl_decode(rec, cl_record_length(rec), ev);
	merged = e->flags & ~ev->flags;
	if (merged & CL_HAS_CODE)
		ev->code = e->code;
	if (merged & CL_HAS_REASON)
	{
		ev->disconnect_reason.data = b->arena + e->reason_off;
		ev->disconnect_reason.len = e->reason_len;
	}
	if (e->extra_len > 0)
	{
		ev->extra = b->arena + e->extra_off;
		ev->extra_len = e->extra_len;
	}
	ev->flags = e->flags;
}

/*
 * Merge the extra of a later event of entry e, add[0 .. add_len), into
 * the entry's: the keys the entry lacks are taken, each with its value,
 * and those it has keep theirs (the first non-NULL value wins; a key with
 * a JSON null was never stored).  Both lists are in key order, so one
 * pass merges them, in key order again.  The entry's extra may be in its
 * base record or an earlier merge, both in the arena, which may move as
 * it grows: only offsets are kept across the growth.  add is not in the
 * arena.
 */
static void
merge_extra(ClBatch *b, ClEntry *e, const char *add, uint32 add_len)
{
	const char *rec = b->arena + e->rec_off;
	ClEvent		base;
	uint32		cur_off;
	uint32		cur_len;
	const char *p;
	const char *q;
	const char *cur;
	ClExtraItem a;
	ClExtraItem c;
	bool		have_a;
	bool		have_c;
	size_t		size = 0;
	bool		adds = false;
	char	   *out;

	if (e->extra_len > 0)
	{
		cur_off = e->extra_off;
		cur_len = e->extra_len;
	}
	else
	{
		(void) cl_decode(rec, cl_record_length(rec), &base);
		cur_off = base.extra_len > 0 ?
			(uint32) (base.extra - b->arena) : 0;
		cur_len = base.extra_len;
	}

	/* the merged list's size, and whether add brings any key at all */
	for (int pass = 0; pass < 2; pass++)
	{
		cur = b->arena + cur_off;
		p = cur;
		q = add;
		out = pass == 0 ? NULL : b->arena + b->arena_used;
		have_c = p < cur + cur_len && cl_extra_next(&p, cur + cur_len, &c);
		have_a = q < add + add_len && cl_extra_next(&q, add + add_len, &a);
		while (have_c || have_a)
		{
			int			cmp;
			const ClExtraItem *take_it;

			if (!have_a)
				cmp = -1;
			else if (!have_c)
				cmp = 1;
			else
				cmp = key_cmp(c.key, c.key_len, a.key, a.key_len);
			take_it = cmp <= 0 ? &c : &a;
			if (pass == 0)
			{
				size += 1 + take_it->key_len + 1 + 2 + take_it->value_len;
				adds |= cmp > 0;
			}
			else
			{
				out = put(out, &take_it->key_len, 1);
				out = put(out, take_it->key, take_it->key_len);
				out = put(out, &take_it->kind, 1);
				out = put(out, &take_it->value_len, 2);
				out = put(out, take_it->value, take_it->value_len);
			}
			if (cmp <= 0)
				have_c = p < cur + cur_len &&
					cl_extra_next(&p, cur + cur_len, &c);
			if (cmp >= 0)
				have_a = q < add + add_len &&
					cl_extra_next(&q, add + add_len, &a);
		}
		if (pass == 0)
		{
			if (!adds)
				return;
			arena_reserve(b, size);
		}
	}
	e->extra_off = (uint32) b->arena_used;
	e->extra_len = (uint32) size;
	b->arena_used += size;
}

/*
 * Add one record to the batch, merging it into an existing entry when the
 * conflict key matches (see the merge rules at the top).  The caller must
 * not add to a full batch.  Returns false, changing nothing, if rec is not
 * a well-formed record.
 */
bool
cl_batch_add(ClBatch *b, const char *rec, size_t len)
{
	ClEvent		ev;
	ClEntry    *e;
	uint32		slot = 0;
	uint32		hash = 0;
	bool		disconnect;

	if (!cl_decode(rec, len, &ev))
		return false;
	disconnect = (ev.status == CL_STATUS_DISCONNECTED);
	b->nevents++;

	if (ev.flags & CL_HAS_CONNECTION_ID)
	{
		uint32		mask = b->nslots - 1;

		hash = key_hash(&ev);
		for (slot = hash & mask; b->slots[slot] >= 0; slot = (slot + 1) & mask)
		{
			const char *base;
			ClEvent		old;

			e = &b->entries[b->slots[slot]];
			if (e->hash != hash)
				continue;
			base = b->arena + e->rec_off;
			(void) cl_decode(base, cl_record_length(base), &old);
			if (!same_key(&ev, &old))
				continue;

			/*
			 * Same connection: do what the upsert would do to the row.  The
			 * base stays; only a code or reason the row lacks is taken.
			 */
			e->nevents++;
			if (ev.event_time < e->connect_time)
				e->connect_time = ev.event_time;
			if (disconnect && ev.event_time > e->disconnect_time)
				e->disconnect_time = ev.event_time;
			if ((ev.flags & CL_HAS_CODE) && !(e->flags & CL_HAS_CODE))
			{
				e->code = ev.code;
				e->flags |= CL_HAS_CODE;
			}
			if ((ev.flags & CL_HAS_REASON) && !(e->flags & CL_HAS_REASON))
			{
				e->reason_off = arena_copy(b, ev.disconnect_reason.data,
										   ev.disconnect_reason.len);
				e->reason_len = ev.disconnect_reason.len;
				e->flags |= CL_HAS_REASON;
			}
			if (ev.extra_len > 0)
				merge_extra(b, e, ev.extra, ev.extra_len);
			return true;
		}
	}

	e = &b->entries[b->nentries];
	e->rec_off = arena_copy(b, rec, len);
	e->nevents = 1;
	e->event_time = ev.event_time;
	e->connect_time = ev.event_time;
	e->disconnect_time = disconnect ? ev.event_time : CL_NO_TIME;
	e->status = ev.status;
	e->flags = ev.flags;
	e->reason_len = 0;
	e->reason_off = 0;
	e->code = 0;
	e->extra_off = 0;
	e->extra_len = 0;
	e->hash = hash;
	e->outcome = 0;
	e->transient_alone = 0;
	if (ev.flags & CL_HAS_CONNECTION_ID)
		b->slots[slot] = b->nentries;
	b->nentries++;
	return true;
}
