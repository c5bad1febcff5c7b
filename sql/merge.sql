--
-- merge: the reference's batching cases, made stricter
--
-- Each case uses a workspace of its own.  flush_interval is an hour in the
-- test instance, so a batch is exactly what is enqueued between two
-- connlog_flush() calls.
--
SET timezone = 'UTC';

-- connect then disconnect in one batch: one row with both times, the
-- disconnect's reason and code, and one event counted as merged
SELECT resnap();
SELECT ev(1, 'connected', 0, ws => 1, ip => '10.1.2.3'),
       ev(1, 'disconnected', 5, ws => 1, reason => 'client closed', code => 0);
SELECT connlog_flush();
SELECT * FROM rows(1);
SELECT * FROM delta();

-- the same in separate batches: the upsert merges them into one row
SELECT resnap();
SELECT ev(1, 'connected', 0, ws => 2);
SELECT connlog_flush();
SELECT * FROM rows(2);
SELECT ev(1, 'disconnected', 7, ws => 2, reason => 'timeout', code => 1);
SELECT connlog_flush();
SELECT * FROM rows(2);
SELECT * FROM delta();

-- disconnect, then a connect with a later time (clock skew), one batch:
-- the disconnect still wins, the span starts at the earliest time
SELECT ev(1, 'disconnected', 5, ws => 3, reason => 'gone'),
       ev(1, 'connected', 10, ws => 3, ip => '10.9.9.9');
SELECT connlog_flush();
SELECT * FROM rows(3);

-- disconnect, then a connect with an earlier time, one batch
SELECT ev(1, 'disconnected', 5, ws => 4, reason => 'gone'),
       ev(1, 'connected', 0, ws => 4);
SELECT connlog_flush();
SELECT * FROM rows(4);

-- the same in separate batches: the standalone disconnect row is corrected
-- by LEAST when its connect arrives
SELECT ev(1, 'disconnected', 5, ws => 5, reason => 'gone');
SELECT connlog_flush();
SELECT * FROM rows(5);
SELECT ev(1, 'connected', 0, ws => 5);
SELECT connlog_flush();
SELECT * FROM rows(5);

-- equal statuses: the later event's fields win, the span is kept
SELECT ev(1, 'connected', 2, ws => 6, ip => '10.0.0.2'),
       ev(1, 'connected', 1, ws => 6, ip => '10.0.0.1'),
       ev(1, 'connected', 3, ws => 6, ip => '10.0.0.3'),
       ev(2, 'disconnected', 8, ws => 6, reason => 'second'),
       ev(2, 'disconnected', 9, ws => 6, reason => 'third'),
       ev(2, 'disconnected', 7, ws => 6, reason => 'first');
SELECT connlog_flush();
SELECT * FROM rows(6);

-- events without a connection_id (web events) never merge
SELECT resnap();
SELECT ev(NULL, 'connected', 0, ws => 7),
       ev(NULL, 'connected', 0, ws => 7),
       ev(NULL, 'disconnected', 1, ws => 7);
SELECT connlog_flush();
SELECT * FROM rows(7);
SELECT * FROM delta();

-- mixed: NULL connection_ids beside a mergeable pair
SELECT ev(NULL, 'connected', 0, ws => 8),
       ev(1, 'connected', 0, ws => 8),
       ev(NULL, 'connected', 1, ws => 8),
       ev(1, 'disconnected', 2, ws => 8, reason => 'done');
SELECT connlog_flush();
SELECT * FROM rows(8);

-- a standalone disconnect: connect_time = disconnect_time = its time
SELECT ev(1, 'disconnected', 4, ws => 9, reason => 'alone', code => 255);
SELECT connlog_flush();
SELECT * FROM rows(9);

-- duplicate disconnects keep the connect time, in one batch and across
SELECT ev(1, 'connected', 0, ws => 10),
       ev(1, 'disconnected', 5, ws => 10, reason => 'first'),
       ev(1, 'disconnected', 6, ws => 10, reason => 'second');
SELECT ev(2, 'connected', 0, ws => 10);
SELECT connlog_flush();
SELECT ev(2, 'disconnected', 5, ws => 10, reason => 'first');
SELECT connlog_flush();
SELECT ev(2, 'disconnected', 6, ws => 10, reason => 'second');
SELECT connlog_flush();
SELECT * FROM rows(10);

-- the whole key must match: another agent or workspace is another row
SELECT ev(1, 'connected', 0, ws => 11, agent => 'main'),
       ev(1, 'disconnected', 1, ws => 11, agent => 'other'),
       ev(1, 'disconnected', 2, ws => 12, agent => 'main');
SELECT connlog_flush();
SELECT * FROM rows(11);
SELECT * FROM rows(12);

-- N independent connections: N rows, each pair merged
SELECT resnap();
SELECT count(*) FROM (
  SELECT ev(i, 'connected', 0, ws => 13), ev(i, 'disconnected', i, ws => 13)
  FROM generate_series(1, 500) i) s;
SELECT connlog_flush();
SELECT count(*), count(disconnect_min), min(disconnect_min), max(disconnect_min)
FROM rows(13);
SELECT * FROM delta();

-- more than a batch (batch_size 1000): 2400 events in three batches
SELECT resnap();
SELECT count(*) FROM (
  SELECT ev(i, 'connected', 0, ws => 14) FROM generate_series(1, 2400) i) s;
SELECT connlog_flush();
SELECT count(*) FROM rows(14);
SELECT * FROM delta();

-- the table is the user's to alter: the worker's rows take the defaults of
-- columns connlog does not know, and its values go through ordinary
-- assignment into columns whose type changed
ALTER TABLE connection_logs ADD COLUMN note text DEFAULT 'added later';
ALTER TABLE connection_logs ALTER COLUMN code TYPE bigint;
SELECT resnap();
SELECT ev(1, 'connected', 0, ws => 15),
       ev(1, 'disconnected', 3, ws => 15, code => 7);
SELECT connlog_flush();
SELECT note, code, pg_typeof(code), disconnect_time - connect_time AS span
FROM connection_logs
WHERE workspace_id = '00000000-0000-0000-0001-000000000015';
SELECT * FROM delta();
ALTER TABLE connection_logs DROP COLUMN note;
ALTER TABLE connection_logs ALTER COLUMN code TYPE integer;
