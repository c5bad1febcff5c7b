/*-------------------------------------------------------------------------
 *
 * once.h
 *		Logging a lasting problem once (once.c).
 *
 * IDENTIFICATION
 *	  src/once.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_ONCE_H
#define CONNLOG_ONCE_H

/* One lasting problem: the message logged for it last, NULL for none */
typedef struct ConnlogLogOnce
{
	char	   *last;
} ConnlogLogOnce;

extern bool connlog_log_once(ConnlogLogOnce *once, const char *message);

#endif							/* CONNLOG_ONCE_H */
