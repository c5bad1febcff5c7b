/*-------------------------------------------------------------------------
 *
 * batches.h
 *		The worker's batches: taking events from the ring, writing them,
 *		and accounting for them (batches.c).
 *
 * IDENTIFICATION
 *	  src/batches.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_BATCHES_H
#define CONNLOG_BATCHES_H

#include "utils/timestamp.h"

/*
 * What the batch side asks of the worker's process side (worker.c), whose
 * state says whether the worker can write.  Given once, to
 * connlog_batches_init().
 */
typedef struct ConnlogBatchesHooks
{
	/* Can the worker write?  Asked before each batch is written. */
	bool		(*can_write) (void);
	/* A write found the extension missing: writing stops. */
	void		(*found_missing) (void);
	/* A write was refused for a privilege (error): writing stops. */
	void		(*denied) (const char *error);

	/*
	 * A part of a split was refused for a privilege: wait until the worker
	 * can write again.  Returns false if the worker must exit first.
	 */
	bool		(*wait_until_writable) (void);

	/*
	 * Every row of a batch failed, alone or with others, with an error no row
	 * causes by its nature (error: the last one): the batch is held. NULL:
	 * rows have been written since.
	 */
	void		(*held) (const char *error);
} ConnlogBatchesHooks;

extern void connlog_batches_init(const ConnlogBatchesHooks *hooks);
extern void connlog_batches_reloaded(void);

/* each turn of the worker's loop, while it can write */
extern bool connlog_batches_replay(void);
extern uint64 connlog_batches_next_seq(void);
extern void connlog_batches_retry(TimestampTz now);
extern void connlog_batches_drain(void);
extern void connlog_batches_write_current(void);

/* each turn, whether it can write or not */
extern void connlog_batches_publish_done(void);
extern bool connlog_batches_queue_full(void);
extern TimestampTz connlog_batches_next_retry(void);

/* on SIGTERM */
extern void connlog_batches_exit_by(TimestampTz deadline);
extern bool connlog_batches_exiting(void);
extern void connlog_batches_before_exit(uint64 target);

#endif							/* CONNLOG_BATCHES_H */
