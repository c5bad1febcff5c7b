/*-------------------------------------------------------------------------
 *
 * replay.c
 *		The worker's reader of connlog's WAL records: from the stored
 *		progress up to the insert position, the events neither written nor
 *		in the ring, each held again to connlog_enqueue's rules.
 *
 * progress.c calls connlog_wal_read_records once, as the worker starts,
 * and writes what it returns before it drains the ring.  The reader runs
 * over local WAL (read_local_xlog_page_no_wait) in a transaction of its
 * own; an error while reading ends the replay with a WARNING, and the
 * events read so far are still returned.
 *
 * Shared state: connlog_shared->wal.epoch, read only.
 *
 * Which records are left out, why they are checked again, and why
 * logical messages are only counted: doc/internals.md, "The records" and
 * "Replay".
 *
 * IDENTIFICATION
 *	  src/replay.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "access/xlogutils.h"
#include "mb/pg_wchar.h"
#include "replication/message.h"
#include "utils/memutils.h"

#include "batch.h"
#include "replay.h"
#include "ring.h"
#include "slot.h"
#include "wal.h"
#include "runner.h"

/*
 * Logical messages in the form a MAC-keyed connlog wrote: prefix
 * "connlog", then epoch, seq, a 16-byte MAC and the ring record.  Replay
 * only counts them.
 */
#define LEGACY_PREFIX		"connlog"
#define LEGACY_HEADER_SIZE	(2 * sizeof(uint64) + 16)

/*
 * Would connlog_enqueue have accepted the event of this ring record?  Its
 * resource manager says connlog wrote it, but replay writes as a
 * superuser what a bug could make anything, so it holds the event to
 * enqueue's rules again: batch.c's, and the texts valid in the database's
 * encoding (the worker's database is the only one enqueue accepts events
 * in).  NULL if it would, else why not.
 */
static const char *
event_refused(const char *rec, uint32 len)
{
	ClEvent		ev;
	const char *why;
	const ClText *texts[] = {&ev.workspace_name, &ev.agent_name,
	&ev.user_agent, &ev.slug_or_port, &ev.disconnect_reason, &ev.type_text};

	if (!cl_decode(rec, len, &ev))
		return "the record is malformed";
	if ((why = cl_event_refused(&ev)) != NULL)
		return why;
	for (int i = 0; i < lengthof(texts); i++)
		if (texts[i]->len > 0 &&
			!pg_verify_mbstr(GetDatabaseEncoding(), texts[i]->data,
							 texts[i]->len, true))
			return "a text field is not valid in the database encoding";
	if (ev.extra_len > 0)
	{
		const char *pos = ev.extra;
		ClExtraItem it;

		while (cl_extra_next(&pos, ev.extra + ev.extra_len, &it))
			if (!pg_verify_mbstr(GetDatabaseEncoding(), it.key, it.key_len,
								 true) ||
				!pg_verify_mbstr(GetDatabaseEncoding(), it.value,
								 it.value_len, true))
				return "a key or value of extra is not valid in the database encoding";
	}
	return NULL;
}

/* what an abort leaves to its caller: the WAL segment the reader opened */
static void
close_segment(void *arg)
{
	XLogReaderState *xr = (XLogReaderState *) arg;

	if (xr != NULL && xr->seg.ws_file >= 0)
		wal_segment_close(xr);
}

/*
 * Where to start reading: done->lsn, or, if the WAL from there is gone,
 * the start of the oldest segment left (noted in gone_to, for the caller
 * to report).  Allocates the reader if there is anything to read, and
 * returns the first record's start; InvalidXLogRecPtr if there is none.
 */
static XLogRecPtr
reader_open(ConnlogReplay *r)
{
	XLogRecPtr	start = r->done->lsn;
	XLogRecPtr	left = connlog_wal_gone_to(start);

	if (!XLogRecPtrIsInvalid(left))
	{
		start = left;
		r->gone_to = r->last_end = Min(start, r->upto);
	}
	if (start >= r->upto)
		return InvalidXLogRecPtr;
	r->xr = XLogReaderAllocate(wal_segment_size, NULL,
					   XL_ROUTINE(.page_read = &read_local_xlog_page_no_wait,
								  .segment_open = &wal_segment_open,
								  .segment_close = &wal_segment_close),
							palloc0(sizeof(ReadLocalXLogPageNoWaitPrivate)));
	if (r->xr == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
		  errmsg("out of memory while allocating a WAL reading processor")));
	return XLogFindNextRecord(r->xr, start);
}

/* A record connlog_enqueue would refuse: counted, with the first reason */
static void
note_refused(ConnlogReplay *r, const char *why)
{
	if (r->ninvalid++ == 0)
		r->first_refusal = why;
}

/*
 * The record just read is connlog's: keep its event unless done says it
 * is written, this life's ring has it, or enqueue would refuse it.
 */
static void
take_record(ConnlogReplay *r)
{
	XLogReaderState *xr = r->xr;
	const char *data = XLogRecGetData(xr);
	uint32		len = XLogRecGetDataLen(xr);
	uint64		epoch;
	uint64		seq;
	const char *why;
	MemoryContext old;

	if ((XLogRecGetInfo(xr) & ~XLR_INFO_MASK) != XLOG_CONNLOG_EVENT ||
		len < CONNLOG_WAL_HEADER_SIZE)
	{
		note_refused(r, "the record is malformed");
		return;
	}
	memcpy(&epoch, data, sizeof(epoch));
	memcpy(&seq, data + sizeof(epoch), sizeof(seq));
	data += CONNLOG_WAL_HEADER_SIZE;
	len -= CONNLOG_WAL_HEADER_SIZE;
	if ((epoch == r->done->epoch && seq < r->done->seq) ||
		epoch == connlog_shared->wal.epoch)
	{
		r->nskipped++;			/* written, or the ring has it */
		return;
	}
	if ((why = event_refused(data, len)) != NULL)
	{
		note_refused(r, why);
		return;
	}
	old = MemoryContextSwitchTo(r->cxt);
	appendBinaryStringInfo(&r->events, data, len);
	MemoryContextSwitchTo(old);
	r->nrecords++;
}

/*
 * The record just read is a logical message: one with prefix "connlog"
 * that done does not say is written is counted, never written.
 */
static void
count_legacy(ConnlogReplay *r)
{
	xl_logical_message *m = (xl_logical_message *) XLogRecGetData(r->xr);
	uint64		epoch;
	uint64		seq;

	if (m->prefix_size != sizeof(LEGACY_PREFIX) ||
		memcmp(m->message, LEGACY_PREFIX, sizeof(LEGACY_PREFIX)) != 0 ||
		m->message_size < LEGACY_HEADER_SIZE)
		return;
	memcpy(&epoch, m->message + m->prefix_size, sizeof(epoch));
	memcpy(&seq, m->message + m->prefix_size + sizeof(epoch), sizeof(seq));
	if (!(epoch == r->done->epoch && seq < r->done->seq))
		r->nlegacy++;
}

/* Read the next WAL record up to upto; false once there is none. */
static bool
read_next(ConnlogReplay *r)
{
	XLogReaderState *xr = r->xr;
	char	   *errormsg = NULL;

	if (XLogReadRecord(xr, &errormsg) == NULL)
	{
		if (errormsg != NULL)
			ereport(WARNING,
					(errmsg("connlog stopped replaying WAL at %X/%X: %s",
							LSN_FORMAT_ARGS(xr->EndRecPtr), errormsg)));
		return false;
	}
	if (xr->EndRecPtr > r->upto)
		return false;
	r->last_end = xr->EndRecPtr;
	if (XLogRecGetRmid(xr) == CONNLOG_RMGR_ID)
		take_record(r);
	else if (XLogRecGetRmid(xr) == RM_LOGICALMSG_ID &&
			 (XLogRecGetInfo(xr) & ~XLR_INFO_MASK) == XLOG_LOGICAL_MESSAGE)
		count_legacy(r);
	return true;
}

/* One WARNING for each kind of record that was read and not written */
static void
warn_left_out(const ConnlogReplay *r)
{
	if (r->ninvalid > 0)
		ereport(WARNING,
				(errmsg("connlog did not write %llu events of its WAL records between %X/%X and %X/%X",
						(unsigned long long) r->ninvalid,
						LSN_FORMAT_ARGS(r->done->lsn),
						LSN_FORMAT_ARGS(r->last_end)),
				 errdetail("connlog_enqueue would refuse their events (the first: %s).",
						   r->first_refusal)));
	if (r->nlegacy > 0)
		ereport(WARNING,
				(errmsg("connlog did not write %llu events from logical messages with prefix \"%s\" between %X/%X and %X/%X",
						(unsigned long long) r->nlegacy, LEGACY_PREFIX,
						LSN_FORMAT_ARGS(r->done->lsn),
						LSN_FORMAT_ARGS(r->last_end)),
				 errdetail("connlog writes only the records of its own WAL resource manager \"%s\".  Any role can write logical messages with pg_logical_emit_message(), and those a connlog library signed with the key in file \"connlog_wal.key\" can be forged by anyone who has read that file.",
						   CONNLOG_RMGR_NAME),
				 errhint("Stop the server cleanly, which writes the pending events, before replacing the connlog library.")));
}

/*
 * Read connlog's records among the WAL records that start at or after
 * done->lsn and end at or before upto (an insert position), leaving out
 * the events done says are written and all those of this life, into *r
 * (replay.h says what each field holds), events palloc'd in the caller's
 * context.  Nothing is read if done->lsn is not before upto.
 */
void
connlog_wal_read_records(ConnlogReplay *r, const ConnlogProgress *done,
						 XLogRecPtr upto)
{
	memset(r, 0, sizeof(*r));
	r->done = done;
	r->last_end = done->lsn;
	r->gone_to = InvalidXLogRecPtr;
	r->cxt = CurrentMemoryContext;
	if (done->lsn >= upto)
		return;
	initStringInfo(&r->events);

	/*
	 * WAL up to upto may still sit in the WAL buffers (connlog.durability =
	 * wal).  upto is an insert position: flush only to the end of the WAL
	 * generated by then (doc/internals.md, "What may be asked of the WAL
	 * writer").
	 */
	r->upto = connlog_wal_insert_end(upto);
	XLogFlush(r->upto);

	StartTransactionCommand();
	PG_TRY();
	{
		if (!XLogRecPtrIsInvalid(reader_open(r)))
			while (r->xr->EndRecPtr < r->upto && read_next(r))
				;
		if (r->xr != NULL)
			XLogReaderFree(r->xr);
		r->xr = NULL;
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata = connlog_abort_caught(r->cxt, close_segment,
												 r->xr);

		ereport(WARNING,
				(errmsg("connlog stopped replaying WAL at %X/%X: %s",
						LSN_FORMAT_ARGS(r->last_end), edata->message),
				 errdetail("WAL-backed events after that point that were not written yet are lost.")));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(r->cxt);
	warn_left_out(r);
}
