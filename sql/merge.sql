--
-- merge: the reference's batching cases, made stricter
--
-- Each case uses a workspace of its own.  flush_interval is an hour in the
-- test instance, so a batch is exactly what is enqueued between two
-- connlog_flush() calls.  The rule: a batch's rows are what its events
-- upserted one at a time, in arrival order, would make; so the first
-- event of a connection supplies the row's fields, code and reason are
-- the first non-NULL ones, and the span is the earliest to the latest
-- disconnect, in one batch or across several.
--
SET timezone = 'UTC';

-- connect then disconnect in one batch: one row with both times, the
-- connect's ip, the disconnect's reason and code, and one event counted
-- as merged
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
-- the disconnect came first, so its fields stay (no ip); the span starts
-- at the earliest time
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

-- equal statuses: the first event to arrive supplies the fields and the
-- reason whatever the times; the span is the earliest to the latest
SELECT ev(1, 'connected', 2, ws => 6, ip => '10.0.0.2'),
       ev(1, 'connected', 1, ws => 6, ip => '10.0.0.1'),
       ev(1, 'connected', 3, ws => 6, ip => '10.0.0.3'),
       ev(2, 'disconnected', 8, ws => 6, reason => 'arrived 1st'),
       ev(2, 'disconnected', 9, ws => 6, reason => 'arrived 2nd'),
       ev(2, 'disconnected', 7, ws => 6, reason => 'arrived 3rd');
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

-- duplicate disconnects keep the connect time and the first reason, in
-- one batch and across
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

-- Batch boundaries make no difference.  pev() enqueues connection 1's
-- connect or disconnect in workspace ws, at minute t, each with its own
-- id (ws * 10 + 1 for the connect, + 2 for the disconnect) and fields:
-- the connect has an ip, user_agent, user_id and slug_or_port; the
-- disconnect another ip and user_id, no user_agent or slug_or_port, and a
-- code and reason.
CREATE FUNCTION wsid(ws int) RETURNS uuid LANGUAGE sql AS
$$ SELECT ('00000000-0000-0000-0001-' || lpad(ws::text, 12, '0'))::uuid $$;
CREATE FUNCTION pev(status connection_status, t int, ws int)
RETURNS void LANGUAGE sql AS $$
  SELECT connlog_enqueue(
    id => ('00000000-0000-0000-0003-' ||
           lpad((ws * 10 + CASE status WHEN 'connected' THEN 1 ELSE 2 END)::text,
                12, '0'))::uuid,
    event_time => '2026-01-01 10:00+00'::timestamptz + make_interval(mins => t),
    organization_id => '00000000-0000-0000-0000-00000000000a',
    workspace_owner_id => '00000000-0000-0000-0000-00000000000b',
    workspace_id => wsid(ws),
    workspace_name => 'ws' || ws,
    agent_name => 'main',
    type => 'ssh',
    status => status,
    connection_id => '00000000-0000-0000-0002-000000000001',
    ip => CASE status WHEN 'connected' THEN '10.0.0.1' ELSE '10.0.0.2' END::inet,
    user_agent => CASE status WHEN 'connected' THEN 'OpenSSH_9.2' END,
    user_id => CASE status WHEN 'connected'
               THEN '00000000-0000-0000-0004-000000000001'
               ELSE '00000000-0000-0000-0004-000000000002' END::uuid,
    slug_or_port => CASE status WHEN 'connected' THEN '22' END,
    code => CASE status WHEN 'disconnected' THEN 255 END,
    disconnect_reason => CASE status WHEN 'disconnected' THEN 'client closed' END)
$$;
-- row_of(): every column of workspace ws's rows but id and the workspace
CREATE FUNCTION row_of(ws int)
RETURNS TABLE (connect_time timestamptz, organization_id uuid,
               workspace_owner_id uuid, agent_name text, type text,
               ip inet, code int, user_agent text, user_id uuid,
               slug_or_port text, connection_id uuid,
               disconnect_time timestamptz, disconnect_reason text)
LANGUAGE sql AS $$
  SELECT connect_time, organization_id, workspace_owner_id, agent_name, type,
         ip, code, user_agent, user_id, slug_or_port, connection_id,
         disconnect_time, disconnect_reason
  FROM connection_logs WHERE workspace_id = wsid(ws)
$$;
-- look(): the columns in which the events differ, for workspaces ws
CREATE FUNCTION look(VARIADIC ws int[])
RETURNS TABLE (ws text, id text, ip inet, user_agent text, user_id text,
               slug_or_port text, code int, reason text, connect_min int,
               disconnect_min int)
LANGUAGE sql AS $$
  SELECT workspace_name, right(id::text, 3), ip, user_agent,
         right(user_id::text, 1), slug_or_port, code, disconnect_reason,
         (extract(epoch FROM connect_time - '2026-01-01 10:00+00') / 60)::int,
         (extract(epoch FROM disconnect_time - '2026-01-01 10:00+00') / 60)::int
  FROM connection_logs WHERE workspace_id IN (SELECT wsid(w) FROM unnest(ws) w)
  ORDER BY workspace_name
$$;

-- connect then disconnect, in one batch (ws16) and in two (ws17): the same
-- row, the connect's id, ip, user_agent, user_id and slug_or_port with the
-- disconnect's time, code and reason
SELECT resnap();
SELECT pev('connected', 0, 16), pev('disconnected', 5, 16);
SELECT connlog_flush();
SELECT pev('connected', 0, 17);
SELECT connlog_flush();
SELECT pev('disconnected', 5, 17);
SELECT connlog_flush();
SELECT * FROM delta();
SELECT * FROM look(16, 17);
SELECT 'only in one batch' AS side, * FROM
  (SELECT * FROM row_of(16) EXCEPT SELECT * FROM row_of(17)) d
UNION ALL
SELECT 'only in two batches', * FROM
  (SELECT * FROM row_of(17) EXCEPT SELECT * FROM row_of(16)) d;

-- the disconnect arrives first, in one batch (ws18) and in two (ws19): the
-- same row again, now with the disconnect's id, ip and user_id and no
-- user_agent or slug_or_port (only code and reason are filled in from a
-- later event); the connect moves connect_time back
SELECT pev('disconnected', 5, 18), pev('connected', 0, 18);
SELECT connlog_flush();
SELECT pev('disconnected', 5, 19);
SELECT connlog_flush();
SELECT pev('connected', 0, 19);
SELECT connlog_flush();
SELECT * FROM look(18, 19);
SELECT 'only in one batch' AS side, * FROM
  (SELECT * FROM row_of(18) EXCEPT SELECT * FROM row_of(19)) d
UNION ALL
SELECT 'only in two batches', * FROM
  (SELECT * FROM row_of(19) EXCEPT SELECT * FROM row_of(18)) d;
