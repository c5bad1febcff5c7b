/*-------------------------------------------------------------------------
 *
 * batchwrite.h
 *		Writing one of the worker's batches (batchwrite.c).
 *
 * IDENTIFICATION
 *	  src/batchwrite.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_BATCHWRITE_H
#define CONNLOG_BATCHWRITE_H

#include "utils/timestamp.h"

#include "batches.h"
#include "held.h"

extern void connlog_batch_write_init(const ConnlogBatchesHooks *hooks);
extern bool connlog_batch_write(WorkerBatch *b, bool retry);

/* the worker's exit: its writes end at the deadline */
extern void connlog_batch_write_exit_by(TimestampTz deadline);
extern bool connlog_batch_write_exiting(void);
extern bool connlog_batch_write_budget(void);

#endif							/* CONNLOG_BATCHWRITE_H */
