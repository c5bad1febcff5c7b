/*-------------------------------------------------------------------------
 *
 * citus.h
 *		What the worker needs to know of Citus, when the table it writes
 *		to is one of a Citus cluster's (citus.c).
 *
 * IDENTIFICATION
 *	  src/citus.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_CITUS_H
#define CONNLOG_CITUS_H

#include "utils/elog.h"

extern bool connlog_citus_table(Oid relid);
extern bool connlog_citus_node_failure(const ErrorData *edata);
extern char *connlog_citus_node(const ErrorData *edata);
extern void connlog_citus_session_defaults(void);

#endif							/* CONNLOG_CITUS_H */
