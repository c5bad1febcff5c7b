/*-------------------------------------------------------------------------
 *
 * runner.c
 *		Running one statement of the connlog worker in a transaction of its
 *		own, what came of it, and the worker's session.
 *
 * Each statement is one transaction, like worker_spi: a batch either lands
 * whole or not at all.  connlog_run_statement() connects SPI, runs the
 * statement's work, and catches any error: it rolls the transaction back,
 * turns the error into the message connlog_stats.last_error shows, and
 * classifies it by whose fault it is (ConnlogWriteStatus), which decides
 * what the worker does next.  It publishes nothing: the caller says what
 * the worker is doing and what came of it.
 *
 * Every statement is bounded by connlog.statement_timeout and, while the
 * worker exits, by the time it has left (connlog_writer_set_timeout);
 * guard.c arms the bound and makes a cancel of connlog's own stick.
 *
 * connlog_writer_init_session() gives the worker's session the settings it
 * chooses for itself, whatever the database's and roles' ALTER ... SET
 * say (session_settings below says why each).
 *
 * See doc/internals.md, "Statements: the runner, the target, the plans".
 *
 * IDENTIFICATION
 *	  src/runner.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "citus.h"
#include "compat.h"
#include "guard.h"
#include "runner.h"

static int	exit_budget_ms = 0; /* 0: the worker is not exiting */

/*
 * What an error with SQLSTATE sqlerrcode means for the worker: the rows'
 * fault, perhaps gone at the next attempt, a missing privilege, or none of
 * those (see doc/internals.md, "Whose fault an error is").
 */
static ConnlogWriteStatus
error_status(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_DATA_EXCEPTION:
		case ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION:
		case ERRCODE_PROGRAM_LIMIT_EXCEEDED:
			return CL_WRITE_BAD_DATA;
		case ERRCODE_TRANSACTION_ROLLBACK:
		case ERRCODE_OPERATOR_INTERVENTION:
		case ERRCODE_INSUFFICIENT_RESOURCES:
		case ERRCODE_SYSTEM_ERROR:
		case ERRCODE_CONNECTION_EXCEPTION:
		case ERRCODE_INVALID_TRANSACTION_STATE:
		case ERRCODE_SNAPSHOT_TOO_OLD:
			return CL_WRITE_TRANSIENT;
		default:
			break;
	}
	switch (sqlerrcode)
	{
		case ERRCODE_INSUFFICIENT_PRIVILEGE:
			return CL_WRITE_DENIED;
		case ERRCODE_LOCK_NOT_AVAILABLE:
		case ERRCODE_OBJECT_IN_USE:
			return CL_WRITE_TRANSIENT;
		default:
			return CL_WRITE_FAILED;
	}
}

/*
 * An error as connlog_stats.last_error shows it: "message (SQLSTATE
 * xxxxx)", and for an error a node of a Citus cluster raised, which node
 * (citus.c), since the same message may come from any of them.
 */
static char *
error_text(const ErrorData *edata)
{
	char	   *node = connlog_citus_node(edata);

	if (node != NULL)
		return psprintf("%s (SQLSTATE %s, on node %s)", edata->message,
						unpack_sql_state(edata->sqlerrcode), node);
	return psprintf("%s (SQLSTATE %s)", edata->message,
					unpack_sql_state(edata->sqlerrcode));
}

/*
 * In the PG_CATCH block of code that started a transaction: take the
 * error out of the error state into caller_cxt, let cleanup (if not NULL)
 * release what the abort does not, abort the transaction, and go back to
 * caller_cxt, since the abort leaves TopMemoryContext current.  The caller
 * frees the ErrorData.
 */
ErrorData *
connlog_abort_caught(MemoryContext caller_cxt, void (*cleanup) (void *arg),
					 void *arg)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(caller_cxt);
	edata = CopyErrorData();
	FlushErrorState();
	if (cleanup != NULL)
		cleanup(arg);
	AbortCurrentTransaction();
	MemoryContextSwitchTo(caller_cxt);
	return edata;
}

/*
 * Run one statement in a transaction of its own: fn runs with SPI
 * connected and returns false if the extension is missing
 * (CL_WRITE_MISSING).  Errors are caught, classified by their SQLSTATE
 * (and by citus.c), and returned as "message (SQLSTATE xxxxx)" in *error,
 * allocated in the caller's memory context; *error is NULL unless an error
 * was caught.  activity is what pg_stat_activity shows meanwhile.
 */
ConnlogWriteStatus
connlog_run_statement(ConnlogStatementFn fn, void *arg, const char *activity,
					  char **error)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	volatile ConnlogWriteStatus status;

	*error = NULL;
	connlog_in_statement = true;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		/* connlog.statement_timeout, and the time left at shutdown */
		connlog_guard_statement_start(exit_budget_ms);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, activity);
		status = fn(arg) ? CL_WRITE_OK : CL_WRITE_MISSING;
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata = connlog_abort_caught(caller_cxt, NULL, NULL);

		*error = error_text(edata);
		status = connlog_citus_node_failure(edata) ?
			CL_WRITE_UNREACHABLE : error_status(edata->sqlerrcode);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	/* a cancel that came too late for the statement must not outlive it */
	connlog_in_statement = false;
	connlog_guard_statement_end();
	QueryCancelPending = false;
	MemoryContextSwitchTo(caller_cxt);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return status;
}

/*
 * Bound every later statement by the time the exiting worker has left
 * (used for the drain at shutdown), besides connlog.statement_timeout; 0
 * removes the bound.
 */
void
connlog_writer_set_timeout(int timeout_ms)
{
	exit_budget_ms = Max(timeout_ms, 0);
}

/*
 * The settings the worker's session chooses for itself, whatever the
 * database's and roles' ALTER ... SET say: each one that could change what
 * the statements run, or make them fail.
 */
typedef struct SessionSetting
{
	const char *name;
	const char *value;
} SessionSetting;

static const SessionSetting session_settings[] = {
	/* no other role's schema is searched; the statements qualify anyway */
	{"search_path", "pg_catalog, pg_temp"},
	/* a read-only transaction refuses every write */
	{"default_transaction_read_only", "off"},
	/* under repeatable read the upsert fails on rows changed meanwhile */
	{"default_transaction_isolation", "read committed"},
	{"default_transaction_deferrable", "off"},
	/* the worker bounds its own statements (guard.c) and is never idle */
	{"statement_timeout", "0"},
	{"lock_timeout", "0"},
	{"idle_in_transaction_session_timeout", "0"},
#if PG_VERSION_NUM >= 140000
	{"idle_session_timeout", "0"},
#endif
#if PG_VERSION_NUM >= 170000
	{"transaction_timeout", "0"},
#endif
	/* would turn every caught error into FATAL, and the batches with it */
	{"exit_on_error", "off"},
	/* replica would skip the table's triggers and foreign keys */
	{"session_replication_role", "origin"},
	/* off fails a statement on a table with policies that apply to it */
	{"row_security", "on"},
	/* the statements mean what they say in the default dialect */
	{"transform_null_equals", "off"},
	{"standard_conforming_strings", "on"},
	/* last_error names tables the same way in every database */
	{"quote_all_identifiers", "off"},
	/* compiling costs far more than these short statements take */
	{"jit", "off"},
};

/*
 * Called once, right after the worker (or the standby's keeper) has
 * connected to its database.  PGC_S_OVERRIDE outranks every source ALTER
 * DATABASE and ALTER ROLE write, and the configuration file, and is what
 * RESET returns to; PGC_SUSET lets it set the settings only superusers
 * may, whatever role the worker runs as.
 */
void
connlog_writer_init_session(void)
{
	StartTransactionCommand();
	/* the role the worker connected as, then no SET ROLE on top of it */
	SetConfigOption("session_authorization",
					GetUserNameFromId(GetAuthenticatedUserId(), false),
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("role", "none", PGC_SUSET, PGC_S_OVERRIDE);
	for (int i = 0; i < lengthof(session_settings); i++)
		SetConfigOption(session_settings[i].name, session_settings[i].value,
						PGC_SUSET, PGC_S_OVERRIDE);
	connlog_citus_session_defaults();
	CommitTransactionCommand();
}

/*
 * Run a statement on a table, or the input functions of its columns, as
 * the table's owner (connlog.target_table's; InvalidOid: nothing is
 * switched), in a security-restricted operation, the way VACUUM and
 * REFRESH MATERIALIZED VIEW run a table's index expressions; settings the
 * table's functions change are undone with the nesting level.
 */
void
connlog_as_owner_begin(Oid owner, ConnlogAsOwner *save)
{
	GetUserIdAndSecContext(&save->userid, &save->sec_context);
	save->nestlevel = -1;
	if (!OidIsValid(owner))
		return;
	SetUserIdAndSecContext(owner,
						   save->sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	save->nestlevel = NewGUCNestLevel();
}

void
connlog_as_owner_end(const ConnlogAsOwner *save)
{
	if (save->nestlevel < 0)
		return;
	AtEOXact_GUC(false, save->nestlevel);
	SetUserIdAndSecContext(save->userid, save->sec_context);
}
