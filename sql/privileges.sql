--
-- privileges: nothing is granted to PUBLIC
--
CREATE ROLE connlog_app;
CREATE ROLE connlog_watch;
GRANT pg_monitor TO connlog_watch;

SET ROLE connlog_app;
SELECT ev(1, 'connected', 0, ws => 30);
SELECT connlog_flush();
SELECT count(*) FROM connlog_stats;
RESET ROLE;

-- the grants an application needs (see README); connlog_enqueue has two
-- overloads (type text, and type connection_type kept for compatibility),
-- so a GRANT must name one by its arguments
GRANT EXECUTE ON FUNCTION connlog_enqueue TO connlog_app;
GRANT EXECUTE ON FUNCTION connlog_enqueue(uuid, timestamptz, uuid, uuid, uuid,
  text, text, text, connection_status, uuid, inet, integer, text, uuid, text,
  text, jsonb) TO connlog_app;
GRANT EXECUTE ON FUNCTION connlog_flush TO connlog_app;
SET ROLE connlog_app;
SELECT ev(1, 'connected', 0, ws => 30);
SELECT connlog_flush();
RESET ROLE;
SELECT count(*) FROM rows(30);

-- pg_monitor members may read the counters
SET ROLE connlog_watch;
SELECT enqueued > 0 AS counting FROM connlog_stats;
RESET ROLE;

DROP OWNED BY connlog_app, connlog_watch;
DROP ROLE connlog_app, connlog_watch;
