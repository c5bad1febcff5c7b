--
-- normalize: values that mean "none" are stored as NULL, as coder's
-- BatchUpsertConnectionLogs stores its Go zero values
--
SET timezone = 'UTC';
SELECT resnap();

-- nw(): a workspace-99 event with every optional field given explicitly
CREATE FUNCTION nw(id int, status connection_status, conn uuid,
                   ua text, usr uuid, slug text, reason text)
RETURNS void LANGUAGE sql AS $$
  SELECT connlog_enqueue(
    id => ('00000000-0000-0000-0009-' || lpad(id::text, 12, '0'))::uuid,
    event_time => '2026-01-01 10:00+00'::timestamptz + make_interval(mins => id),
    organization_id => '00000000-0000-0000-0000-00000000000a',
    workspace_owner_id => '00000000-0000-0000-0000-00000000000b',
    workspace_id => '00000000-0000-0000-0001-000000000099',
    workspace_name => 'ws99', agent_name => 'main', type => 'workspace_app',
    status => status, connection_id => conn, user_agent => ua, user_id => usr,
    slug_or_port => slug, disconnect_reason => reason)
$$;

-- empty strings and the all-zero uuid become NULL
SELECT nw(1, 'connected', NULL, '', '00000000-0000-0000-0000-000000000000', '', '');
-- two web events with the all-zero connection_id: they must not merge
SELECT nw(2, 'connected', '00000000-0000-0000-0000-000000000000', 'curl/8', NULL, 'app', NULL);
SELECT nw(3, 'connected', '00000000-0000-0000-0000-000000000000', 'curl/8', NULL, 'app', NULL);
-- real values are kept, whitespace included; empty ones still go
SELECT nw(4, 'connected', '00000000-0000-0000-0002-000000000901', ' ', '00000000-0000-0000-0000-0000000000cc', '22', NULL);
SELECT nw(5, 'disconnected', '00000000-0000-0000-0002-000000000902', '', NULL, '', 'closed');
SELECT connlog_flush();

SELECT right(id::text, 2) AS id, connection_id, user_agent, user_id,
       slug_or_port, disconnect_reason,
       user_agent IS NULL AS ua_null, slug_or_port IS NULL AS slug_null,
       disconnect_reason IS NULL AS reason_null
FROM connection_logs
WHERE workspace_id = '00000000-0000-0000-0001-000000000099'
ORDER BY id;
SELECT * FROM delta();

DROP FUNCTION nw;
