/*-------------------------------------------------------------------------
 *
 * connlog.h
 *		connlog's settings (settings.c), and the durability progress that
 *		the statements, the worker, progress.c and the standby's keeper all
 *		handle.
 *
 * A leaf: any file may include it without making an include cycle.
 *
 * IDENTIFICATION
 *	  src/connlog.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_H
#define CONNLOG_H

#include "access/xlogdefs.h"

/* connlog.durability's types: the mode, and the progress */
#include "walshared.h"

/* GUCs, defined in settings.c */
extern char *connlog_database;
extern char *connlog_role;
extern char *connlog_target_table;
extern char *connlog_table;
extern int	connlog_ring_size_kb;
extern int	connlog_batch_size;
extern int	connlog_flush_interval_ms;
extern int	connlog_max_retries;
extern int	connlog_retry_interval_ms;
extern int	connlog_retry_queue_size;
extern int	connlog_shutdown_timeout_ms;
extern int	connlog_statement_timeout_ms;
extern int	connlog_enqueue_timeout_ms;
extern int	connlog_overflow;
extern bool connlog_log_events;
extern int	connlog_retention_s;
extern int	connlog_purge_batch_size;
extern int	connlog_purge_interval_ms;
extern int	connlog_durability;

/* true in connlog's worker: connlog_enqueue() must not wait for itself */
extern bool connlog_is_worker;

extern void connlog_define_settings(void);
extern bool connlog_table_name(const char *value, char **schema,
							   char **relname);
extern const char *connlog_effective_table(void);

/*
 * connlog.overflow: what a producer does when the ring is full (and so
 * what connlog_ring_put_many() does then)
 */
typedef enum ConnlogPutMode
{
	CL_PUT_WAIT,
	CL_PUT_ERROR,
	CL_PUT_DROP
} ConnlogPutMode;

#endif							/* CONNLOG_H */
