/*-------------------------------------------------------------------------
 *
 * held.h
 *		The batches the worker holds, and the accounting of their events
 *		(held.c).
 *
 * IDENTIFICATION
 *	  src/held.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_HELD_H
#define CONNLOG_HELD_H

#include "access/xlogdefs.h"
#include "utils/timestamp.h"

#include "batch.h"
#include "connlog.h"
#include "progress.h"

/*
 * A batch the worker holds: its merged rows (batch.c), and what the worker
 * keeps about them until every one of its events is accounted for.
 */
typedef struct WorkerBatch
{
	ClBatch    *batch;			/* the rows */
	/* connlog.durability (progress.c) */
	XLogRecPtr	lsn_floor;		/* no WAL event of the batch ends before it;
								 * invalid if the batch has none */
	uint64		nwal;			/* WAL-backed events added */
	bool		replayed;		/* holds events read back from WAL */

	/*
	 * Some rows may be in the table already (read back from WAL, or read by a
	 * predecessor): the upsert skips a web event whose row exists.
	 */
	bool		rewrite;
	/* the ring */
	uint64		pos_start;		/* the ring bytes of its events */
	uint64		pos_end;
	uint64		ndropped;		/* events discarded as malformed */
	/* retries and splits */
	bool		splitting;		/* being written in parts */
	int			attempts;
	uint64		written_mark;	/* upserts committed before this attempt */
	TimestampTz next_attempt;
} WorkerBatch;

/* ClEntry.outcome */
#define OUTCOME_PENDING		0
#define OUTCOME_WRITTEN		1
#define OUTCOME_REJECTED	2
#define OUTCOME_DROPPED		3
#define NUM_OUTCOMES		4

extern void connlog_held_init(void);
extern void connlog_held_reloaded(void);

/* cur, the batch being filled, and the retry queue, oldest first */
extern WorkerBatch *connlog_held_current(void);
extern int	connlog_held_nqueued(void);
extern WorkerBatch *connlog_held_queued(int i);
extern bool connlog_held_fill(void);
extern void connlog_held_current_done(bool accounted);
extern void connlog_held_dequeue(int i);
extern void connlog_held_release_ring(void);

/* outcomes and what is left */
extern void connlog_held_settle(WorkerBatch *b, int start, int n,
								uint8 outcome);
extern void connlog_held_accounted(const WorkerBatch *b);
extern void connlog_held_events(const WorkerBatch *exclude, ConnlogHeld *h);
extern ConnlogProgress *connlog_held_progress(const WorkerBatch *exclude,
											  ConnlogProgress *p);
extern void connlog_held_publish_done(void);
extern uint64 connlog_held_next_seq(void);
extern TimestampTz connlog_held_next_retry(void);

#endif							/* CONNLOG_HELD_H */
