/*-------------------------------------------------------------------------
 *
 * runner.h
 *		Running one statement of the worker in a transaction of its own,
 *		what came of it, and the worker's session (runner.c).
 *
 * IDENTIFICATION
 *	  src/runner.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_RUNNER_H
#define CONNLOG_RUNNER_H

#include "utils/elog.h"
#include "utils/palloc.h"

/* What came of a statement */
typedef enum ConnlogWriteStatus
{
	CL_WRITE_OK,
	CL_WRITE_FAILED,			/* an error of no class below */
	CL_WRITE_TRANSIENT,			/* an error the next attempt may not meet */
	CL_WRITE_BAD_DATA,			/* an error some row itself causes */
	CL_WRITE_MISSING,			/* extension not installed in the database */
	CL_WRITE_DENIED,			/* connlog.role lacks a privilege (42501) */
	CL_WRITE_UNREACHABLE		/* a node of a Citus cluster failed or refused
								 * the statement (citus.c) */
} ConnlogWriteStatus;

/*
 * The statement's work, run with SPI connected; false if the extension is
 * missing.
 */
typedef bool (*ConnlogStatementFn) (void *arg);

extern ConnlogWriteStatus connlog_run_statement(ConnlogStatementFn fn,
												void *arg,
												const char *activity,
												char **error);
extern void connlog_writer_set_timeout(int timeout_ms);
extern void connlog_writer_init_session(void);
extern ErrorData *connlog_abort_caught(MemoryContext caller_cxt,
									   void (*cleanup) (void *arg),
									   void *arg);

/* running a statement's code as the owner of the table it writes to */
typedef struct ConnlogAsOwner
{
	Oid			userid;
	int			sec_context;
	int			nestlevel;		/* -1: nothing was switched */
} ConnlogAsOwner;

extern void connlog_as_owner_begin(Oid owner, ConnlogAsOwner *save);
extern void connlog_as_owner_end(const ConnlogAsOwner *save);

#endif							/* CONNLOG_RUNNER_H */
