/*-------------------------------------------------------------------------
 *
 * selftest.c
 *		Deterministic run of the fuzz checks plus hand-written merge cases.
 *
 * It includes connlog_fuzz.c, so the pseudo-random scripts (fixed seed)
 * go through exactly the checker the fuzzer uses.  The explicit cases pin
 * the merge rules down on inputs a reader can follow, and also prove that
 * the model in check_batch() agrees with them.  Needs no clang/libFuzzer:
 *
 *	gcc -DCONNLOG_STANDALONE -Isrc fuzz/selftest.c src/batch.c
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

/* The entry whose winning record is event number serial */
static const ClEntry *
winner(const ClBatch *b, uint32 serial)
{
	for (int k = 0; k < b->nentries; k++)
	{
		ClEvent		ev;

		cl_batch_entry_event(b, &b->entries[k], &ev);
		if (memcmp(ev.id, &serial, sizeof(serial)) == 0)
			return &b->entries[k];
	}
	fail(__LINE__, "no entry won by the expected event");
	return NULL;
}

int
main(void)
{
	ClBatch    *b;
	const ClEntry *e;
	uint64		x = UINT64_C(0x9E3779B97F4A7C15);
	uint8		script[600];

	LLVMFuzzerTestOneInput((const uint8 *) "", 0);	/* fills pattern */

	/* connect then disconnect: one row spanning both, disconnect's fields */
	{
		ClEvent		ev[] = {mk(1, 0, 0, 10, "a"), mk(2, 0, 1, 20, "a")};

		b = build(ev, 2);
		e = winner(b, 2);
		CHECK(b->nentries == 1 && e->nevents == 2);
		CHECK(e->connect_time == 10 && e->disconnect_time == 20);
		CHECK(e->status == CL_STATUS_DISCONNECTED && e->event_time == 20);
		cl_batch_free(b);
	}

	/* disconnect, then connects later and earlier: the disconnect wins */
	{
		ClEvent		ev[] = {mk(1, 0, 1, 20, "a"), mk(2, 0, 0, 30, "a"),
		mk(3, 0, 0, 5, "a")};

		b = build(ev, 2);
		e = winner(b, 1);
		CHECK(b->nentries == 1 && e->nevents == 2);
		CHECK(e->connect_time == 20 && e->disconnect_time == 20);
		add_event(b, &ev[2], true);
		CHECK(e->connect_time == 5 && e->disconnect_time == 20);
		CHECK(e->status == CL_STATUS_DISCONNECTED && e->event_time == 20);
		cl_batch_free(b);
	}

	/* equal statuses: the later event wins, the earlier one on a tie */
	{
		ClEvent		ev[] = {mk(1, 1, 0, 10, ""), mk(2, 1, 0, 30, ""),
			mk(3, 1, 0, 20, ""), mk(4, 1, 0, 30, ""),
			mk(5, 1, 1, 50, ""), mk(6, 1, 1, 50, ""), mk(7, 1, 1, 40, "")};

		b = build(ev, 4);
		e = winner(b, 2);
		CHECK(e->nevents == 4 && e->disconnect_time == CL_NO_TIME);
		for (int i = 4; i < 7; i++)
			add_event(b, &ev[i], true);
		check_batch(b, ev, 7);
		e = winner(b, 5);
		CHECK(e->nevents == 7 && e->connect_time == 10);
		CHECK(e->disconnect_time == 50 && e->event_time == 50);
		cl_batch_free(b);
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

	printf("selftest: 5 merge cases and %d scripts passed\n", NSCRIPTS);
	return 0;
}
