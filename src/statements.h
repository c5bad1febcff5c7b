/*-------------------------------------------------------------------------
 *
 * statements.h
 *		The statements the worker, the standby's keeper and progress.c run on
 *		the target (statements.c).
 *
 * IDENTIFICATION
 *	  src/statements.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_STATEMENTS_H
#define CONNLOG_STATEMENTS_H

#include "batch.h"
#include "connlog.h"
#include "runner.h"
#include "utils/timestamp.h"

extern ConnlogWriteStatus connlog_write_upsert(const ClBatch *b, int start,
											   int n, bool rewrite,
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

#endif							/* CONNLOG_STATEMENTS_H */
