--
-- extra: the application's columns through connlog_enqueue, kept in
-- connection_logs.extra; and connlog_enqueue_batch, coder's seventeen
-- arrays.  Each refused call says why and enqueues nothing.
--
SELECT resnap();
\set VERBOSITY default

CREATE FUNCTION xev(conn int, status connection_status, t int, extra jsonb)
RETURNS void LANGUAGE sql AS $$
  SELECT connlog_enqueue(
    id => gen_random_uuid(),
    event_time => '2026-01-01 10:00+00'::timestamptz + make_interval(mins => t),
    organization_id => '00000000-0000-0000-0000-00000000000a',
    workspace_owner_id => '00000000-0000-0000-0000-00000000000b',
    workspace_id => '00000000-0000-0000-0001-000000000070',
    workspace_name => 'ws70', agent_name => 'main', type => 'ssh',
    status => status,
    connection_id => ('00000000-0000-0000-0002-' || lpad(conn::text, 12, '0'))::uuid,
    extra => extra)
$$;

-- merged per key: the first non-NULL value wins, in one batch and across
-- two; JSON null is no value; numbers, booleans and objects keep their JSON
SELECT xev(1, 'connected', 0, '{"client_session_id": "s1", "n": 1, "gone": null}');
SELECT xev(1, 'disconnected', 5, '{"client_session_id": "s2", "ok": true, "n": 2}');
SELECT xev(2, 'connected', 0, '{"app": {"name": "code", "v": [1, 2]}}');
SELECT connlog_flush();
SELECT xev(2, 'disconnected', 9, '{"app": "other", "late": "x"}');
SELECT xev(3, 'connected', 0, NULL);
SELECT xev(3, 'disconnected', 1, '{}');
SELECT connlog_flush();
SELECT right(connection_id::text, 1) AS conn, extra
FROM connection_logs
WHERE workspace_id = '00000000-0000-0000-0001-000000000070'
ORDER BY connection_id;
SELECT * FROM delta();

-- refused keys and values
SELECT resnap();
SELECT xev(4, 'connected', 0, '"s1"');
SELECT xev(4, 'connected', 0, '[1]');
SELECT xev(4, 'connected', 0, '{"type": "ssh"}');
SELECT xev(4, 'connected', 0, '{"": 1}');
SELECT xev(4, 'connected', 0, jsonb_build_object(repeat('k', 64), 1));
SELECT xev(4, 'connected', 0, jsonb_build_object('k', repeat('v', 20000)));
SELECT * FROM delta();

-- connlog_enqueue_batch: coder's arrays, zero values as coder passes them
SELECT resnap();
CREATE FUNCTION bt(m int) RETURNS timestamptz LANGUAGE sql AS $$
  SELECT '2026-01-01 11:00+00'::timestamptz + make_interval(mins => m) $$;
CREATE FUNCTION cid(n int) RETURNS uuid LANGUAGE sql AS $$
  SELECT ('00000000-0000-0000-0003-' || lpad(n::text, 12, '0'))::uuid $$;
-- 1: a connect; 2: connect and disconnect merged by coder's batcher;
-- 3: a standalone disconnect (connect_time = disconnect_time);
-- 4: a web event (zero connection_id), no code (code_valid false)
SELECT connlog_enqueue_batch(
  ARRAY[gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid()],
  ARRAY[bt(0), bt(1), bt(7), bt(3)],
  ARRAY['00000000-0000-0000-0000-00000000000a'::uuid, '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000a'],
  ARRAY['00000000-0000-0000-0000-00000000000b'::uuid, '00000000-0000-0000-0000-00000000000b', '00000000-0000-0000-0000-00000000000b', '00000000-0000-0000-0000-00000000000b'],
  ARRAY['00000000-0000-0000-0001-000000000071'::uuid, '00000000-0000-0000-0001-000000000071', '00000000-0000-0000-0001-000000000071', '00000000-0000-0000-0001-000000000071'],
  ARRAY['ws71', 'ws71', 'ws71', 'ws71'],
  ARRAY['main', 'main', 'main', 'main'],
  ARRAY['ssh', 'vscode', 'jetbrains', 'workspace_app'],
  ARRAY[0, 0, 255, 7],
  ARRAY[false, true, true, false],
  ARRAY['10.0.0.1'::inet, NULL, '::1', NULL],
  ARRAY['', 'code/1.9', '', 'Mozilla'],
  ARRAY['00000000-0000-0000-0000-000000000000'::uuid, '00000000-0000-0000-0000-00000000000c', '00000000-0000-0000-0000-000000000000', '00000000-0000-0000-0000-00000000000c'],
  ARRAY['', '', '', 'app-slug'],
  ARRAY[cid(1), cid(2), cid(3), '00000000-0000-0000-0000-000000000000'],
  ARRAY['', 'client closed', 'lost', ''],
  ARRAY['0001-01-01 00:00:00+00'::timestamptz, bt(6), bt(7), '0001-01-01 00:00:00+00']);
SELECT connlog_flush();
SELECT right(connection_id::text, 1) AS conn, type, connect_time - bt(0) AS c,
       disconnect_time - bt(0) AS d, code, disconnect_reason, ip, user_agent,
       user_id IS NOT NULL AS has_user, slug_or_port
FROM connection_logs
WHERE workspace_id = '00000000-0000-0000-0001-000000000071'
ORDER BY connection_id NULLS LAST;
SELECT * FROM delta();

-- all or nothing: one bad element refuses the call; its number is given
SELECT resnap();
SELECT connlog_enqueue_batch(
  ARRAY[gen_random_uuid(), gen_random_uuid()], ARRAY[bt(0), bt(0)],
  ARRAY[gen_random_uuid(), gen_random_uuid()], ARRAY[gen_random_uuid(), gen_random_uuid()],
  ARRAY[gen_random_uuid(), gen_random_uuid()], ARRAY['w', 'w'], ARRAY['a', 'a'],
  ARRAY['ssh', ''], ARRAY[0, 0], ARRAY[false, false], ARRAY[NULL::inet, NULL],
  ARRAY['', ''], ARRAY[NULL::uuid, NULL], ARRAY['', ''], ARRAY[cid(8), cid(9)],
  ARRAY['', ''], ARRAY[NULL::timestamptz, NULL]);
SELECT connlog_enqueue_batch(
  ARRAY[gen_random_uuid(), gen_random_uuid()], ARRAY[bt(0), bt(0)],
  ARRAY[gen_random_uuid(), gen_random_uuid()], ARRAY[gen_random_uuid(), gen_random_uuid()],
  ARRAY[gen_random_uuid(), gen_random_uuid()], ARRAY['w', 'w'], ARRAY['a', 'a'],
  ARRAY['ssh', 'ssh'], ARRAY[0, 0], ARRAY[false, false], ARRAY[NULL::inet, NULL],
  ARRAY['', ''], ARRAY[NULL::uuid, NULL], ARRAY['', ''], ARRAY[cid(8), cid(9)],
  ARRAY['', ''], ARRAY[NULL::timestamptz]);
SELECT connlog_enqueue_batch(
  ARRAY[gen_random_uuid()], ARRAY[bt(0)], ARRAY[gen_random_uuid()],
  ARRAY[gen_random_uuid()], ARRAY[gen_random_uuid()], ARRAY['w'], ARRAY['a'],
  ARRAY['workspace_app'], ARRAY[0], ARRAY[false], ARRAY[NULL::inet], ARRAY[''],
  ARRAY[NULL::uuid], ARRAY[''], ARRAY[NULL::uuid], ARRAY[''], ARRAY[bt(5)]);
SELECT connlog_enqueue_batch(
  ARRAY[gen_random_uuid()], ARRAY[NULL::timestamptz], ARRAY[gen_random_uuid()],
  ARRAY[gen_random_uuid()], ARRAY[gen_random_uuid()], ARRAY['w'], ARRAY['a'],
  ARRAY['ssh'], ARRAY[0], ARRAY[false], ARRAY[NULL::inet], ARRAY[''],
  ARRAY[NULL::uuid], ARRAY[''], ARRAY[cid(9)], ARRAY[''], ARRAY[NULL::timestamptz]);
SELECT connlog_enqueue_batch(NULL, ARRAY[bt(0)], ARRAY[gen_random_uuid()],
  ARRAY[gen_random_uuid()], ARRAY[gen_random_uuid()], ARRAY['w'], ARRAY['a'],
  ARRAY['ssh'], ARRAY[0], ARRAY[false], ARRAY[NULL::inet], ARRAY[''],
  ARRAY[NULL::uuid], ARRAY[''], ARRAY[cid(9)], ARRAY[''], ARRAY[NULL::timestamptz]);
-- empty arrays enqueue nothing
SELECT connlog_enqueue_batch('{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}',
  '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}');
SELECT * FROM delta();
