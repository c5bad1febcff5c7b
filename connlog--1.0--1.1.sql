/* connlog--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION connlog UPDATE TO '1.1'" to load this file. \quit

-- Make room.  The schema this extension lives in may be one where other
-- roles can create objects (public is the database owner's), and an
-- object there with a name this script creates would make the CREATE
-- fail, and so block the update.  Such an object is not a member of the
-- extension: it is renamed to a free name, with a WARNING that says so,
-- and otherwise left as its owner made it.  It never becomes a
-- member (another role's object must not) and is never dropped.  The list names each object the script creates under a name
-- that may be free before it runs, by its identity: a function by its
-- arguments, a relation and a type by its name (they share one name
-- space).  A type that is a relation's row type is the relation's.  (The
-- query functions take a connection_log_state, a type this script makes:
-- no function another role made before can have their arguments.)  Like
-- the query functions, this runs under a search_path the script does not
-- choose: every name is qualified.
DO $$
DECLARE
	ext pg_catalog.oid;
	obj record;
	free text;
	n integer;
BEGIN
	SELECT e.oid INTO ext FROM pg_catalog.pg_extension e
	WHERE e.extname OPERATOR(pg_catalog.=) 'connlog'::pg_catalog.name;
	FOR obj IN
		SELECT v.catalog, v.objid,
			pg_catalog.pg_describe_object(v.catalog, v.objid, 0) AS what,
			COALESCE(p.proname, c.relname, t.typname) AS name,
			COALESCE(p.proowner, c.relowner, t.typowner) AS owner,
			CASE
				WHEN p.oid IS NOT NULL THEN 'ROUTINE'
				WHEN c.relkind OPERATOR(pg_catalog.=) 'v' THEN 'VIEW'
				WHEN c.relkind OPERATOR(pg_catalog.=) 'm' THEN 'MATERIALIZED VIEW'
				WHEN c.relkind OPERATOR(pg_catalog.=) ANY ('{i,I}') THEN 'INDEX'
				WHEN c.relkind OPERATOR(pg_catalog.=) 'S' THEN 'SEQUENCE'
				WHEN c.relkind OPERATOR(pg_catalog.=) 'f' THEN 'FOREIGN TABLE'
				WHEN c.relkind OPERATOR(pg_catalog.=) 'c' THEN 'TYPE'
				WHEN c.oid IS NOT NULL THEN 'TABLE'
				WHEN t.typtype OPERATOR(pg_catalog.=) 'd' THEN 'DOMAIN'
				ELSE 'TYPE'
			END AS kind,
			pg_catalog.oidvectortypes(p.proargtypes) AS args
		FROM (VALUES
			('pg_catalog.pg_class'::pg_catalog.regclass,
			 pg_catalog.to_regclass('@extschema@.connlog_wal_progress')::pg_catalog.oid),
			('pg_catalog.pg_type'::pg_catalog.regclass,
			 pg_catalog.to_regtype('@extschema@.connlog_wal_progress')::pg_catalog.oid),
			('pg_catalog.pg_class'::pg_catalog.regclass,
			 pg_catalog.to_regclass('@extschema@.connection_logs_user_id_idx')::pg_catalog.oid),
			('pg_catalog.pg_class'::pg_catalog.regclass,
			 pg_catalog.to_regclass('@extschema@.connection_log_state')::pg_catalog.oid),
			('pg_catalog.pg_type'::pg_catalog.regclass,
			 pg_catalog.to_regtype('@extschema@.connection_log_state')::pg_catalog.oid),
			('pg_catalog.pg_proc'::pg_catalog.regclass,
			 pg_catalog.to_regprocedure('@extschema@.connlog_query_check(pg_catalog.text, pg_catalog.int4, pg_catalog.int4, pg_catalog.timestamptz, pg_catalog.timestamptz)')::pg_catalog.oid)
		) AS v(catalog, objid)
		LEFT JOIN pg_catalog.pg_proc p
			ON v.catalog OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
			AND p.oid OPERATOR(pg_catalog.=) v.objid
		LEFT JOIN pg_catalog.pg_class c
			ON v.catalog OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
			AND c.oid OPERATOR(pg_catalog.=) v.objid
		LEFT JOIN pg_catalog.pg_type t
			ON v.catalog OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
			AND t.oid OPERATOR(pg_catalog.=) v.objid
		WHERE v.objid IS NOT NULL
			AND COALESCE(t.typrelid, 0::pg_catalog.oid) OPERATOR(pg_catalog.=) 0::pg_catalog.oid
			AND NOT EXISTS (
				SELECT FROM pg_catalog.pg_depend d
				WHERE d.classid OPERATOR(pg_catalog.=) v.catalog
					AND d.objid OPERATOR(pg_catalog.=) v.objid
					AND d.refclassid OPERATOR(pg_catalog.=)
						'pg_catalog.pg_extension'::pg_catalog.regclass
					AND d.refobjid OPERATOR(pg_catalog.=) ext
					AND d.deptype OPERATOR(pg_catalog.=) 'e')
			-- an index on a member table (built beforehand) is the extension's
			AND NOT EXISTS (
				SELECT FROM pg_catalog.pg_index i
				JOIN pg_catalog.pg_depend d
					ON d.classid OPERATOR(pg_catalog.=)
						'pg_catalog.pg_class'::pg_catalog.regclass
					AND d.objid OPERATOR(pg_catalog.=) i.indrelid
					AND d.refclassid OPERATOR(pg_catalog.=)
						'pg_catalog.pg_extension'::pg_catalog.regclass
					AND d.refobjid OPERATOR(pg_catalog.=) ext
					AND d.deptype OPERATOR(pg_catalog.=) 'e'
				WHERE i.indexrelid OPERATOR(pg_catalog.=) v.objid)
	LOOP
		n := 0;
		LOOP
			n := n OPERATOR(pg_catalog.+) 1;
			free := pg_catalog.format('%s_moved_%s',
				pg_catalog.left(obj.name, 40), n);
			EXIT WHEN CASE WHEN obj.kind OPERATOR(pg_catalog.=) 'ROUTINE'
				THEN pg_catalog.to_regprocedure(pg_catalog.format('@extschema@.%I(%s)',
						free, obj.args)) IS NULL
				ELSE pg_catalog.to_regclass(pg_catalog.format('@extschema@.%I', free)) IS NULL
					AND pg_catalog.to_regtype(pg_catalog.format('@extschema@.%I', free)) IS NULL
				END;
		END LOOP;
		EXECUTE pg_catalog.format('ALTER %s @extschema@.%I%s RENAME TO %I',
			obj.kind, obj.name,
			CASE WHEN obj.kind OPERATOR(pg_catalog.=) 'ROUTINE'
				THEN pg_catalog.format('(%s)', obj.args) ELSE '' END,
			free);
		RAISE WARNING 'renamed % to "%"', obj.what, free
			USING DETAIL = pg_catalog.format('Updating extension connlog creates an object of that name in schema %s, where role %s had created one that is not a member of the extension.',
				'@extschema@', pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(obj.owner))),
			HINT = 'The renamed object is otherwise unchanged; drop it if it is not needed.';
	END LOOP;
END
$$;

-- A NULL timeout is now an error instead of a silent no-op.
ALTER FUNCTION connlog_flush(interval) CALLED ON NULL INPUT;

-- connlog_stats gains purged and worker_state.  A function's OUT columns
-- cannot change in place, so the view and the function are made afresh
-- (grants on them other than pg_monitor's must be given again).
DROP VIEW connlog_stats;
DROP FUNCTION connlog_stats();

CREATE FUNCTION connlog_stats(
	OUT enqueued bigint,
	OUT merged bigint,
	OUT written bigint,
	OUT rejected bigint,
	OUT dropped bigint,
	OUT pending bigint,
	OUT batches bigint,
	OUT write_errors bigint,
	OUT retries bigint,
	OUT purged bigint,
	OUT ring_used_bytes bigint,
	OUT ring_size_bytes bigint,
	OUT last_flush timestamptz,
	OUT last_error text,
	OUT worker_pid integer,
	OUT worker_state text)
RETURNS record
AS 'MODULE_PATHNAME', 'connlog_stats_1_1'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW connlog_stats AS SELECT * FROM connlog_stats();

REVOKE ALL ON FUNCTION connlog_stats() FROM PUBLIC;
REVOKE ALL ON connlog_stats FROM PUBLIC;
GRANT EXECUTE ON FUNCTION connlog_stats() TO pg_monitor;
GRANT SELECT ON connlog_stats TO pg_monitor;

-- connlog.durability: how far the WAL-backed events are written.  The
-- worker updates the one row in the same transaction as each write, and
-- reads WAL back from here after a crash (see README.md, "Durability").
-- Internal; not dumped: an LSN means nothing in another cluster.
-- Of the events of shared memory's life epoch, those numbered below
-- done_seq are written; the others not written start at or after done_lsn.
CREATE TABLE connlog_wal_progress (
	epoch bigint NOT NULL,
	done_seq bigint NOT NULL,
	done_lsn pg_lsn NOT NULL
);
INSERT INTO connlog_wal_progress VALUES (0, 0, '0/0');
REVOKE ALL ON connlog_wal_progress FROM PUBLIC;

-- Query paths: see README.md, "Querying the log".

-- The query paths' indexes.  The worker inserts into every index of
-- connection_logs for each row it writes, and updates each connection's
-- row when its disconnect comes, so the indexes are chosen for the writer
-- as much as for the readers (measured with 300,000 rows, bench/RESULTS.md
-- "Indexes"):
--  * 1.0's single-column indexes on connect_time DESC, workspace_id,
--    workspace_owner_id and organization_id serve the paths: a page of
--    newest rows of one key reads the connect_time index and filters, or
--    the key's index and sorts, whichever the planner finds cheaper.
--    Composite (x, connect_time DESC) indexes would read fewer entries
--    for a deep page, but their keys are all distinct, so B-tree
--    deduplication cannot shrink them the way it shrinks an index of a
--    column with few values (an organization, an owner); they made every
--    insert about 45 % dearer.
--  * none on disconnect_time, not even a partial one for ongoing
--    connections: the disconnect's update sets disconnect_time, and an
--    index that mentions it would make that update non-HOT, so every
--    disconnect would insert into every index.  A page of ongoing
--    connections reads the connect_time index (they are the newest);
--    counting all of them reads the table.
--  * user_id: only the rows with a user_id (web connections), so the
--    others cost it nothing; the upsert never changes user_id.
-- There is none on type: with seven values a type alone selects about a
-- seventh of the table, which an index would read little faster than the
-- table, while every write would pay for it.
-- Building it locks connection_logs against writes (SHARE) for as long
-- as the build takes; IF NOT EXISTS lets an administrator of a big table
-- build it CONCURRENTLY beforehand (README.md).
CREATE INDEX IF NOT EXISTS connection_logs_user_id_idx
	ON connection_logs (user_id) WHERE user_id IS NOT NULL;

-- A connection's state, as the query functions filter on it: ongoing
-- while its disconnect_time is NULL, completed after.
CREATE TYPE connection_log_state AS ENUM ('ongoing', 'completed');

-- Raises an error for the query functions' arguments that no query can
-- mean, and returns true otherwise.  IMMUTABLE, so that with constant
-- arguments the planner calls it once, while planning, and drops it from
-- the inlined query.
CREATE FUNCTION connlog_query_check(func text, "limit" integer,
	"offset" integer, connected_after timestamptz,
	connected_before timestamptz)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
	IF "limit" IS NULL OR "offset" IS NULL THEN
		RAISE EXCEPTION 'argument "%" of % must not be null',
			CASE WHEN "limit" IS NULL THEN 'limit' ELSE 'offset' END, func
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF "limit" < 0 OR "offset" < 0 THEN
		RAISE EXCEPTION 'argument "%" of % must not be negative',
			CASE WHEN "limit" < 0 THEN 'limit' ELSE 'offset' END, func
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF connected_after > connected_before THEN
		RAISE EXCEPTION 'argument "connected_after" of % must not be later than "connected_before"',
			func
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN true;
END
$$;

-- The two query functions are each one SELECT in LANGUAGE sql, STABLE,
-- not STRICT, without SET or SECURITY DEFINER: that is what lets the
-- planner inline them into the calling query (in its FROM clause), fold
-- away the filters passed as NULL, and plan what is left against the
-- indexes above, as if the caller had written the query out.  A filter
-- left NULL matches every row.  Parameters are qualified with the
-- function's name because the table's columns have the same names, and
-- objects with @extschema@ because the caller's search_path is in effect.

-- The connections that match every filter given, newest first (id breaks
-- ties, so that pages of limit/offset neither repeat nor skip rows).
CREATE FUNCTION connlog_connections(
	organization_id uuid DEFAULT NULL,
	workspace_owner_id uuid DEFAULT NULL,
	workspace_id uuid DEFAULT NULL,
	type connection_type DEFAULT NULL,
	user_id uuid DEFAULT NULL,
	connection_id uuid DEFAULT NULL,
	state connection_log_state DEFAULT NULL,
	connected_after timestamptz DEFAULT NULL,
	connected_before timestamptz DEFAULT NULL,
	"limit" integer DEFAULT 100,
	"offset" integer DEFAULT 0)
RETURNS SETOF connection_logs
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
SELECT c.*
FROM @extschema@.connection_logs c
WHERE @extschema@.connlog_query_check('connlog_connections',
		connlog_connections."limit", connlog_connections."offset",
		connlog_connections.connected_after,
		connlog_connections.connected_before)
	AND (connlog_connections.organization_id IS NULL
		 OR c.organization_id = connlog_connections.organization_id)
	AND (connlog_connections.workspace_owner_id IS NULL
		 OR c.workspace_owner_id = connlog_connections.workspace_owner_id)
	AND (connlog_connections.workspace_id IS NULL
		 OR c.workspace_id = connlog_connections.workspace_id)
	AND (connlog_connections.type IS NULL
		 OR c.type = connlog_connections.type)
	AND (connlog_connections.user_id IS NULL
		 OR c.user_id = connlog_connections.user_id)
	AND (connlog_connections.connection_id IS NULL
		 OR c.connection_id = connlog_connections.connection_id)
	AND (connlog_connections.state IS NULL
		 OR (connlog_connections.state = 'ongoing'
			 AND c.disconnect_time IS NULL)
		 OR (connlog_connections.state = 'completed'
			 AND c.disconnect_time IS NOT NULL))
	AND (connlog_connections.connected_after IS NULL
		 OR c.connect_time >= connlog_connections.connected_after)
	AND (connlog_connections.connected_before IS NULL
		 OR c.connect_time <= connlog_connections.connected_before)
ORDER BY c.connect_time DESC, c.id
LIMIT connlog_connections."limit"
OFFSET connlog_connections."offset"
$$;

-- How many connections match every filter given: the total behind
-- connlog_connections' pages.  Its WHERE clause is connlog_connections'
-- (keep the two alike): a shared inner function would be one more that
-- every reader must be granted.  It returns one row rather than a scalar
-- because only a function called in FROM can be inlined; a scalar SQL
-- function with a FROM clause runs with a generic plan, which cannot use
-- an index for a filter that may be NULL.
CREATE FUNCTION connlog_connection_count(
	organization_id uuid DEFAULT NULL,
	workspace_owner_id uuid DEFAULT NULL,
	workspace_id uuid DEFAULT NULL,
	type connection_type DEFAULT NULL,
	user_id uuid DEFAULT NULL,
	connection_id uuid DEFAULT NULL,
	state connection_log_state DEFAULT NULL,
	connected_after timestamptz DEFAULT NULL,
	connected_before timestamptz DEFAULT NULL)
RETURNS TABLE (count bigint)
LANGUAGE sql STABLE PARALLEL SAFE ROWS 1
AS $$
SELECT count(*)
FROM @extschema@.connection_logs c
WHERE @extschema@.connlog_query_check('connlog_connection_count', 0, 0,
		connlog_connection_count.connected_after,
		connlog_connection_count.connected_before)
	AND (connlog_connection_count.organization_id IS NULL
		 OR c.organization_id = connlog_connection_count.organization_id)
	AND (connlog_connection_count.workspace_owner_id IS NULL
		 OR c.workspace_owner_id = connlog_connection_count.workspace_owner_id)
	AND (connlog_connection_count.workspace_id IS NULL
		 OR c.workspace_id = connlog_connection_count.workspace_id)
	AND (connlog_connection_count.type IS NULL
		 OR c.type = connlog_connection_count.type)
	AND (connlog_connection_count.user_id IS NULL
		 OR c.user_id = connlog_connection_count.user_id)
	AND (connlog_connection_count.connection_id IS NULL
		 OR c.connection_id = connlog_connection_count.connection_id)
	AND (connlog_connection_count.state IS NULL
		 OR (connlog_connection_count.state = 'ongoing'
			 AND c.disconnect_time IS NULL)
		 OR (connlog_connection_count.state = 'completed'
			 AND c.disconnect_time IS NOT NULL))
	AND (connlog_connection_count.connected_after IS NULL
		 OR c.connect_time >= connlog_connection_count.connected_after)
	AND (connlog_connection_count.connected_before IS NULL
		 OR c.connect_time <= connlog_connection_count.connected_before)
$$;

-- Readers need EXECUTE on all three and SELECT on connection_logs (README).
REVOKE ALL ON FUNCTION connlog_query_check(text, integer, integer,
	timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION connlog_connections(uuid, uuid, uuid,
	connection_type, uuid, uuid, connection_log_state, timestamptz,
	timestamptz, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION connlog_connection_count(uuid, uuid, uuid,
	connection_type, uuid, uuid, connection_log_state, timestamptz,
	timestamptz) FROM PUBLIC;
