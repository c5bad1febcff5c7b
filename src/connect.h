/*-------------------------------------------------------------------------
 *
 * connect.h
 *		Connecting a background worker to connlog.database without a
 *		restart storm.
 *
 * IDENTIFICATION
 *	  src/connect.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONNLOG_CONNECT_H
#define CONNLOG_CONNECT_H

#include "ring.h"

/* How a background worker waits while it cannot connect (see connect.c) */
typedef struct ConnlogConnectWait
{
	ConnlogConnector who;		/* whose "connecting" mark */
	const char *name;			/* application_name while it waits */
	uint32		wait_event;		/* for the sleep between two looks */

	/*
	 * Called at the start of every look, interrupts processed: reload the
	 * configuration and exit if the process must stop.  Returns how long to
	 * sleep after this look, in milliseconds.
	 */
	long		(*turn) (void);

	/*
	 * If not NULL, called after every look that finds the connection would
	 * fail, with the state that says why, and why in words.
	 */
	void		(*publish) (ConnlogWorkerState state, const char *why);
} ConnlogConnectWait;

extern void connlog_connect(const ConnlogConnectWait *how);

#endif							/* CONNLOG_CONNECT_H */
