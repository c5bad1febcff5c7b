/*-------------------------------------------------------------------------
 *
 * connlog.h
 *		Settings and entry points shared by connlog's source files.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_H
#define CONNLOG_H

#include <signal.h>

#include "batch.h"
#include "access/xlogdefs.h"
#include "utils/timestamp.h"

/* GUCs, defined in connlog.c */
extern char *connlog_database;
extern char *connlog_role;
extern char *connlog_table;
extern int	connlog_ring_size_kb;
extern int	connlog_batch_size;
extern int	connlog_flush_interval_ms;
extern int	connlog_max_retries;
extern int	connlog_retry_interval_ms;
extern int	connlog_retry_queue_size;
extern int	connlog_shutdown_timeout_ms;
extern int	connlog_enqueue_timeout_ms;
extern int	connlog_overflow;
extern bool connlog_log_events;
extern int	connlog_retention_s;
extern int	connlog_purge_batch_size;
extern int	connlog_purge_interval_ms;
extern int	connlog_durability;

extern bool connlog_table_name(const char *value, char **schema,
							   char **relname);

/* connlog.durability */
typedef enum ConnlogDurability
{
	CL_DURABILITY_MEMORY,
	CL_DURABILITY_WAL,
	CL_DURABILITY_FLUSH
} ConnlogDurability;

/*
 * connlog.durability's progress, stored in connlog_wal_progress with each
 * write (see wal.c): of the WAL-backed events of shared memory's life
 * epoch, those numbered below seq are written; every WAL-backed event not
 * written starts at or after lsn, or belongs to another life.
 */
typedef struct ConnlogProgress
{
	uint64		epoch;
	uint64		seq;
	XLogRecPtr	lsn;
	/* stored by an exiting worker: how many of those were not written */
	bool		at_exit;
	uint64		pending;
} ConnlogProgress;

/* wal.c */
#define CONNLOG_WAL_PREFIX		"connlog"
#define CONNLOG_SLOT_NAME		"connlog"
/* with wal, producers wake the WAL writer at most this often (see wal.c) */
#define CONNLOG_WAL_WAKE_MS		10
/* the per-cluster key of the records' MACs, in the data directory */
#define CONNLOG_WAL_KEY_FILE	"connlog_wal.key"
/* bytes of a record's MAC: HMAC-SHA-256, truncated */
#define CONNLOG_WAL_MAC_SIZE	16
/*
 * A WAL record's payload: epoch and seq (uint64 each), the MAC of those
 * and the record, then the record
 */
#define CONNLOG_WAL_HEADER_SIZE	(2 * sizeof(uint64) + CONNLOG_WAL_MAC_SIZE)
extern void connlog_wal_load_key(void);
extern XLogRecPtr connlog_wal_insert(char *msg, uint64 seq, uint32 len);
extern void connlog_wal_flush(XLogRecPtr end);
extern void connlog_wal_check_enqueue(void);
extern char *connlog_wal_replay(const ConnlogProgress *done, XLogRecPtr upto,
								XLogRecPtr *last_end,
								uint64 *nrecords, uint64 *nskipped,
								size_t *nbytes);
extern XLogSegNo connlog_wal_oldest_segment(void);
extern bool connlog_wal_slot_exists(void);
extern bool connlog_wal_slot_create(XLogRecPtr restart_lsn, char **error);
extern bool connlog_wal_slot_advance(XLogRecPtr lsn, char **error);

/* worker.c */
extern PGDLLEXPORT void connlog_worker_main(Datum main_arg);
extern volatile sig_atomic_t connlog_in_statement;

/* writer.c: every statement the worker runs */
typedef enum ConnlogWriteStatus
{
	CL_WRITE_OK,
	CL_WRITE_FAILED,			/* an error of no class below */
	CL_WRITE_TRANSIENT,			/* an error the next attempt may not meet */
	CL_WRITE_BAD_DATA,			/* an error some row itself causes */
	CL_WRITE_MISSING,			/* extension not installed in the database */
	CL_WRITE_DENIED				/* connlog.role lacks a privilege (42501) */
} ConnlogWriteStatus;

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

#endif							/* CONNLOG_H */
