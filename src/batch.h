/*-------------------------------------------------------------------------
 *
 * batch.h
 *		Event record encoding and the per-batch merge rules (batch.c).
 *
 * Plain C, free of server calls (define CONNLOG_STANDALONE), so that the
 * fuzzer in fuzz/ can drive the decoder and the merge rules; only the
 * allocator differs (palloc or malloc, the macros below).  Why the record
 * is so: doc/internals.md, "The record".  A record:
 *
 *	uint32	total length of the record, header included
 *	int64	event time (TimestampTz: microseconds since 2000-01-01)
 *	16 x 4	id, organization_id, workspace_owner_id, workspace_id
 *	uint8	flags (CL_HAS_* below: which optional fields follow)
 *	uint8	connection type (index into connlog_type_labels; 0 if
 *			CL_HAS_TYPE_TEXT)
 *	uint8	connection status (CL_STATUS_*), or'ed with CL_STATUS_HAS_EXTRA
 *	uint8	ip family (4 or 6) if CL_HAS_IP
 *	uint8	ip netmask bits if CL_HAS_IP
 *	uint16	length of workspace_name, uint16 length of agent_name
 *	then, each only when its flag is set and in this order:
 *	16 connection_id, 16 user_id, int32 code, 4 or 16 ip address bytes,
 *	uint16 + bytes user_agent, uint16 + bytes slug_or_port,
 *	uint16 + bytes disconnect_reason, uint16 + bytes type,
 *	uint16 + bytes extra (CL_STATUS_HAS_EXTRA: the application's columns)
 *	then the bytes of workspace_name and agent_name.
 *
 * Integers are in host byte order and unaligned (read and written with
 * memcpy).  extra is the top-level keys of connlog_enqueue's jsonb whose
 * value is not JSON null, in jsonb's order (shorter first, then bytewise),
 * each once, each as
 *
 *	uint8	key length (1 to CL_MAX_EXTRA_KEY), then the key's bytes
 *	uint8	kind of the value (CL_EXTRA_*: what JSON it was)
 *	uint16	value length, then the value's text (what the column's input
 *			function is given; the kind rebuilds the JSON)
 *
 * IDENTIFICATION
 *	  src/batch.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_BATCH_H
#define CONNLOG_BATCH_H

#ifdef CONNLOG_STANDALONE
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
typedef uint8_t uint8;
typedef uint16_t uint16;
typedef uint32_t uint32;
typedef int32_t int32;
typedef int64_t int64;
typedef uint64_t uint64;
#define cl_alloc(sz)		malloc(sz)
#define cl_alloc0(sz)		calloc(1, (sz))
#define cl_realloc(p, sz)	realloc((p), (sz))
#define cl_free(p)			free(p)
#else
/* the including .c file has included postgres.h first, as it must */
#define cl_alloc(sz)		palloc(sz)
#define cl_alloc0(sz)		palloc0(sz)
#define cl_realloc(p, sz)	repalloc((p), (sz))
#define cl_free(p)			pfree(p)
#endif

/* Optional fields present in a record */
#define CL_HAS_CONNECTION_ID	0x01
#define CL_HAS_USER_ID			0x02
#define CL_HAS_CODE				0x04
#define CL_HAS_IP				0x08
#define CL_HAS_USER_AGENT		0x10
#define CL_HAS_SLUG_OR_PORT		0x20
#define CL_HAS_REASON			0x40
#define CL_HAS_TYPE_TEXT		0x80	/* type is text, not an index */
#define CL_HAS_ALL				0xFF

#define CL_STATUS_CONNECTED		0
#define CL_STATUS_DISCONNECTED	1
#define CL_STATUS_HAS_EXTRA		0x80	/* in the status byte: extra follows */

/* What JSON an extra value was; its text is given to the column as is */
#define CL_EXTRA_STRING			0
#define CL_EXTRA_NUMBER			1
#define CL_EXTRA_BOOL			2
#define CL_EXTRA_JSON			3	/* an object or an array */

/* Longest key of extra: NAMEDATALEN - 1, the longest column name */
#define CL_MAX_EXTRA_KEY		63

#define CL_NUM_TYPES			7

/*
 * Longest connection type connlog_enqueue accepts, in bytes: NAMEDATALEN -
 * 1, the longest enum label, so that any type stored can also be a label
 * of an enum (connection_type in a database still at 1.0 or 1.1, or an
 * application's own).
 */
#define CL_MAX_TYPE_LEN			63

/* Fixed part of a record, see the layout above */
#define CL_RECORD_FIXED_SIZE	(4 + 8 + 16 * 4 + 5 + 2 + 2)

/*
 * Largest record the ring accepts.  Text fields carry 16-bit lengths, and a
 * bound well below the smallest ring (connlog.ring_size >= 64kB) keeps one
 * event from monopolising it.
 */
#define CL_MAX_RECORD			16384

/* Marks "no disconnect time" in a merged entry */
#define CL_NO_TIME				INT64_MIN

/*
 * The range of a finite timestamptz: PostgreSQL's MIN_TIMESTAMP and
 * END_TIMESTAMP (datatype/timestamp.h; wal.c checks they still match).
 */
#define CL_MIN_EVENT_TIME		INT64_C(-211813488000000000)
#define CL_END_EVENT_TIME		INT64_C(9223371331200000000)

extern const char *const connlog_type_labels[CL_NUM_TYPES];
extern const char *const connlog_status_labels[2];

/* A text field: pointer into a record plus length; data NULL when absent */
typedef struct ClText
{
	const char *data;
	uint16		len;
} ClText;

/*
 * An event as the caller supplies it to cl_encode() and as cl_decode()
 * returns it.  Pointers refer to the caller's memory (encode) or into the
 * decoded record (decode); nothing here owns memory.
 */
typedef struct ClEvent
{
	int64		event_time;
	uint8		id[16];
	uint8		organization_id[16];
	uint8		workspace_owner_id[16];
	uint8		workspace_id[16];
	uint8		connection_id[16];
	uint8		user_id[16];
	uint8		flags;
	uint8		type;
	uint8		status;
	uint8		ip_family;
	uint8		ip_bits;
	uint8		ip_addr[16];
	int32		code;
	ClText		workspace_name;
	ClText		agent_name;
	ClText		user_agent;
	ClText		slug_or_port;
	ClText		disconnect_reason;
	ClText		type_text;		/* the type if CL_HAS_TYPE_TEXT */
	const char *extra;			/* extra's entries (see above), or NULL */
	uint32		extra_len;		/* their bytes; 0 when there is no extra */
} ClEvent;

/* One entry of an extra, pointing into it */
typedef struct ClExtraItem
{
	const char *key;
	uint8		key_len;
	uint8		kind;			/* CL_EXTRA_* */
	const char *value;
	uint16		value_len;
} ClExtraItem;

/*
 * One row of the upsert: the first event of its key in the batch (the
 * base), plus what later events of the key add to it the way the upsert
 * would (see the merge rules in batch.c).  Only code, disconnect_reason
 * and keys of extra can come from a later event: code is kept here, the
 * reason's bytes are copied into the arena, and so is the merged extra
 * when a later event adds a key.
 */
typedef struct ClEntry
{
	uint32		rec_off;		/* base record's offset in the arena */
	uint32		nevents;		/* events folded into this row */
	int64		event_time;		/* base event's time */
	int64		connect_time;	/* earliest time of any of its events */
	int64		disconnect_time;	/* latest disconnect time, or CL_NO_TIME */
	uint8		status;			/* base event's status */
	uint8		flags;			/* base's CL_HAS_* plus those merged in */
	uint16		reason_len;		/* merged-in disconnect_reason ... */
	uint32		reason_off;		/* ... and its offset in the arena */
	int32		code;			/* merged-in code */
	uint32		extra_off;		/* merged extra's offset in the arena ... */
	uint32		extra_len;		/* ... and length; 0: the base's own */
	uint32		hash;			/* of the conflict key */
	uint8		outcome;		/* the worker's: what became of the row */
	uint8		transient_alone;	/* the worker's: transient failures of the
									 * row written alone */
} ClEntry;

/*
 * A batch: merged entries plus an arena holding their base records and
 * merged-in reasons.  Both are referenced by offset, so growing the arena
 * never leaves a dangling pointer.  seq_start/seq_end bound the ring
 * sequence numbers of the events folded in; the worker uses them to tell
 * connlog_flush() what has been accounted for.
 */
typedef struct ClBatch
{
	ClEntry    *entries;
	int			nentries;
	int			capacity;		/* max entries (connlog.batch_size) */
	int32	   *slots;			/* open-addressing hash: entry index or -1 */
	uint32		nslots;			/* power of two, >= 2 * capacity */
	char	   *arena;
	size_t		arena_used;
	size_t		arena_size;
	uint64		nevents;		/* events added, merged ones included */
	uint64		seq_start;
	uint64		seq_end;
} ClBatch;

extern size_t cl_encoded_size(const ClEvent *ev);
extern size_t cl_encode(const ClEvent *ev, size_t len, char *buf);
extern bool cl_decode(const char *rec, size_t len, ClEvent *ev);
extern uint32 cl_record_length(const char *rec);
extern const char *cl_event_refused(const ClEvent *ev);
extern void cl_set_type(ClEvent *ev, const char *type, uint16 len);
extern ClText cl_event_type(const ClEvent *ev);
extern bool cl_extra_next(const char **pos, const char *end,
						  ClExtraItem *item);
extern bool cl_extra_reserved_key(const char *key, size_t len);

extern ClBatch *cl_batch_create(int capacity);
extern void cl_batch_reset(ClBatch *b, uint64 seq_start);
extern void cl_batch_free(ClBatch *b);
extern bool cl_batch_add(ClBatch *b, const char *rec, size_t len);
extern bool cl_batch_full(const ClBatch *b);
extern void cl_batch_entry_event(const ClBatch *b, const ClEntry *e,
								 ClEvent *ev);

#endif							/* CONNLOG_BATCH_H */
