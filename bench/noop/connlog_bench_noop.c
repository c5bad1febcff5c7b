/*
 * connlog_bench_noop.c
 *		The floor for connlog_enqueue in bench/run: a C function declared
 *		with the same 16 arguments (and, like connlog_enqueue, not STRICT,
 *		so NULL arguments are passed in rather than short-circuited) whose
 *		body does nothing.  Whatever connlog_enqueue costs above this is
 *		connlog's own work; everything below it is the SQL call itself.
 */
#include "postgres.h"

#include "fmgr.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(connlog_bench_noop);

Datum
connlog_bench_noop(PG_FUNCTION_ARGS)
{
	PG_RETURN_VOID();
}
