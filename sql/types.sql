--
-- types: a connection's type is text; queries compare it with text, any
-- type of 1 to 63 bytes is accepted, and casting to connection_type (1.1's
-- argument type) still works
--
SET timezone = 'UTC';
SELECT resnap();

-- tev(): enqueue a workspace-40 event of connection n with type ty
CREATE FUNCTION tev(n int, ty text) RETURNS void LANGUAGE sql AS $$
  SELECT connlog_enqueue(
    id => ('00000000-0000-0000-0005-' || lpad(n::text, 12, '0'))::uuid,
    event_time => '2026-01-01 10:00+00'::timestamptz + make_interval(mins => n),
    organization_id => '00000000-0000-0000-0000-00000000000a',
    workspace_owner_id => '00000000-0000-0000-0000-00000000000b',
    workspace_id => '00000000-0000-0000-0001-000000000040',
    workspace_name => 'ws40', agent_name => 'main', type => ty,
    status => 'connected',
    connection_id => ('00000000-0000-0000-0002-' || lpad(n::text, 12, '0'))::uuid)
$$;

-- known kinds, new ones (not in connection_type), the longest allowed
SELECT tev(1, 'ssh'), tev(2, 'vscode'), tev(3, 'file_transfer'),
       tev(4, 'tunnel'), tev(5, 'Remote Desktop (RDP)'), tev(6, repeat('t', 63));
-- a string literal resolves to the text function, a connection_type to
-- the one 1.1 had
SELECT connlog_enqueue(
  '00000000-0000-0000-0005-000000000007', '2026-01-01 10:07+00',
  '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b',
  '00000000-0000-0000-0001-000000000040', 'ws40', 'main', 'jetbrains',
  'connected', '00000000-0000-0000-0002-000000000007');
SELECT connlog_enqueue(
  '00000000-0000-0000-0005-000000000008', '2026-01-01 10:08+00',
  '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b',
  '00000000-0000-0000-0001-000000000040', 'ws40', 'main',
  'ssh'::connection_type, 'connected', '00000000-0000-0000-0002-000000000008');
SELECT connlog_flush();
SELECT * FROM delta();
SELECT right(connection_id::text, 1) AS n, type, length(type) AS len,
       pg_typeof(type) AS column_type
FROM connection_logs
WHERE workspace_id = '00000000-0000-0000-0001-000000000040'
ORDER BY connection_id;

-- what applications write against a text column: a parameter of text[]
-- and an IN list of literals
PREPARE by_types(text[]) AS
  SELECT right(connection_id::text, 1) AS n, type FROM connection_logs
  WHERE type = ANY($1::text[])
    AND workspace_id = '00000000-0000-0000-0001-000000000040'
  ORDER BY connection_id;
EXECUTE by_types('{ssh,file_transfer}');
EXECUTE by_types(ARRAY['vscode', 'telnet']);
DEALLOCATE by_types;
SELECT right(connection_id::text, 1) AS n, type FROM connection_logs
WHERE type IN ('ssh', 'vscode')
  AND workspace_id = '00000000-0000-0000-0001-000000000040'
ORDER BY connection_id;
-- and the query functions' filter
SELECT right(connection_id::text, 1) AS n, type
FROM connlog_connections(
  workspace_id => '00000000-0000-0000-0001-000000000040',
  types => '{file_transfer,tunnel,jetbrains}')
ORDER BY connection_id;

-- empty and too long (in bytes: 32 two-byte characters are 64) are
-- refused, and nothing is enqueued
SELECT resnap();
\set VERBOSITY default
SELECT tev(9, '');
SELECT tev(9, repeat('t', 64));
SELECT tev(9, repeat('ü', 32));
SELECT connlog_enqueue(
  '00000000-0000-0000-0005-000000000009', '2026-01-01 10:09+00',
  '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b',
  '00000000-0000-0000-0001-000000000040', 'ws40', 'main', '', 'connected');
SELECT connlog_flush();
SELECT * FROM delta();
SELECT count(*) FROM connection_logs
WHERE workspace_id = '00000000-0000-0000-0001-000000000040';

-- a rejected event keeps its type: two web events with one id, of a type
-- connection_type never had; the second fails on the primary key
SELECT resnap();
SELECT connlog_enqueue(
  '00000000-0000-0000-0005-000000000010', '2026-01-01 10:10+00',
  '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b',
  '00000000-0000-0000-0001-000000000041', 'ws41', 'main', 'file_transfer',
  'connected', user_agent => 'first')
FROM generate_series(1, 2);
SELECT connlog_flush();
SELECT * FROM delta();
SELECT type, user_agent FROM connection_logs
WHERE workspace_id = '00000000-0000-0000-0001-000000000041';
SELECT error, event->>'type' AS type, event->>'status' AS status
FROM connection_logs_rejected
WHERE event->>'workspace_id' = '00000000-0000-0000-0001-000000000041';

DROP FUNCTION tev;
