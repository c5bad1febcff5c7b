/*-------------------------------------------------------------------------
 *
 * progress.c
 *		The worker's progress through WAL-backed events: reading it at
 *		start and replaying what it does not cover, storing it with each
 *		write and at exit, letting the slot follow it, and the losses it
 *		reports (a crash, a moved slot, WAL that is gone).
 *
 * The worker reads connlog_wal_progress once, when it can first write,
 * and writes the WAL-backed events after it that no committed write
 * accounted for (connlog_wal_replay_at_start, with replay.c's reader).
 * From then on, while the slot exists, it stores with every write the
 * progress that then holds and lets the slot follow it.  progress_state:
 *
 *	UNREAD	 --replay-->		 OFF (no slot: nothing to track)
 *	UNREAD	 --replay-->		 TRACKED (the slot exists)
 *	OFF		 --a producer asks for the slot-->	TRACKED
 *
 * consumed_lsn: no WAL-backed event the worker has not taken from the
 * ring starts before it.  replay_from: the progress read at start, which
 * stays the one stored while batches read back from WAL are held.
 * stored: the progress the last committed write stored; slot_done: the
 * slot's restart_lsn as last advanced.  All of these are the worker's.
 *
 * Shared state (walshared.h gives the rules): the worker sets slot_ready
 * and clears slot_wanted and replaying; it alone reads and writes
 * crash_wal_pending, exit_stored and exit_ring_pending.
 *
 * What the progress means, why it is (epoch, seq, lsn) and not one LSN,
 * and what each loss report counts: doc/internals.md, "Order and
 * progress", "Replay", "The slot" and "pg_upgrade".
 *
 * IDENTIFICATION
 *	  src/progress.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "replication/slot.h"
#include "storage/condition_variable.h"
#include "utils/memutils.h"

#include "once.h"
#include "progress.h"
#include "replay.h"
#include "ring.h"
#include "slot.h"
#include "wal.h"
#include "statements.h"

typedef enum ProgressState
{
	PROGRESS_UNREAD,			/* connlog_wal_progress not read yet */
	PROGRESS_OFF,				/* read; there is no slot */
	PROGRESS_TRACKED			/* the slot exists: stored with each write */
} ProgressState;

/* how long the exiting worker's one-row UPDATE may take */
#define EXIT_PROGRESS_TIMEOUT_MS	1000

static ProgressState progress_state = PROGRESS_UNREAD;
static XLogRecPtr consumed_lsn;
static ConnlogProgress replay_from;
static ConnlogProgress stored;
static XLogRecPtr slot_done;
static ConnlogLogOnce slot_error_logged;

/* Has the worker yet to read the stored progress, and replay? */
bool
connlog_wal_replay_pending(void)
{
	return progress_state == PROGRESS_UNREAD;
}

/* Is the progress tracked, and stored with each write? */
bool
connlog_wal_tracking(void)
{
	return progress_state == PROGRESS_TRACKED;
}

/* No WAL-backed event the worker has not taken starts before lsn. */
void
connlog_wal_consumed(XLogRecPtr lsn)
{
	consumed_lsn = Max(consumed_lsn, lsn);
}

/*
 * The progress is tracked from now on: tell producers, who wait for the
 * slot before they write WAL-backed events (wal.c).
 */
static void
start_tracking(void)
{
	progress_state = PROGRESS_TRACKED;
	pg_atomic_write_u32(&connlog_shared->wal.slot_ready, 1);
	pg_atomic_write_u32(&connlog_shared->wal.slot_wanted, 0);
	ConditionVariableBroadcast(&connlog_shared->ring.space_cv);
}

/*
 * The progress a write should store with it, in *p, given what the
 * worker's batches hold once that write commits; NULL for none.  Events
 * read back from WAL are not numbered in this life, so while any is held
 * the seq stored stays replay_from's.  Both the stored progress and the
 * new one hold, so the later lsn does too (no event not written starts
 * before either), and within one life so does the larger seq.  The
 * stored lsn therefore never goes back, nor does the slot that follows
 * it.
 */
ConnlogProgress *
connlog_wal_next_progress(const ConnlogHeld *held, ConnlogProgress *p)
{
	if (progress_state != PROGRESS_TRACKED)
		return NULL;
	p->epoch = connlog_shared->wal.epoch;
	p->seq = held->oldest_seq;
	p->lsn = Min(consumed_lsn, held->oldest_floor);
	p->at_exit = false;
	p->pending = 0;
	if (held->replayed)
	{
		p->epoch = replay_from.epoch;
		p->seq = replay_from.seq;
	}
	p->lsn = Max(p->lsn, stored.lsn);
	if (p->epoch == stored.epoch)
	{
		p->seq = Max(p->seq, stored.seq);
		if (p->seq == stored.seq && p->lsn == stored.lsn)
			return NULL;
	}
	return p;
}

/*
 * WAL from done->lsn to gone_to is not here, and nrecords events were read
 * back from what is.  If the worker that stored done counted its events
 * left unwritten, say how many of them are lost (none: nothing to report
 * but a LOG line); else all that is known is how much WAL is missing.  See
 * doc/internals.md, "pg_upgrade".
 */
static void
report_gone(const ConnlogProgress *done, XLogRecPtr gone_to, uint64 nrecords)
{
	if (!done->at_exit)
		ereport(WARNING,
				(errmsg("connlog cannot replay %llu bytes of WAL from %X/%X to %X/%X: it was removed",
						(unsigned long long) (gone_to - done->lsn),
						LSN_FORMAT_ARGS(done->lsn), LSN_FORMAT_ARGS(gone_to)),
				 errdetail("WAL-backed events in that range that were not written yet are lost."),
				 errhint("This happens when a standby whose connlog keeper did not hold replication slot \"%s\" is promoted (see doc/connlog.md, \"Standby and promotion\"), after pg_upgrade (which does not keep WAL), or when the slot was dropped.",
						 CONNLOG_SLOT_NAME)));
	else if (done->pending > nrecords)
		ereport(WARNING,
				(errmsg("connlog lost %llu WAL-backed events that were not written when its worker last exited",
						(unsigned long long) (done->pending - nrecords)),
				 errdetail("connlog_wal_progress says %llu WAL-backed events were not written yet, in WAL from %X/%X on; that WAL is not in this cluster up to %X/%X, and %llu of the events were read back.",
						   (unsigned long long) done->pending,
						LSN_FORMAT_ARGS(done->lsn), LSN_FORMAT_ARGS(gone_to),
						   (unsigned long long) nrecords),
				 errhint("pg_upgrade does not keep WAL, and a promoted standby may not have it.  Before pg_upgrade, start the old server and let connlog write its events.")));
	else
		ereport(LOG,
				(errmsg("connlog has no WAL from %X/%X to %X/%X, where connlog_wal_progress points, and no event was left unwritten there",
					 LSN_FORMAT_ARGS(done->lsn), LSN_FORMAT_ARGS(gone_to))));
}

/*
 * At start, the slot was found moved from done->lsn to moved_to and set
 * back; WAL from done->lsn to gone_to is gone (InvalidXLogRecPtr: none
 * is), and nrecords events were read back from what is left.  Log it, and
 * return how many events the move cost, counted in dropped by the caller:
 * those the last exiting worker (or, after a crash, the postmaster) left
 * unwritten, less those still in the ring and those read back; 0 if that
 * cannot be known, which the WARNING then says.
 */
static uint64
report_moved(const ConnlogProgress *done, XLogRecPtr moved_to,
			 XLogRecPtr gone_to, uint64 nrecords)
{
	ConnlogShared *s = connlog_shared;
	uint64		left;
	uint64		lost;

	if (XLogRecPtrIsInvalid(gone_to))
	{
		ereport(WARNING,
				(errmsg("replication slot \"%s\" was moved from %X/%X to %X/%X by another session",
						CONNLOG_SLOT_NAME, LSN_FORMAT_ARGS(done->lsn),
						LSN_FORMAT_ARGS(moved_to)),
				 errdetail("connlog set it back to %X/%X; no WAL had been removed since, so no event was lost.",
						   LSN_FORMAT_ARGS(done->lsn)),
				 errhint("While no connlog worker holds the slot, superusers and roles with REPLICATION can move or drop it.")));
		return 0;
	}
	if (done->at_exit)
	{
		left = done->pending;
		/* in the same life the ring still has its part: it is written */
		if (s->wal.exit_stored)
			left -= Min(left, s->wal.exit_ring_pending);
	}
	else if (s->wal.crash_wal_pending > 0)
	{
		left = s->wal.crash_wal_pending;
		s->wal.crash_wal_pending = 0;	/* reported here, not as the crash's */
	}
	else
	{
		ereport(WARNING,
				(errmsg("replication slot \"%s\" was moved from %X/%X to %X/%X by another session; the WAL-backed events not written yet in the %llu bytes of WAL removed since are lost",
						CONNLOG_SLOT_NAME, LSN_FORMAT_ARGS(done->lsn),
						LSN_FORMAT_ARGS(moved_to),
						(unsigned long long) (gone_to - done->lsn)),
				 errdetail("connlog cannot tell how many: no worker stored a count of the events it left unwritten.  %llu events were read back from the WAL that is left.",
						   (unsigned long long) nrecords),
				 errhint("While no connlog worker holds the slot, superusers and roles with REPLICATION can move or drop it.")));
		return 0;
	}
	lost = left > nrecords ? left - nrecords : 0;
	ereport(WARNING,
			(errmsg("replication slot \"%s\" was moved from %X/%X to %X/%X by another session; %llu events were lost",
					CONNLOG_SLOT_NAME, LSN_FORMAT_ARGS(done->lsn),
					LSN_FORMAT_ARGS(moved_to), (unsigned long long) lost),
			 errdetail("The WAL from %X/%X to %X/%X was removed while no connlog worker held the slot; %llu WAL-backed events were not written yet, %llu were read back from the WAL that is left, and the lost ones are counted as dropped.",
					   LSN_FORMAT_ARGS(done->lsn), LSN_FORMAT_ARGS(gone_to),
					   (unsigned long long) left,
					   (unsigned long long) nrecords),
			 errhint("While no connlog worker holds the slot, superusers and roles with REPLICATION can move or drop it.")));
	return lost;
}

/* A write that stored progress has committed: let the slot follow. */
void
connlog_wal_progress_committed(const ConnlogProgress *progress)
{
	char	   *error;

	if (progress == NULL)
		return;
	stored = *progress;
	if (stored.lsn <= slot_done)
		return;

	/*
	 * Not held since the start (another process held it then): acquiring it
	 * now tells whether it moved meanwhile.  The events that concern are in
	 * the ring or held, and are written unless the server crashes first.
	 */
	if (MyReplicationSlot == NULL && connlog_wal_slot_exists())
	{
		XLogRecPtr	moved_to;

		if (connlog_wal_slot_take(slot_done, &moved_to, &error) &&
			!XLogRecPtrIsInvalid(moved_to))
			ereport(WARNING,
					(errmsg("replication slot \"%s\" was moved from %X/%X to %X/%X by another session",
							CONNLOG_SLOT_NAME, LSN_FORMAT_ARGS(slot_done),
							LSN_FORMAT_ARGS(moved_to)),
					 errdetail("connlog set it back.  Events whose WAL was removed meanwhile are still written, but are lost if the server crashes first."),
					 errhint("While no connlog worker holds the slot, superusers and roles with REPLICATION can move or drop it.")));
	}
	if (connlog_wal_slot_advance(stored.lsn, &error))
	{
		slot_done = stored.lsn;
		return;
	}
	/* logged once for as long as it stays the same */
	if (connlog_log_once(&slot_error_logged, error))
		ereport(WARNING,
			 (errmsg("connlog could not advance replication slot \"%s\": %s",
					 CONNLOG_SLOT_NAME, error),
			  errdetail("The slot keeps more WAL than needed until this is fixed.")));
}

/*
 * At start, with a stored done->lsn: hold the slot, setting it back if
 * someone moved it (*moved_to: where it was found), or make it again.
 */
static void
hold_slot_at_start(const ConnlogProgress *done, XLogRecPtr *moved_to)
{
	char	   *error;

	if (!connlog_wal_slot_exists())
	{
		if (!connlog_wal_slot_create(done->lsn, &error))
			ereport(WARNING,
			  (errmsg("connlog could not create replication slot \"%s\": %s",
					  CONNLOG_SLOT_NAME, error)));
	}
	else if (!connlog_wal_slot_take(done->lsn, moved_to, &error))
		/* at a promotion the keeper may not have exited yet: LOG only */
		ereport(LOG,
		 (errmsg("connlog could not acquire replication slot \"%s\" yet: %s",
				 CONNLOG_SLOT_NAME, error),
		  errdetail("connlog tries again as it writes.")));
}

/*
 * Nothing read back is held: store this life's progress now, so that a
 * row an exiting worker (or another cluster, see doc/internals.md,
 * "pg_upgrade") stored is not read, and reported on, again.
 */
static void
store_now(ConnlogHeldFn held)
{
	ConnlogHeld h;
	ConnlogProgress p;
	char	   *error;

	held(&h);
	if (connlog_wal_next_progress(&h, &p) != NULL &&
		connlog_write_progress(&p, &error) == CL_WRITE_OK)
		connlog_wal_progress_committed(&p);
}

/*
 * At start, with a stored done->lsn: read back the WAL-backed events after
 * it that are neither written nor in the ring, report what is lost, start
 * tracking the progress and hand the events to feed.  first is the floor
 * of the ring's oldest WAL-backed event (InvalidXLogRecPtr: none), and
 * insert_lsn the insert position as of the same moment.  Returns how many
 * events were read back.
 */
static uint64
replay_after(const ConnlogProgress *done, XLogRecPtr first,
			 XLogRecPtr insert_lsn, ConnlogFeedFn feed, ConnlogHeldFn held)
{
	ConnlogShared *s = connlog_shared;
	ConnlogReplay r;
	XLogRecPtr	moved_to = InvalidXLogRecPtr;

	hold_slot_at_start(done, &moved_to);
	connlog_wal_read_records(&r, done, insert_lsn);
	if (!XLogRecPtrIsInvalid(moved_to))
	{
		uint64		lost = report_moved(done, moved_to, r.gone_to,
										r.nrecords);

		/* as replayed events count (held.c), so the identity holds */
		connlog_count(&s->counters.enqueued, lost);
		connlog_count(&s->counters.dropped, lost);
	}
	else if (!XLogRecPtrIsInvalid(r.gone_to))
		report_gone(done, r.gone_to, r.nrecords);

	/*
	 * The ring's own events were left out of the replay: they may start
	 * before last_end, but not before the oldest one's floor.
	 */
	consumed_lsn = XLogRecPtrIsInvalid(first) ? r.last_end :
		Min(r.last_end, first);
	start_tracking();
	if (done->lsn < insert_lsn)
	{
		/* the replayed batches store progress as they are written */
		feed(r.events.data, r.events.len, done->lsn);
		pfree(r.events.data);
		ereport(LOG,
				(errmsg("connlog replayed %llu events from WAL between %X/%X and %X/%X",
						(unsigned long long) r.nrecords,
						LSN_FORMAT_ARGS(done->lsn),
						LSN_FORMAT_ARGS(r.last_end)),
				 r.nskipped > 0 ?
				 errdetail("%llu events in that WAL were left out: written already, or still in the ring.",
						   (unsigned long long) r.nskipped) : 0));
	}
	if (r.nrecords == 0)
		store_now(held);
	return r.nrecords;
}

/*
 * At start, when the slot is there but no progress was ever stored (say,
 * the extension was created afresh): store this life's, from insert_lsn.
 * No WAL-backed event can be in the ring yet: producers wait for
 * slot_ready, which start_tracking sets.
 */
static void
track_from(XLogRecPtr insert_lsn, ConnlogHeldFn held)
{
	ConnlogHeld h;
	ConnlogProgress p;
	char	   *error;

	held(&h);
	memset(&p, 0, sizeof(p));
	p.epoch = connlog_shared->wal.epoch;
	p.seq = h.next_seq;
	p.lsn = insert_lsn;
	consumed_lsn = insert_lsn;
	if (connlog_write_progress(&p, &error) == CL_WRITE_OK)
	{
		stored = p;
		start_tracking();
	}
}

/*
 * What the postmaster counted of the old ring's WAL-backed events when a
 * crash reset shared memory, against the nrecords events read back.
 */
static void
report_crash(uint64 nrecords)
{
	ConnlogWalShared *w = &connlog_shared->wal;

	if (w->crash_wal_pending == 0)
		return;
	if (w->crash_wal_pending > nrecords)
		ereport(WARNING,
				(errmsg("connlog lost %llu WAL-backed events whose WAL had not been written when the server crashed",
					 (unsigned long long) (w->crash_wal_pending - nrecords)),
				 errdetail("%llu WAL-backed events were not written yet at the crash; %llu were read back from WAL.",
						   (unsigned long long) w->crash_wal_pending,
						   (unsigned long long) nrecords)));
	else
		ereport(LOG,
				(errmsg("connlog read back from WAL all %llu WAL-backed events that were not written yet at the crash",
						(unsigned long long) w->crash_wal_pending)));
	w->crash_wal_pending = 0;
}

/*
 * At start, once the extension is there: read connlog_wal_progress and
 * hand the WAL-backed events after it that are neither written nor in the
 * ring to feed, which writes them.  held says what the worker holds.
 * Returns false, with nothing done, if the extension is missing.
 */
bool
connlog_wal_replay_at_start(ConnlogFeedFn feed, ConnlogHeldFn held)
{
	ConnlogProgress done;
	XLogRecPtr	first;
	XLogRecPtr	insert_lsn;
	uint64		nrecords = 0;
	char	   *error;
	ConnlogWriteStatus st;

	st = connlog_read_progress(&done, &error);
	if (st == CL_WRITE_MISSING)
		return false;
	progress_state = PROGRESS_OFF;
	if (st != CL_WRITE_OK)
	{
		ereport(WARNING,
		   (errmsg("connlog could not read connlog_wal_progress: %s", error),
			errdetail("WAL-backed events that were not written before the worker started are not replayed.")));
		memset(&done, 0, sizeof(done));
	}
	stored = replay_from = done;
	slot_done = done.lsn;
	/* raises the ring's floor too, before any producer may use it */
	first = connlog_ring_first_wal_floor(&insert_lsn);

	if (!XLogRecPtrIsInvalid(done.lsn))
		nrecords = replay_after(&done, first, insert_lsn, feed, held);
	else if (st == CL_WRITE_OK && connlog_wal_slot_exists())
		track_from(insert_lsn, held);
	report_crash(nrecords);
	connlog_wal_set_replayed();
	ConditionVariableBroadcast(connlog_ring_flush_cv());
	return true;
}

/* Has a producer asked for the slot (its first WAL-backed event)? */
bool
connlog_wal_slot_requested(void)
{
	return progress_state != PROGRESS_UNREAD &&
		pg_atomic_read_u32(&connlog_shared->wal.slot_wanted) != 0 &&
		pg_atomic_read_u32(&connlog_shared->wal.slot_ready) == 0;
}

/*
 * A producer asked for the slot: create it at the insert position, and
 * store that as the progress, before any WAL-backed event exists.
 * next_seq is the ring's first event the worker has not read.  On
 * failure *error says why (NULL: the extension is missing).
 */
ConnlogSlotResult
connlog_wal_ensure_slot(uint64 next_seq, char **error)
{
	XLogRecPtr	insert_lsn = GetXLogInsertRecPtr();

	*error = NULL;
	if (!connlog_wal_slot_exists() &&
		!connlog_wal_slot_create(insert_lsn, error))
		return CL_SLOT_NOT_CREATED;
	consumed_lsn = Max(consumed_lsn, insert_lsn);
	if (XLogRecPtrIsInvalid(stored.lsn))
	{
		ConnlogProgress p;

		memset(&p, 0, sizeof(p));
		p.epoch = connlog_shared->wal.epoch;
		p.seq = next_seq;
		p.lsn = insert_lsn;
		if (connlog_write_progress(&p, error) != CL_WRITE_OK)
			return CL_SLOT_PROGRESS_NOT_STORED;
		stored = p;
		slot_done = insert_lsn;
	}
	start_tracking();
	return CL_SLOT_READY;
}

/*
 * Of pending events (enqueued, not accounted for: connlog_stats.pending),
 * how many are WAL-backed.  The worker adds a batch's WAL-backed events to
 * wal_accounted once the whole batch is, so a batch half written counts
 * as pending (it is replayed).  Clamped to pending, since the counters
 * are read at different moments.  The postmaster calls this too, as
 * shared memory goes away.
 */
uint64
connlog_wal_pending(uint64 pending)
{
	ConnlogCounters *c = &connlog_shared->counters;
	int64		n;

	n = (int64) (pg_atomic_read_u64(&c->wal_enqueued) -
				 pg_atomic_read_u64(&c->wal_accounted));
	return (uint64) Max(0, Min(n, (int64) pending));
}

/*
 * As the worker exits: store, with the progress, how many WAL-backed
 * events are not written: those of the ring not accounted for and those
 * read back from WAL that it holds.  A cluster that has the row but not
 * the WAL (pg_upgrade) reports that many as lost (see doc/internals.md,
 * "pg_upgrade").
 */
void
connlog_wal_store_exit_progress(const ConnlogHeld *held)
{
	ConnlogStats st;
	ConnlogProgress p;
	uint64		n;
	char	   *error;

	if (progress_state != PROGRESS_TRACKED)
		return;
	connlog_ring_stats(&st);
	n = connlog_wal_pending(st.pending);
	/* the ring's part, which a successor in this life finds there */
	connlog_shared->wal.exit_ring_pending = n;
	connlog_shared->wal.exit_stored = true;
	n += held->nreplayed;
	if (connlog_wal_next_progress(held, &p) == NULL)
		p = stored;
	p.at_exit = true;
	p.pending = n;
	/* one row's UPDATE, not bounded by what is left of shutdown_timeout */
	connlog_writer_set_timeout(EXIT_PROGRESS_TIMEOUT_MS);
	if (connlog_write_progress(&p, &error) == CL_WRITE_OK)
		connlog_wal_progress_committed(&p);
	else
		ereport(WARNING,
				(errmsg("connlog could not store in connlog_wal_progress how many WAL-backed events it leaves unwritten: %s",
						error != NULL ? error :
						"extension connlog is not installed"),
				 errdetail("A cluster made from this one by pg_upgrade cannot tell how many such events it lost.")));
}

/*
 * The worker has replayed WAL, or cannot while it has no database, role
 * or extension: connlog_flush() no longer waits for the replay.
 */
void
connlog_wal_set_replayed(void)
{
	pg_atomic_write_u32(&connlog_shared->wal.replaying, 0);
}

/* Is a worker yet to replay WAL?  connlog_flush() waits for it. */
bool
connlog_wal_replaying(void)
{
	return pg_atomic_read_u32(&connlog_shared->wal.replaying) != 0;
}
