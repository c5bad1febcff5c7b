--
-- setup: the extension, its settings, and a helper that enqueues events
--
CREATE EXTENSION connlog;
SET timezone = 'UTC';

-- every setting with its compiled-in default, unit and reload level
SELECT name, boot_val, unit, context FROM pg_settings
WHERE name LIKE 'connlog.%' ORDER BY name;
-- test/regress.conf sets these
SHOW connlog.database;
SHOW connlog.flush_interval;

-- the objects the extension owns, without those that are part of another
-- (an internal dependency: the array type of a type, the row type of a
-- table), which PostgreSQL records as members too from 17
SELECT pg_describe_object(classid, objid, 0) AS object
FROM pg_depend d
WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'connlog')
  AND NOT EXISTS (SELECT FROM pg_depend i
                  WHERE i.classid = d.classid AND i.objid = d.objid
                    AND i.deptype = 'i')
ORDER BY 1;
\d connection_logs

-- ev(): enqueue one event of connection number conn (NULL: a web event) in
-- workspace ws, at minute t past 10:00.
CREATE FUNCTION ev(conn int, status connection_status, t int,
                   ws int DEFAULT 1, reason text DEFAULT NULL,
                   code int DEFAULT NULL, ip inet DEFAULT NULL,
                   agent text DEFAULT 'main')
RETURNS void LANGUAGE sql AS $$
  SELECT connlog_enqueue(
    id => gen_random_uuid(),
    event_time => '2026-01-01 10:00+00'::timestamptz + make_interval(mins => t),
    organization_id => '00000000-0000-0000-0000-00000000000a',
    workspace_owner_id => '00000000-0000-0000-0000-00000000000b',
    workspace_id => ('00000000-0000-0000-0001-' || lpad(ws::text, 12, '0'))::uuid,
    workspace_name => 'ws' || ws,
    agent_name => agent,
    type => 'ssh',
    status => status,
    connection_id => ('00000000-0000-0000-0002-' || lpad(conn::text, 12, '0'))::uuid,
    ip => ip,
    code => code,
    disconnect_reason => reason)
$$;

-- rows(): what the worker wrote for workspace ws, times as minutes past 10:00
CREATE FUNCTION rows(ws int)
RETURNS TABLE (conn int, connect_min int, disconnect_min int, reason text,
               code int, ip inet)
LANGUAGE sql AS $$
  SELECT right(connection_id::text, 4)::int,
         (extract(epoch FROM connect_time - '2026-01-01 10:00+00') / 60)::int,
         (extract(epoch FROM disconnect_time - '2026-01-01 10:00+00') / 60)::int,
         disconnect_reason, code, ip
  FROM connection_logs
  WHERE workspace_id = ('00000000-0000-0000-0001-' || lpad(ws::text, 12, '0'))::uuid
  ORDER BY connection_id NULLS LAST, connect_time
$$;

-- counters are cumulative: tests compare against a snapshot
CREATE TABLE snap AS SELECT * FROM connlog_stats;
CREATE FUNCTION delta()
RETURNS TABLE (enqueued bigint, merged bigint, written bigint, rejected bigint,
               dropped bigint, pending bigint, batches bigint)
LANGUAGE sql AS $$
  SELECT s.enqueued - p.enqueued, s.merged - p.merged, s.written - p.written,
         s.rejected - p.rejected, s.dropped - p.dropped, s.pending,
         s.batches - p.batches
  FROM connlog_stats s, snap p
$$;
CREATE FUNCTION resnap() RETURNS void LANGUAGE sql AS $$
  DELETE FROM snap; INSERT INTO snap SELECT * FROM connlog_stats;
$$;

-- the worker is up and writes to this database
SELECT connlog_flush();
SELECT worker_pid IS NOT NULL AS worker_running, pending FROM connlog_stats;
-- (t/001_basics.pl checks the wait event it sleeps on)
SELECT backend_type FROM pg_stat_activity
WHERE backend_type = 'connlog worker';
