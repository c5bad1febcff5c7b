--
-- stats: counters, the accounting identity, connlog_flush
--
SELECT enqueued = merged + written + rejected + dropped + pending AS identity,
       pending, dropped, rejected, write_errors, retries,
       ring_used_bytes, ring_size_bytes, last_error,
       last_flush > now() - interval '1 hour' AS flushed_recently,
       worker_pid = (SELECT pid FROM pg_stat_activity
                     WHERE backend_type = 'connlog worker') AS worker_pid_ok
FROM connlog_stats;

-- events wait in the ring (not written) until a flush; lag is the age
-- of the oldest, NULL when none waits
SELECT lag FROM connlog_stats;
SELECT resnap();
SELECT clock_timestamp() AS before_ev \gset
SELECT ev(1, 'connected', 0, ws => 20), ev(2, 'connected', 0, ws => 20);
-- a record of 85 fixed bytes + a connection_id (16) + "ws20" and "main",
-- and the 8-byte time the ring stores beside it = 117 each
SELECT pending, ring_used_bytes,
       lag > interval '0' AND
       lag <= clock_timestamp() - :'before_ev'::timestamptz AS lag_ok
FROM connlog_stats;
SELECT count(*) FROM rows(20);
SELECT connlog_flush();
SELECT pending, ring_used_bytes, lag FROM connlog_stats;
SELECT count(*) FROM rows(20);
SELECT * FROM delta();

-- the ring is not transactional: an aborted transaction's events are kept
BEGIN;
SELECT ev(3, 'connected', 0, ws => 20);
ROLLBACK;
SELECT connlog_flush();
SELECT count(*) FROM rows(20);

-- flush with nothing to do returns at once; a zero timeout is allowed
SELECT connlog_flush('0');
SELECT connlog_flush(timeout => '1 s');
SELECT connlog_flush('-1 s');
SELECT connlog_flush('300000 years');
-- NULL is an error (1.0 declared the function STRICT and ignored it)
SELECT connlog_flush(NULL);

-- the view is one row
SELECT count(*) FROM connlog_stats;
