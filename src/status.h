/*-------------------------------------------------------------------------
 *
 * status.h
 *		What SQL sees of the worker, and the errors that say why it is not
 *		keeping up (status.c).
 *
 * IDENTIFICATION
 *	  src/status.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_STATUS_H
#define CONNLOG_STATUS_H

#include "compat.h"

/* errors unless connlog runs: for the SQL functions */
extern void connlog_require_shared_memory(void);
extern void connlog_require_worker(void);

/* the error of an enqueue that found the ring full */
extern pg_noreturn void connlog_ring_full_error(void);

#endif							/* CONNLOG_STATUS_H */
