/*-------------------------------------------------------------------------
 *
 * wal.h
 *		connlog.durability's WAL records and the producers' side (wal.c).
 *
 * IDENTIFICATION
 *	  src/wal.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_WAL_H
#define CONNLOG_WAL_H

#include "access/xlogdefs.h"

#define CONNLOG_SLOT_NAME		"connlog"
/* with wal, producers wake the WAL writer at most this often (see wal.c) */
#define CONNLOG_WAL_WAKE_MS		10

/*
 * connlog's WAL resource manager.  A WAL record names its resource manager
 * by this number alone, so it is fixed for as long as any WAL holds
 * connlog's records: 129 to 255 are for extensions (128,
 * RM_EXPERIMENTAL_ID, is for development only), and this one is
 * connlog's.
 */
#define CONNLOG_RMGR_ID			187
#define CONNLOG_RMGR_NAME		"connlog"
/* the record of one enqueued event: its info bits */
#define XLOG_CONNLOG_EVENT		0x00
/* a record's data: epoch and seq (uint64 each), then the ring record */
#define CONNLOG_WAL_HEADER_SIZE	(2 * sizeof(uint64))

/* _PG_init, while shared_preload_libraries are loaded */
extern void connlog_wal_register_rmgr(void);

/* producers (connlog_enqueue) */
extern XLogRecPtr connlog_wal_insert(char *msg, uint64 seq, uint32 len);
extern void connlog_wal_flush(XLogRecPtr end);
extern void connlog_wal_check_enqueue(void);

/* the worker: wake the WAL writer for the producers' last records */
extern long connlog_wal_wake_writer(void);

/* the end of the WAL generated when the insert position was insert */
extern XLogRecPtr connlog_wal_insert_end(XLogRecPtr insert);

#endif							/* CONNLOG_WAL_H */
