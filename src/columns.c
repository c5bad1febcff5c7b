/*-------------------------------------------------------------------------
 *
 * columns.c
 *		The columns of the table the rows go to that connlog_enqueue's
 *		extra may name, as the worker last published them (ConnlogShared's
 *		columns, changed only here).
 *
 * The worker publishes them each time it prepares its statements
 * (target.c), so that connlog_enqueue can refuse a key that names none.
 *
 * Locking: a sequence lock.  The worker, the only writer, makes gen odd
 * while it writes, and a reader retries while gen is odd or changed under
 * it, so producers take no lock for it (and a NULL extra never reads it).
 *
 * IDENTIFICATION
 *	  src/columns.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "port/atomics.h"

#include "ring.h"

/* The worker: publish the columns (state LISTED: names, len bytes) */
void
connlog_columns_publish(ConnlogColumnsState state, Oid relid,
						const char *names, uint32 len)
{
	ConnlogColumns *c = &connlog_shared->columns;

	if (state == CL_COLUMNS_LISTED && len > CL_COLUMN_NAMES_SIZE)
		state = CL_COLUMNS_UNKNOWN;
	pg_atomic_fetch_add_u32(&c->gen, 1);	/* a full barrier */
	c->state = state;
	c->relid = relid;
	c->len = state == CL_COLUMNS_LISTED ? len : 0;
	if (c->len > 0)
		memcpy(c->names, names, len);
	pg_atomic_fetch_add_u32(&c->gen, 1);
}

/*
 * Does the published list name key[0 .. len)?  CL_COLUMNS_UNKNOWN if
 * nothing is published (the worker checks the key when it writes),
 * CL_COLUMNS_ANY if any key goes (connection_logs keeps them all), else
 * CL_COLUMNS_LISTED if the list has it, and CL_COLUMNS_MISSING, with the
 * table in *relid, if not.
 */
ConnlogColumnsState
connlog_columns_find(const char *key, uint32 len, Oid *relid)
{
	ConnlogColumns *c = &connlog_shared->columns;

	for (;;)
	{
		uint32		gen = pg_atomic_read_u32(&c->gen);
		ConnlogColumnsState state;

		if (gen & 1)
		{
			pg_spin_delay();
			continue;
		}
		pg_read_barrier();
		state = c->state;
		*relid = c->relid;
		if (state == CL_COLUMNS_LISTED)
		{
			uint32		n = Min(c->len, CL_COLUMN_NAMES_SIZE);
			uint32		pos = 0;

			/* names end with a NUL each; a torn read is retried below */
			state = CL_COLUMNS_MISSING;
			while (pos < n)
			{
				uint32		l = strnlen(c->names + pos, n - pos);

				if (l == len && memcmp(c->names + pos, key, len) == 0)
				{
					state = CL_COLUMNS_LISTED;
					break;
				}
				pos += l + 1;
			}
		}
		pg_read_barrier();
		if (pg_atomic_read_u32(&c->gen) == gen)
			return state;
	}
}
