/*-------------------------------------------------------------------------
 *
 * extra.h
 *		connlog_enqueue's extra argument, encoded for a record (extra.c).
 *
 * IDENTIFICATION
 *	  src/extra.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_EXTRA_H
#define CONNLOG_EXTRA_H

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

extern void connlog_encode_extra(Jsonb *jb, const char *func, StringInfo out);

#endif							/* CONNLOG_EXTRA_H */
