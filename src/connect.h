/*-------------------------------------------------------------------------
 *
 * connect.h
 *		Connecting a background worker to connlog.database without a
 *		restart storm.
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
	const char *appname;		/* application_name, waiting or connected */
	uint32		wait_event;		/* for the sleep between two looks */

	/*
	 * Called at the start of every look, interrupts processed: reload the
	 * configuration and exit if the process must stop.  Returns how long to
	 * sleep after this look, in milliseconds.
	 */
	long		(*turn) (void);

	/*
	 * Called after every look with what keeps the connection from working,
	 * why in words, and whether that differs from the previous look.
	 * CL_STATE_STARTING says nothing does any more (why is NULL): the process
	 * then exits, to be restarted, and connects.
	 */
	void		(*report) (ConnlogWorkerState state, const char *why,
						   bool changed);
} ConnlogConnectWait;

extern void connlog_connect(const ConnlogConnectWait *how);

#endif							/* CONNLOG_CONNECT_H */
