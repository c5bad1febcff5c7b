/*-------------------------------------------------------------------------
 *
 * compat.h
 *		Differences between PostgreSQL major versions that connlog touches.
 *
 * Only PostgreSQL 15 is built and tested here; the other branches follow
 * the servers' headers (shmem_request_hook appeared in 15, custom wait
 * events in 17) and keep the code one source for 13 and later.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_COMPAT_H
#define CONNLOG_COMPAT_H

#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/wait_event.h"

#if PG_VERSION_NUM < 130000
#error "connlog requires PostgreSQL 13 or later"
#endif

/*
 * 15 added shmem_request_hook and made RequestAddinShmemSpace() legal only
 * inside it; before 15 it was called straight from _PG_init().
 */
#if PG_VERSION_NUM >= 150000
#define CONNLOG_HAVE_SHMEM_REQUEST_HOOK 1
#endif

/* 15 renamed EmitWarningsOnPlaceholders() */
#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
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
 * 16 folded pg_namespace_aclcheck() and its siblings into object_aclcheck().
 */
#if PG_VERSION_NUM < 160000
#include "catalog/pg_namespace.h"
#include "utils/acl.h"
static inline AclResult
object_aclcheck(Oid classid, Oid objectid, Oid roleid, AclMode mode)
{
	Assert(classid == NamespaceRelationId);
	return pg_namespace_aclcheck(objectid, roleid, mode);
}
#endif

/* ---- connlog.durability (wal.c) ---- */

/* 17 gave LogLogicalMessage() a flush argument */
#include "replication/message.h"
#if PG_VERSION_NUM >= 170000
#define connlog_log_message(prefix, msg, len) \
	LogLogicalMessage((prefix), (msg), (len), false, false)
#else
#define connlog_log_message(prefix, msg, len) \
	LogLogicalMessage((prefix), (msg), (len), false)
#endif

#endif							/* CONNLOG_COMPAT_H */
