--
-- query_paths: connlog_connections and connlog_connection_count on 100k
-- rows answer what the plain query answers, and each plans with an index
--
SET timezone = 'UTC';
-- plans without Gather nodes, whatever the machine
SET max_parallel_workers_per_gather = 0;

-- The earlier tests' rows are not needed here.  Autovacuum must not
-- replace the statistics taken below or mark pages all-visible (which
-- would turn some scans into index-only scans), so the plans stay the same
-- from run to run.
TRUNCATE connection_logs;
ALTER TABLE connection_logs SET (autovacuum_enabled = off);

-- qid(k, n): a uuid that spells kind k and number n
CREATE FUNCTION qid(k int, n int) RETURNS uuid IMMUTABLE LANGUAGE sql AS
$$ SELECT (lpad(k::text, 8, '0') || '-0000-0000-0000-' || lpad(n::text, 12, '0'))::uuid $$;

-- Row i: connects at minute i/2 past 2026-01-01 (two rows per minute, so
-- ordering needs its tie-break), in organization i % 4, owner i % 40,
-- workspace i % 400, of type i % 7 (connection_type's seven labels); web
-- connections (workspace_app, port_forwarding) have one of 30 users,
-- workspace_app has no connection_id; every 50th connection is ongoing.
INSERT INTO connection_logs
SELECT qid(1, i),
       timestamptz '2026-01-01 00:00+00' + (i / 2) * interval '1 min',
       qid(10, i % 4), qid(11, i % 40), qid(12, i % 400),
       'ws' || i % 400, 'main',
       (enum_range(NULL::connection_type))[1 + i % 7]::text,
       '10.0.0.1', NULL, NULL,
       CASE WHEN i % 7 IN (4, 5) THEN qid(13, i % 30) END,
       NULL,
       CASE WHEN i % 7 <> 4 THEN qid(2, i) END,
       CASE WHEN i % 50 <> 0
            THEN timestamptz '2026-01-01 00:00+00' + (i / 2 + i % 90) * interval '1 min'
       END,
       NULL
FROM generate_series(1, 100000) i;
-- a sample as large as the table: the statistics, hence the plans, are
-- the same in every run
SET default_statistics_target = 1000;
ANALYZE connection_logs;
RESET default_statistics_target;
SELECT count(*) AS rows, count(*) FILTER (WHERE disconnect_time IS NULL) AS ongoing,
       count(user_id) AS with_user, count(connection_id) AS with_connection_id
FROM connection_logs;

-- scans(q): the scan nodes of q's plan, e.g. "Index Scan using x"; a
-- Function Scan would mean the function was not inlined.  Left out: the
-- scan of connlog_table_query, the branch of each function that runs
-- only when connlog.target_table is set (its one-time filter is false here).
CREATE FUNCTION scans(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  line text;
  found text[] := '{}';
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
    IF line ~ ' Scan' AND line !~ 'connlog_table_query' THEN
      found := found || (regexp_match(line,
        '((?:Seq|Index|Index Only|Bitmap Index|Bitmap Heap|Function) Scan(?: Backward)?(?: using \S+| on \S+)?)'))[1];
    END IF;
  END LOOP;
  RETURN array_to_string(found, ', ');
END $$;

-- check_path(args, cond, lim, off): connlog_connections(args) against the plain
-- query with WHERE cond, and connlog_connection_count(args) against its
-- count; the scans each function's plan uses
CREATE FUNCTION check_path(args text, cond text, lim int DEFAULT 100,
                           off int DEFAULT 0)
RETURNS TABLE (rows int, same_rows bool, count bigint, same_count bool,
               list_plan text, count_plan text)
LANGUAGE plpgsql AS $$
DECLARE
  got uuid[];
  want uuid[];
  list_q text := format('SELECT * FROM connlog_connections(%s)',
                        concat_ws(', ', nullif(args, ''),
                                  format('"limit" => %s, "offset" => %s', lim, off)));
  count_q text := format('SELECT * FROM connlog_connection_count(%s)', args);
BEGIN
  EXECUTE format('SELECT array(SELECT id FROM (%s) f)', list_q) INTO got;
  EXECUTE format('SELECT array(SELECT id FROM connection_logs WHERE %s
                  ORDER BY connect_time DESC, id LIMIT %s OFFSET %s)',
                 cond, lim, off) INTO want;
  rows := cardinality(got);
  same_rows := got = want;
  EXECUTE count_q INTO count;
  EXECUTE format('SELECT count(*) = $1 FROM connection_logs WHERE %s', cond)
    USING count INTO same_count;
  list_plan := scans(list_q);
  count_plan := scans(count_q);
  RETURN NEXT;
END $$;

-- every filter alone, then the combinations coder's UI sends
CREATE TABLE paths (n int, path text, args text, cond text, lim int, off int);
INSERT INTO paths VALUES
 (1, 'newest', '', 'true', 100, 0),
 (2, 'page 3 of 50', '', 'true', 50, 100),
 (3, 'workspace', 'workspace_id => qid(12, 7)', 'workspace_id = qid(12, 7)', 100, 0),
 (4, 'owner', 'workspace_owner_id => qid(11, 7)', 'workspace_owner_id = qid(11, 7)', 100, 0),
 (5, 'organization', 'organization_id => qid(10, 1)', 'organization_id = qid(10, 1)', 100, 0),
 (6, 'type', $$types => '{vscode}'$$, $$type = 'vscode'$$, 100, 0),
 (7, 'user', 'user_id => qid(13, 5)', 'user_id = qid(13, 5)', 100, 0),
 (8, 'connection', 'connection_id => qid(2, 1234)', 'connection_id = qid(2, 1234)', 100, 0),
 (9, 'ongoing', $$state => 'ongoing'$$, 'disconnect_time IS NULL', 100, 0),
 (10, 'completed', $$state => 'completed'$$, 'disconnect_time IS NOT NULL', 100, 0),
 (11, 'one day', $$connected_after => '2026-01-20', connected_before => '2026-01-21'$$,
      $$connect_time BETWEEN '2026-01-20' AND '2026-01-21'$$, 100, 0),
 (12, 'since a day', $$connected_after => '2026-02-04'$$,
      $$connect_time >= '2026-02-04'$$, 100, 0),
 (13, 'organization, last week, page 2',
      $$organization_id => qid(10, 2), connected_after => '2026-01-28'$$,
      $$organization_id = qid(10, 2) AND connect_time >= '2026-01-28'$$, 25, 25),
 (14, 'owner ongoing',
      $$workspace_owner_id => qid(11, 10), state => 'ongoing'$$,
      'workspace_owner_id = qid(11, 10) AND disconnect_time IS NULL', 100, 0),
 (15, 'workspace completed ssh',
      $$workspace_id => qid(12, 21), state => 'completed', types => '{ssh}'$$,
      $$workspace_id = qid(12, 21) AND disconnect_time IS NOT NULL AND type = 'ssh'$$, 100, 0),
 (16, 'organization type in a day',
      $$organization_id => qid(10, 3), types => '{jetbrains}', connected_after => '2026-01-05', connected_before => '2026-01-06'$$,
      $$organization_id = qid(10, 3) AND type = 'jetbrains' AND connect_time BETWEEN '2026-01-05' AND '2026-01-06'$$, 100, 0),
 (17, 'user ongoing', $$user_id => qid(13, 10), state => 'ongoing'$$,
      'user_id = qid(13, 10) AND disconnect_time IS NULL', 100, 0),
 (18, 'workspace, last page', 'workspace_id => qid(12, 7)', 'workspace_id = qid(12, 7)', 100, 240),
 (19, 'types', $$types => '{ssh,vscode}'$$, $$type IN ('ssh', 'vscode')$$, 100, 0),
 (20, 'owner of types', $$workspace_owner_id => qid(11, 9), types => ARRAY['tunnel', 'file_transfer']$$,
      $$workspace_owner_id = qid(11, 9) AND type IN ('tunnel', 'file_transfer')$$, 100, 0);

-- Every list uses an index, and so does every count of a selective
-- filter but one.  Counts of a large part of the table (all of it, a
-- type's seventh, the 98% completed) read the table: no index makes
-- reading that many rows cheap enough to pay for itself on every write.
-- So does the count of the 2% ongoing: an index that mentions
-- disconnect_time would make every disconnect's update non-HOT
-- (doc/connlog.md, "Indexes"); a page of them reads the connect_time index.
\x on
SELECT p.n, p.path, c.*
FROM paths p, LATERAL check_path(p.args, p.cond, p.lim, p.off) c
ORDER BY p.n;
\x off

-- Applications pass the filters as parameters: each execution gets a plan
-- for its values (a custom plan), in which the function is inlined too.
PREPARE page(uuid, int) AS
  SELECT id, connect_time
  FROM connlog_connections(workspace_id => $1, "limit" => $2);
SELECT scans('EXECUTE page(qid(12, 7), 3)');
EXECUTE page(qid(12, 7), 3);
DEALLOCATE page;

-- Called in the select list, the count function still answers, but is not
-- inlined (doc/connlog.md: call it in FROM).
SELECT connlog_connection_count(workspace_id => qid(12, 7));
EXPLAIN (COSTS OFF) SELECT connlog_connection_count(workspace_id => qid(12, 7));

-- bad arguments are refused, whether or not any row exists
\set VERBOSITY terse
SELECT * FROM connlog_connections("limit" => -1);
SELECT * FROM connlog_connections("offset" => -1);
SELECT * FROM connlog_connections("limit" => NULL);
SELECT * FROM connlog_connections("offset" => NULL);
SELECT * FROM connlog_connections(connected_after => '2026-01-02',
                                  connected_before => '2026-01-01');
SELECT * FROM connlog_connection_count(connected_after => '2026-01-02',
                                       connected_before => '2026-01-01');
SELECT * FROM connlog_connections(state => 'open');
-- also when the values come as parameters
PREPARE bad(int) AS SELECT * FROM connlog_connections("limit" => $1);
EXECUTE bad(-5);
DEALLOCATE bad;
\set VERBOSITY default
-- a type no row has, or an empty list of types, matches no row
SELECT count FROM connlog_connection_count(types => '{telnet}');
SELECT count FROM connlog_connection_count(types => '{}');
-- an empty range of one instant is not an error
SELECT count FROM connlog_connection_count(
  connected_after => '2026-01-20 00:00', connected_before => '2026-01-20 00:00');

-- what a reader needs: EXECUTE on the three functions, SELECT on the table
CREATE ROLE connlog_reader;
SET ROLE connlog_reader;
SELECT count FROM connlog_connection_count(workspace_id => qid(12, 7));
RESET ROLE;
GRANT EXECUTE ON FUNCTION connlog_connections, connlog_connection_count
  TO connlog_reader;
SET ROLE connlog_reader;
SELECT count FROM connlog_connection_count(workspace_id => qid(12, 7));
RESET ROLE;
GRANT EXECUTE ON FUNCTION connlog_query_check, connlog_table_query
  TO connlog_reader;
SET ROLE connlog_reader;
SELECT count FROM connlog_connection_count(workspace_id => qid(12, 7));
RESET ROLE;
GRANT SELECT ON connection_logs TO connlog_reader;
SET ROLE connlog_reader;
SELECT count FROM connlog_connection_count(workspace_id => qid(12, 7));
SELECT count(*) FROM connlog_connections(workspace_id => qid(12, 7));
RESET ROLE;
DROP OWNED BY connlog_reader;
DROP ROLE connlog_reader;

TRUNCATE connection_logs;
ALTER TABLE connection_logs RESET (autovacuum_enabled);
