/*-------------------------------------------------------------------------
 *
 * slot.h
 *		The replication slot that keeps the WAL of WAL-backed events not
 *		written yet (slot.c).
 *
 * IDENTIFICATION
 *	  src/slot.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_SLOT_H
#define CONNLOG_SLOT_H

#include "access/xlogdefs.h"

/* the worker and the standby's keeper; each returns false with *error */
extern bool connlog_wal_slot_exists(void);
extern bool connlog_wal_slot_create(XLogRecPtr restart_lsn, char **error);
extern bool connlog_wal_slot_advance(XLogRecPtr lsn, char **error);
extern bool connlog_wal_slot_take(XLogRecPtr lsn, XLogRecPtr *moved_to,
								  char **error);

/* where the WAL left in pg_wal starts, if the WAL at lsn is gone */
extern XLogRecPtr connlog_wal_gone_to(XLogRecPtr lsn);

#endif							/* CONNLOG_SLOT_H */
