/*-------------------------------------------------------------------------
 *
 * writer.h
 *		The statements the worker runs (writer.c).
 *
 * IDENTIFICATION
 *	  src/writer.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_WRITER_H
#define CONNLOG_WRITER_H

#include <signal.h>

#include "batch.h"
#include "connlog.h"
#include "utils/elog.h"
#include "utils/palloc.h"
#include "utils/timestamp.h"

/* What came of a statement */
typedef enum ConnlogWriteStatus
{
	CL_WRITE_OK,
	CL_WRITE_FAILED,			/* an error of no class below */
	CL_WRITE_TRANSIENT,			/* an error the next attempt may not meet */
	CL_WRITE_BAD_DATA,			/* an error some row itself causes */
	CL_WRITE_MISSING,			/* extension not installed in the database */
	CL_WRITE_DENIED,			/* connlog.role lacks a privilege (42501) */
	CL_WRITE_UNREACHABLE		/* a node of a Citus cluster failed or refused
								 * the statement (citus.c) */
} ConnlogWriteStatus;

/* true while a statement runs: the worker's SIGTERM and SIGINT cancel it */
extern volatile sig_atomic_t connlog_in_statement;

extern ConnlogWriteStatus connlog_write_upsert(const ClBatch *b, int start,
											   int n,
											 const ConnlogProgress *progress,
											   char **error);
extern ConnlogWriteStatus connlog_write_rejected(const ClBatch *b, int i,
												 const char *reason,
											 const ConnlogProgress *progress,
												 char **error);
extern ConnlogWriteStatus connlog_read_progress(ConnlogProgress *done,
												char **error);
extern ConnlogWriteStatus connlog_write_progress(const ConnlogProgress *done,
												 char **error);
extern ConnlogWriteStatus connlog_check_target(char **error);
extern ConnlogWriteStatus connlog_write_purge(TimestampTz cutoff, int limit,
											  uint64 *deleted, char **error);
extern void connlog_log_event(const ClEvent *ev);
extern void connlog_writer_set_timeout(int timeout_ms);
extern void connlog_writer_init_session(void);
extern ErrorData *connlog_abort_caught(MemoryContext caller_cxt,
									   void (*cleanup) (void *arg),
									   void *arg);

#endif							/* CONNLOG_WRITER_H */
