/*-------------------------------------------------------------------------
 *
 * compat.h
 *		Differences between PostgreSQL major versions that connlog touches.
 *
 * connlog keeps one source for PostgreSQL 13 to 18.  Only 15 is built and
 * tested here (it is the only server whose headers are installed); the
 * other branches below follow the servers' headers as read from the
 * PostgreSQL sources and are not compiled by anything in this repository,
 * so a build on another version may still find a difference missed here.
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
 *
 * Differences that need nothing here: postmaster/interrupt.h is 13's, and
 * so the floor; pgstat_report_activity() and pgstat_report_appname() moved
 * to utils/backend_status.h in 14, which pgstat.h includes; postgres.h
 * includes varatt.h (16), wait_event.h includes wait_event_types.h (17),
 * latch.h includes waiteventset.h (18); pgstat_report_stat() returns long
 * from 15 and ConditionVariableCancelSleep() bool from 16, results connlog
 * ignores.  HACKING.md's "PostgreSQL versions" lists them all.
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
 * WAL records need one of their own (wal.c, "The records").
 */
#if PG_VERSION_NUM >= 150000
#define CONNLOG_HAVE_CUSTOM_RMGR
#endif

#endif							/* CONNLOG_COMPAT_H */
