/*-------------------------------------------------------------------------
 *
 * compat.h
 *		Differences between PostgreSQL major versions that connlog touches.
 *
 * connlog keeps one source for PostgreSQL 13 to 18.  15 to 18 are built
 * with -Werror and tested (HACKING.md, "PostgreSQL versions"); the 13 and
 * 14 branches follow those servers' headers and nothing here compiles them.
 *
 * Where an API was renamed or retyped, this file gives the call sites the
 * newest spelling on every version, so they need no #if:
 *
 *	- utils/wait_event.h (14; pgstat.h before) is included here.
 *	- shmem_request_hook (15): CONNLOG_HAVE_SHMEM_REQUEST_HOOK, since
 *	  before 15 RequestAddinShmemSpace() and RequestNamedLWLockTranche()
 *	  are called straight from _PG_init() instead.
 *	- MarkGUCPrefixReserved() (15; EmitWarningsOnPlaceholders() before).
 *	- object_aclcheck() (16; pg_namespace_aclcheck() before): provided for
 *	  NamespaceRelationId.  pg_class_aclcheck() and get_role_oid() are the
 *	  same on every version.
 *	- INTERVAL_NOT_FINITE() (17, when intervals gained +/-infinity): false
 *	  before, as no interval was infinite.
 *	- CONNLOG_WAIT_EVENT(): named wait events (WaitEventExtensionNew, 17);
 *	  "Extension" before.
 *	- custom WAL resource managers (RegisterCustomRmgr, 15):
 *	  CONNLOG_HAVE_CUSTOM_RMGR.  Before 15 connlog has no WAL records of its
 *	  own, and connlog.durability = wal and flush are refused.
 *	- INDEX_NULLS_NOT_DISTINCT() (15, unique indexes NULLS NOT DISTINCT):
 *	  false before, as every unique index treated NULLs as distinct.
 *	- ERRCODE_SNAPSHOT_TOO_OLD (gone in 17): defined, as its SQLSTATE.
 *	- ReplicationSlotCreate() (17 added failover and synced) and
 *	  ReplicationSlotAcquire() (18 added error_if_invalid):
 *	  connlog_slot_create() and connlog_slot_acquire().
 *	- pg_noreturn (18; pg_attribute_noreturn() after the declarator before).
 *	- BackgroundWorkerList (a dlist from 18, an slist before): the type of
 *	  its nodes is ConnlogBgworkerNode.
 *
 * The differences that need nothing here are in HACKING.md, "PostgreSQL
 * versions".
 *
 * IDENTIFICATION
 *	  src/compat.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_COMPAT_H
#define CONNLOG_COMPAT_H

#if PG_VERSION_NUM < 130000
#error "connlog requires PostgreSQL 13 or later"
#endif

#include "catalog/pg_namespace.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#if PG_VERSION_NUM >= 140000
#include "utils/wait_event.h"
#else
#include "pgstat.h"				/* PG_WAIT_EXTENSION */
#endif

/*
 * 15 added shmem_request_hook and made RequestAddinShmemSpace() legal only
 * inside it; before 15 it was called straight from _PG_init().
 */
#if PG_VERSION_NUM >= 150000
#define CONNLOG_HAVE_SHMEM_REQUEST_HOOK 1
#endif

/*
 * 15 added unique indexes NULLS NOT DISTINCT (pg_index.indnullsnotdistinct);
 * before, every unique index treats NULLs as distinct.
 */
#if PG_VERSION_NUM >= 150000
#define INDEX_NULLS_NOT_DISTINCT(ix) ((ix)->indnullsnotdistinct)
#else
#define INDEX_NULLS_NOT_DISTINCT(ix) ((void) (ix), false)
#endif

/* 15 renamed EmitWarningsOnPlaceholders() */
#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

/*
 * 16 replaced the per-catalog pg_<object>_aclcheck() functions, among them
 * pg_namespace_aclcheck(), by object_aclcheck(classid, ...).  Only the
 * classes connlog checks are mapped; any other is a bug in connlog.
 */
#if PG_VERSION_NUM < 160000
static inline AclResult
object_aclcheck(Oid classid, Oid objectid, Oid roleid, AclMode mode)
{
	if (classid == NamespaceRelationId)
		return pg_namespace_aclcheck(objectid, roleid, mode);
	elog(ERROR, "connlog: object_aclcheck() is not mapped for class %u before PostgreSQL 16",
		 classid);
	pg_unreachable();
}
#endif

/*
 * 17 lets intervals be +/-infinity.  Before that none is, so code that
 * turns an interval into a duration can test for it on every version.
 */
#ifndef INTERVAL_NOT_FINITE
#define INTERVAL_NOT_FINITE(i) ((void) (i), false)
#endif

/*
 * 17 lets an extension name its wait events (WaitEventExtensionNew);
 * before that they all show as "Extension".
 */
#if PG_VERSION_NUM >= 170000
#define CONNLOG_WAIT_EVENT(var, name) \
	((var) != 0 ? (var) : ((var) = WaitEventExtensionNew(name)))
#else
#define CONNLOG_WAIT_EVENT(var, name) ((void) (var), PG_WAIT_EXTENSION)
#endif

/*
 * 15 made WAL resource managers pluggable (RegisterCustomRmgr); connlog's
 * WAL records need one of their own (doc/internals.md, "The records").
 */
#if PG_VERSION_NUM >= 150000
#define CONNLOG_HAVE_CUSTOM_RMGR
#endif

/*
 * 17 removed old_snapshot_threshold and with it the "snapshot too old"
 * error, SQLSTATE 72000.  No server from 17 on raises it; defined here so
 * that runner.c keeps one list of transient errors for every version.
 */
#ifndef ERRCODE_SNAPSHOT_TOO_OLD
#define ERRCODE_SNAPSHOT_TOO_OLD MAKE_SQLSTATE('7','2','0','0','0')
#endif

/*
 * 17 added two arguments to ReplicationSlotCreate(): failover, which lets
 * a standby's slot synchronization (sync_replication_slots) copy a slot
 * from the primary, and synced, which only that synchronization sets.
 * connlog's slot is physical, and slot synchronization copies logical
 * slots only (a physical slot's failover is always false), so the standby
 * keeper (standby.c) is still what keeps the primary's unwritten events on
 * a standby; connlog passes false to both.  Even for a logical slot the
 * synchronization needs hot_standby_feedback, primary_slot_name and a
 * database in primary_conninfo, which the keeper does not.
 */
#if PG_VERSION_NUM >= 170000
#define connlog_slot_create(name) \
	ReplicationSlotCreate((name), false, RS_PERSISTENT, false, false, false)
#else
#define connlog_slot_create(name) \
	ReplicationSlotCreate((name), false, RS_PERSISTENT, false)
#endif

/*
 * 18 added error_if_invalid to ReplicationSlotAcquire(): true makes it fail
 * on a slot that max_slot_wal_keep_size (or, for a logical slot, a
 * conflict) invalidated.  connlog passes false, as every version before
 * behaves: slot.c acquires the slot only to move its
 * restart_lsn forward, which an invalidated slot takes without keeping any
 * WAL again, and an error at each of the worker's writes would say nothing
 * the server's own invalidation message did not (doc/internals.md,
 * "The standby's keeper").
 */
#if PG_VERSION_NUM >= 180000
#define connlog_slot_acquire(name, nowait) \
	ReplicationSlotAcquire((name), (nowait), false)
#else
#define connlog_slot_acquire(name, nowait) \
	ReplicationSlotAcquire((name), (nowait))
#endif

/*
 * 18 replaced pg_attribute_noreturn(), which followed the declarator, by
 * pg_noreturn, which comes first (it can be C11's _Noreturn, a function
 * specifier).  The GCC attribute that pg_attribute_noreturn() stands for
 * may also come first, so the newest spelling serves every version.
 */
#ifndef pg_noreturn
#define pg_noreturn pg_attribute_noreturn()
#endif

/*
 * 18 made the postmaster's BackgroundWorkerList a dlist (an slist before);
 * both versions push a new registration at the head, which connlog.c reads
 * to tell whether RegisterBackgroundWorker() took a worker.
 */
#include "lib/ilist.h"
#if PG_VERSION_NUM >= 180000
typedef dlist_node ConnlogBgworkerNode;
#else
typedef slist_node ConnlogBgworkerNode;
#endif

#endif							/* CONNLOG_COMPAT_H */
