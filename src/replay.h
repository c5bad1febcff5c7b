/*-------------------------------------------------------------------------
 *
 * replay.h
 *		Reading connlog's WAL records back, for the worker's replay
 *		(replay.c).
 *
 * IDENTIFICATION
 *	  src/replay.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_REPLAY_H
#define CONNLOG_REPLAY_H

#include "access/xlogreader.h"
#include "lib/stringinfo.h"

#include "walshared.h"

/*
 * One read of connlog's records from the progress done on, up to an
 * insert position.  The caller reads the first five fields; the others
 * are the reader's.
 */
typedef struct ConnlogReplay
{
	StringInfoData events;		/* the ring records to write, back to back;
								 * data is NULL if nothing was read */
	uint64		nrecords;		/* how many */
	uint64		nskipped;		/* left out: written, or in the ring */
	XLogRecPtr	last_end;		/* the end of the last WAL record read
								 * (done->lsn if none): no connlog record
								 * ending at or before it was missed */
	XLogRecPtr	gone_to;		/* WAL from done->lsn to here is gone;
								 * InvalidXLogRecPtr if none is */

	const ConnlogProgress *done;
	XLogRecPtr	upto;			/* the end of the WAL to read */
	MemoryContext cxt;			/* the caller's, for events */
	XLogReaderState *xr;
	uint64		ninvalid;		/* records connlog_enqueue would refuse */
	const char *first_refusal;	/* why, for the first of them */
	uint64		nlegacy;		/* logical messages in the old form */
} ConnlogReplay;

extern void connlog_wal_read_records(ConnlogReplay *r,
									 const ConnlogProgress *done,
									 XLogRecPtr upto);

#endif							/* CONNLOG_REPLAY_H */
