/*-------------------------------------------------------------------------
 *
 * spellings.c
 *		Compile-only check of src/compat.h (test/suites/20-compat.sh).
 *
 * Each function below uses one compat.h spelling the way a call site
 * would, with the newest API's argument types, so that compiling this
 * file against the installed server's headers checks the branch of
 * compat.h that server selects.  Nothing here is linked or run.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#define CONNLOG_COMPAT_WAL
#include "compat.h"

PG_MODULE_MAGIC_EXT(.name = "connlog_compat_check",.version = "0");

extern bool schema_usable(Oid nspoid, Oid roleid);
extern void connect_worker(const char *db, const char *role);
extern uint32 wait_event(void);
extern bool timeout_finite(const Interval *timeout);
extern bool shmem_request_hook_present(void);
extern void reserve_prefix(void);
extern void register_wal(RmgrId rmid);

/* schema USAGE, spelled as 16 spells it */
bool
schema_usable(Oid nspoid, Oid roleid)
{
	return object_aclcheck(NamespaceRelationId, nspoid, roleid,
						   ACL_USAGE) == ACLCHECK_OK &&
		OidIsValid(get_role_oid("connlog_compat_check", true));
}

void
connect_worker(const char *db, const char *role)
{
	BackgroundWorkerInitializeConnection(db, role,
										 CONNLOG_BYPASS_ROLELOGINCHECK);
}

uint32
wait_event(void)
{
	static uint32 ev;

	return CONNLOG_WAIT_EVENT(ev, "ConnlogCompatCheck");
}

bool
timeout_finite(const Interval *timeout)
{
	return !INTERVAL_NOT_FINITE(timeout);
}

bool
shmem_request_hook_present(void)
{
#ifdef CONNLOG_HAVE_SHMEM_REQUEST_HOOK
	return shmem_request_hook != NULL;
#else
	return false;
#endif
}

void
reserve_prefix(void)
{
	MarkGUCPrefixReserved("connlog_compat_check");
}

typedef struct CompatRecord
{
	int64		value;
} CompatRecord;

#ifdef CONNLOG_HAVE_CUSTOM_RMGR
static void
compat_redo(XLogReaderState *record)
{
}

static const RmgrData compat_rmgr = {
	.rm_name = "connlog_compat_check",
	.rm_redo = compat_redo,
};
#endif

/* a WAL record from const data, as 18 types it */
void
register_wal(RmgrId rmid)
{
	const CompatRecord rec = {0};

#ifdef CONNLOG_HAVE_CUSTOM_RMGR
	RegisterCustomRmgr(rmid, &compat_rmgr);
#endif
	XLogBeginInsert();
	XLogRegisterData(&rec, sizeof(rec));
	XLogRegisterBufData(0, &rec, sizeof(rec));
	(void) XLogInsert(rmid, 0);
}
