/*-------------------------------------------------------------------------
 *
 * once.c
 *		Logging a lasting problem once, and again only when it changes or
 *		comes back.
 *
 * A background process that looks again every so often (the worker every
 * connlog.flush_interval, say) would otherwise log the same WARNING at
 * each look.  Each kind of problem gets a ConnlogLogOnce, which remembers
 * the message logged last; connlog_log_once() tells whether a message is
 * news.  What is remembered lives in a memory context of its own, so
 * that it outlives the caller's short-lived contexts.
 *
 * IDENTIFICATION
 *	  src/once.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "once.h"

static MemoryContext remembered_cxt = NULL;

/*
 * Is message different from the one once remembers (none yet: NULL)?
 * Remembers it if so; a NULL message forgets, so that the same message is
 * news again once the problem has gone and comes back.
 */
bool
connlog_log_once(ConnlogLogOnce *once, const char *message)
{
	if (message != NULL && once->last != NULL &&
		strcmp(once->last, message) == 0)
		return false;
	if (once->last != NULL)
		pfree(once->last);
	once->last = NULL;
	if (message == NULL)
		return false;
	if (remembered_cxt == NULL)
		remembered_cxt = AllocSetContextCreate(TopMemoryContext,
											   "connlog remembered messages",
											   ALLOCSET_SMALL_SIZES);
	once->last = MemoryContextStrdup(remembered_cxt, message);
	return true;
}
