/*-------------------------------------------------------------------------
 *
 * selftest.c
 *		Deterministic run of the fuzz checks plus hand-written merge cases.
 *
 * It includes connlog_fuzz.c, so the pseudo-random scripts (fixed seed)
 * go through exactly the checker the fuzzer uses.  The explicit cases pin
 * the merge rules down on inputs a reader can follow, and also prove that
 * the model (sequential upserts, see connlog_fuzz.c) agrees with them.
 * Needs no clang/libFuzzer:
 *
 *	gcc -DCONNLOG_STANDALONE -Isrc fuzz/selftest.c src/batch.c
 *
 * IDENTIFICATION
 *	  fuzz/selftest.c
 *
 *-------------------------------------------------------------------------
 */
#include "connlog_fuzz.c"

#define NSCRIPTS	4000

/* An event with the given serial (its id), key, status and time */
static ClEvent
mk(uint32 serial, int conn, int status, int64 time, const char *agent)
{
	ClEvent		ev;

	memset(&ev, 0, sizeof(ev));
	memcpy(ev.id, &serial, sizeof(serial));
	memcpy(ev.workspace_id, ws_pool[0], 16);
	if (conn >= 0)
	{
		ev.flags |= CL_HAS_CONNECTION_ID;
		memcpy(ev.connection_id, conn_pool[conn], 16);
	}
	ev.status = (uint8) status;
	ev.event_time = time;
	ev.workspace_name.data = "ws";
	ev.workspace_name.len = 2;
	ev.agent_name.data = agent;
	ev.agent_name.len = (uint16) strlen(agent);
	return ev;
}

/* ev with code set */
static ClEvent
with_code(ClEvent ev, int32 code)
{
	ev.flags |= CL_HAS_CODE;
	ev.code = code;
	return ev;
}

static ClText
txt(const char *s)
{
	ClText		t = {s, (uint16) strlen(s)};

	return t;
}

/* ev with disconnect_reason set */
static ClEvent
with_reason(ClEvent ev, const char *reason)
{
	ev.flags |= CL_HAS_REASON;
	ev.disconnect_reason = txt(reason);
	return ev;
}

/* ev with user_agent set */
static ClEvent
with_agent(ClEvent ev, const char *user_agent)
{
	ev.flags |= CL_HAS_USER_AGENT;
	ev.user_agent = txt(user_agent);
	return ev;
}

/* Add events[0 .. n) to a fresh batch and cross-check it with the model */
static ClBatch *
build(const ClEvent *events, int n)
{
	ClBatch    *b = cl_batch_create(8);

	for (int i = 0; i < n; i++)
		add_event(b, &events[i], true);
	check_batch(b, events, n);
	return b;
}

/* The entry whose base record is event number serial, as an event */
static const ClEntry *
base(const ClBatch *b, uint32 serial, ClEvent *ev)
{
	for (int k = 0; k < b->nentries; k++)
	{
		cl_batch_entry_event(b, &b->entries[k], ev);
		if (memcmp(ev->id, &serial, sizeof(serial)) == 0)
			return &b->entries[k];
	}
	fail(__LINE__, "no entry based on the expected event");
	return NULL;
}

static bool
text_is(ClText t, const char *s)
{
	return t.data != NULL && text_equal(t, txt(s));
}

int
main(void)
{
	ClBatch    *b;
	const ClEntry *e;
	ClEvent		m;
	uint64		x = UINT64_C(0x9E3779B97F4A7C15);
	uint8		script[600];

	LLVMFuzzerTestOneInput((const uint8 *) "", 0);	/* fills pattern */

	/*
	 * connect then disconnect: one row spanning both, the connect's id and
	 * user_agent, the disconnect's code and reason
	 */
	{
		ClEvent		ev[] = {with_agent(mk(1, 0, 0, 10, "a"), "ssh/1"),
			with_code(with_reason(with_agent(mk(2, 0, 1, 20, "a"), "other"),
								  "closed"), 0)};

		b = build(ev, 2);
		e = base(b, 1, &m);
		CHECK(b->nentries == 1 && e->nevents == 2);
		CHECK(e->connect_time == 10 && e->disconnect_time == 20);
		CHECK(m.status == CL_STATUS_CONNECTED && m.event_time == 10);
		CHECK(text_is(m.user_agent, "ssh/1"));
		CHECK((m.flags & CL_HAS_CODE) && m.code == 0);
		CHECK(text_is(m.disconnect_reason, "closed"));
		cl_batch_free(b);
	}

	/* disconnect, then connects later and earlier: the disconnect is base */
	{
		ClEvent		ev[] = {mk(1, 0, 1, 20, "a"), mk(2, 0, 0, 30, "a"),
		mk(3, 0, 0, 5, "a")};

		b = build(ev, 2);
		e = base(b, 1, &m);
		CHECK(b->nentries == 1 && e->nevents == 2);
		CHECK(e->connect_time == 20 && e->disconnect_time == 20);
		add_event(b, &ev[2], true);
		check_batch(b, ev, 3);
		CHECK(e->connect_time == 5 && e->disconnect_time == 20);
		CHECK(e->status == CL_STATUS_DISCONNECTED && e->event_time == 20);
		cl_batch_free(b);
	}

	/*
	 * whatever the statuses and times, the first event is the base; code and
	 * reason are each the first non-NULL one, an empty reason included
	 */
	{
		ClEvent		ev[] = {mk(1, 1, 0, 30, ""),
			with_code(mk(2, 1, 0, 10, ""), 5),
			with_reason(mk(3, 1, 1, 50, ""), ""),
			with_code(with_reason(mk(4, 1, 1, 60, ""), "late"), 7),
		mk(5, 1, 1, 40, "")};

		b = build(ev, 2);
		e = base(b, 1, &m);
		CHECK(e->nevents == 2 && e->connect_time == 10);
		CHECK(e->disconnect_time == CL_NO_TIME);
		CHECK((m.flags & CL_HAS_CODE) && m.code == 5);
		CHECK(!(m.flags & CL_HAS_REASON) && m.disconnect_reason.data == NULL);
		for (int i = 2; i < 5; i++)
			add_event(b, &ev[i], true);
		check_batch(b, ev, 5);
		e = base(b, 1, &m);
		CHECK(e->nevents == 5 && e->connect_time == 10);
		CHECK(e->disconnect_time == 60 && m.event_time == 30);
		CHECK(m.status == CL_STATUS_CONNECTED && m.code == 5);
		CHECK(text_is(m.disconnect_reason, ""));
		cl_batch_free(b);
	}

	/* a base with a code and reason keeps them */
	{
		ClEvent		ev[] = {with_code(with_reason(mk(1, 1, 1, 10, ""), "a"), 1),
		with_code(with_reason(mk(2, 1, 1, 20, ""), "b"), 2)};

		b = build(ev, 2);
		e = base(b, 1, &m);
		CHECK(e->disconnect_time == 20 && m.code == 1);
		CHECK(text_is(m.disconnect_reason, "a"));
		cl_batch_free(b);
	}

	/*
	 * batch boundaries do not matter: connect and disconnect in one batch, or
	 * in two whose rows meet in the (model) table, make the same row
	 */
	{
		ClEvent		ev[] = {with_agent(mk(1, 0, 0, 10, "a"), "ssh/1"),
		with_code(with_reason(mk(2, 0, 1, 20, "a"), "closed"), 3)};
		ClBatch    *two[2];

		b = build(ev, 2);
		two[0] = build(ev, 1);
		two[1] = build(ev + 1, 1);
		check_split(&b, 1, ev, 2);
		check_split(two, 2, ev, 2);
		cl_batch_free(b);
		cl_batch_free(two[0]);
		cl_batch_free(two[1]);
	}

	/* no connection id never merges; nor do keys differing in one part */
	{
		ClEvent		ev[] = {mk(1, -1, 0, 10, "a"), mk(2, -1, 0, 10, "a"),
			mk(3, 0, 0, 10, "a"), mk(4, 0, 0, 10, "ab"),
		mk(5, 2, 0, 10, "a")};

		b = build(ev, 5);
		CHECK(b->nentries == 5);
		for (int k = 0; k < 5; k++)
			CHECK(b->entries[k].nevents == 1);
		cl_batch_free(b);
	}

	/* a reset batch starts empty: no merging into a forgotten entry */
	{
		ClEvent		ev[] = {mk(1, 0, 0, 10, "a"), mk(2, 1, 0, 10, "a"),
		mk(3, 0, 1, 20, "a")};

		b = cl_batch_create(2);
		add_event(b, &ev[0], true);
		add_event(b, &ev[1], true);
		CHECK(cl_batch_full(b));
		cl_batch_reset(b, 7);
		CHECK(!cl_batch_full(b) && b->seq_start == 7);
		add_event(b, &ev[2], true);
		check_batch(b, &ev[2], 1);
		cl_batch_free(b);
	}

	/* what connlog_enqueue never makes, though the ring could hold it */
	{
		ClEvent		ok = mk(1, 1, 0, 10, "a");
		ClEvent		bad[6];

		bad[0] = mk(1, 1, 0, CL_END_EVENT_TIME, "a");	/* infinity's side */
		bad[1] = mk(1, 1, 0, CL_MIN_EVENT_TIME - 1, "a");
		bad[2] = mk(1, 0, 0, 10, "a");	/* nil connection_id */
		bad[3] = with_agent(mk(1, 1, 0, 10, "a"), "");
		bad[4] = mk(1, 1, 0, 10, "a");
		bad[4].workspace_name.data = "w\0s";
		bad[4].workspace_name.len = 3;
		bad[5] = with_reason(mk(1, 1, 1, 10, "a"), "");
		CHECK(cl_event_refused(&ok) == NULL);
		ok.event_time = CL_MIN_EVENT_TIME;
		CHECK(cl_event_refused(&ok) == NULL);
		for (int i = 0; i < 6; i++)
			CHECK(cl_event_refused(&bad[i]) != NULL &&
				  !model_enqueue_accepts(&bad[i]));
	}

	/*
	 * types: a known label is its one-byte index, as in records written
	 * before types were text, and any other is carried as text; both
	 * round-trip, and a text type is refused when empty, too long or with a
	 * NUL byte
	 */
	{
		static const char *const types[] = {"ssh", "tunnel", "file_transfer",
		"sshx", "ss"};
		ClEvent		ev = mk(1, 1, 0, 10, "a");
		ClEvent		dec;
		char		rec[512];
		char		longest[CL_MAX_TYPE_LEN + 1];
		size_t		len;

		for (int i = 0; i < 5; i++)
		{
			bool		known = i < 2;

			cl_set_type(&ev, types[i], (uint16) strlen(types[i]));
			CHECK(((ev.flags & CL_HAS_TYPE_TEXT) == 0) == known);
			CHECK(!known || ev.type == (i == 0 ? 0 : 6));
			len = cl_encoded_size(&ev);
			CHECK(cl_encode(&ev, len, rec) == len);
			CHECK(cl_decode(rec, len, &dec) && event_equal(&ev, &dec));
			CHECK(text_is(cl_event_type(&dec), types[i]));
			CHECK(cl_event_refused(&dec) == NULL);
		}
		memset(longest, 't', sizeof(longest));
		cl_set_type(&ev, longest, CL_MAX_TYPE_LEN);
		CHECK(cl_event_refused(&ev) == NULL);
		cl_set_type(&ev, longest, CL_MAX_TYPE_LEN + 1);
		CHECK(cl_event_refused(&ev) != NULL && !model_enqueue_accepts(&ev));
		cl_set_type(&ev, "", 0);
		CHECK(cl_event_refused(&ev) != NULL && !model_enqueue_accepts(&ev));
		cl_set_type(&ev, "a\0b", 3);
		CHECK(cl_event_refused(&ev) != NULL && !model_enqueue_accepts(&ev));
		/* a text type carries no index */
		cl_set_type(&ev, "file_transfer", 13);
		ev.type = 1;
		len = cl_encoded_size(&ev);
		CHECK(cl_encode(&ev, len, rec) == len);
		CHECK(!cl_decode(rec, len, &dec));
	}

	/*
	 * extra: per key, the first value in enqueue order wins, and a later
	 * event adds only the keys the row lacks; a record without extra is
	 * exactly the older format
	 */
	{
		/* {"a": "1", "cs": "x"}, then {"a": "2", "b": true} */
		static const char x1[] = "\001a\000\001\0001\002cs\000\001\000x";
		static const char x2[] = "\001a\000\001\0002\001b\002\004\000true";
		static const char bad[] = "\001b\000\000\000\001a\000\000\000";
		ClEvent		ev[] = {mk(1, 0, 0, 10, "a"), mk(2, 0, 1, 20, "a")};
		ClEvent		dec;
		ClEvent		plain = mk(3, 1, 0, 10, "a");
		char		rec[512];
		size_t		len;
		Row			r;

		ev[0].extra = x1;
		ev[0].extra_len = sizeof(x1) - 1;
		ev[1].extra = x2;
		ev[1].extra_len = sizeof(x2) - 1;
		b = build(ev, 2);
		CHECK(b->nentries == 1);
		cl_batch_entry_event(b, &b->entries[0], &m);
		row_columns(&r, &m);
		CHECK(r.has[0] && text_is(r.value[0], "1"));
		CHECK(r.has[1] && r.kind[1] == CL_EXTRA_BOOL &&
			  text_is(r.value[1], "true"));
		CHECK(r.has[2] && text_is(r.value[2], "x"));
		CHECK(!r.has[3] && !r.has[4]);
		cl_batch_free(b);

		/* keys out of order, or twice, do not decode */
		ev[0].extra = bad;
		ev[0].extra_len = sizeof(bad) - 1;
		len = cl_encoded_size(&ev[0]);
		CHECK(cl_encode(&ev[0], len, rec) == len);
		CHECK(!cl_decode(rec, len, &dec));

		/* a key naming one of connlog's own columns decodes, but is refused */
		{
			static const char own[] = "\004type\000\001\000x";

			ev[0].extra = own;
			ev[0].extra_len = sizeof(own) - 1;
			len = cl_encoded_size(&ev[0]);
			CHECK(cl_encode(&ev[0], len, rec) == len);
			CHECK(cl_decode(rec, len, &dec) && cl_event_refused(&dec) != NULL);
		}

		/* no extra: no flag, and the fixed part's size is unchanged */
		len = cl_encoded_size(&plain);
		CHECK(len == CL_RECORD_FIXED_SIZE + 16 + 2 + 1);
		CHECK(cl_encode(&plain, len, rec) == len);
		CHECK((uint8) rec[4 + 8 + 64 + 2] == CL_STATUS_CONNECTED);
		CHECK(cl_decode(rec, len, &dec) && dec.extra == NULL);
	}

	/* pseudo-random scripts from a fixed seed (xorshift64) */
	for (int i = 0; i < NSCRIPTS; i++)
	{
		size_t		len;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		len = (size_t) (x % sizeof(script));
		for (size_t j = 0; j < len; j++)
		{
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			script[j] = (uint8) (x >> 56);
		}
		LLVMFuzzerTestOneInput(script, len);
	}

	printf("selftest: 7 merge cases, 8 refusal cases, 10 type cases, 3 extra cases and %d scripts passed\n", NSCRIPTS);
	return 0;
}
