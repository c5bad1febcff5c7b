/* connlog--1.3.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION connlog" to load this file. \quit

-- This script, and the SQL and PL/pgSQL functions it creates, run under a
-- search_path that neither chooses: the installer's, and each caller's.
-- Another role may have created operators and functions in a schema on
-- it (even in this extension's schema), which an unqualified name in an
-- expression could resolve to and run with the installer's or caller's
-- privileges.  DDL names objects it creates or types it declares, which
-- is safe; every expression (a DEFAULT, a view, a DO block, a function
-- body) qualifies its operators and functions with pg_catalog and this
-- extension's objects with @extschema@ ("Security Considerations for
-- Extensions" in PostgreSQL's documentation).

-- The kinds of connection 1.0 and 1.1 knew.  A connection's type is text
-- (connection_logs.type), so that a new kind needs no migration; the enum
-- is kept for compatibility, for callers of connlog_enqueue that cast to
-- it (the overload below).
CREATE TYPE connection_type AS ENUM (
	'ssh', 'vscode', 'jetbrains', 'reconnecting_pty', 'workspace_app',
	'port_forwarding', 'tunnel'
);

CREATE TYPE connection_status AS ENUM ('connected', 'disconnected');

-- One row per connection: the worker merges its connect and disconnect.
CREATE TABLE connection_logs (
	id uuid PRIMARY KEY,
	connect_time timestamptz NOT NULL,
	organization_id uuid NOT NULL,
	workspace_owner_id uuid NOT NULL,
	workspace_id uuid NOT NULL,
	workspace_name text NOT NULL,
	agent_name text NOT NULL,
	type text NOT NULL,
	ip inet,
	code integer,
	user_agent text,
	user_id uuid,
	slug_or_port text,
	connection_id uuid,
	disconnect_time timestamptz,
	disconnect_reason text,
	-- connlog_enqueue's extra: on conflict the row's keys keep their
	-- values and the event's other keys are added
	extra jsonb,
	-- the upsert's conflict target; NULL connection_ids never conflict
	UNIQUE (connection_id, workspace_id, agent_name)
);

CREATE INDEX connection_logs_connect_time_idx
	ON connection_logs (connect_time DESC);
CREATE INDEX connection_logs_workspace_id_idx
	ON connection_logs (workspace_id);
CREATE INDEX connection_logs_workspace_owner_id_idx
	ON connection_logs (workspace_owner_id);
CREATE INDEX connection_logs_organization_id_idx
	ON connection_logs (organization_id);
-- the other indexes are the query paths' (at the end)

-- Rows that failed on their own even after retries and splitting.
-- The worker passes each batch to its upsert as one array of these: a
-- single composite array unnests several times faster than sixteen column
-- arrays.  It repeats connection_logs' columns on purpose instead of using
-- the table's row type: the table is the user's to alter (add columns,
-- change types), and the INSERT assigns these values to whatever it has
-- become, while this type stays the worker's fixed format.  Internal; its
-- columns must stay in this order (writer.c checks them).
CREATE TYPE connlog_batch_row AS (
	id uuid,
	connect_time timestamptz,
	organization_id uuid,
	workspace_owner_id uuid,
	workspace_id uuid,
	workspace_name text,
	agent_name text,
	type text,
	ip inet,
	code integer,
	user_agent text,
	user_id uuid,
	slug_or_port text,
	connection_id uuid,
	disconnect_time timestamptz,
	disconnect_reason text,
	extra jsonb
);

CREATE TABLE connection_logs_rejected (
	rejected_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	error text NOT NULL,
	event jsonb NOT NULL
);

-- the tables hold user data: pg_dump must dump their contents
SELECT pg_catalog.pg_extension_config_dump('connection_logs', '');
SELECT pg_catalog.pg_extension_config_dump('connection_logs_rejected', '');

-- type: any text of 1 to 63 bytes (README).  extra: values for the
-- columns of connlog.target_table's table beyond these sixteen, by name,
-- or on connection_logs for its column extra (doc/connlog.md).
CREATE FUNCTION connlog_enqueue(
	id uuid,
	event_time timestamptz,
	organization_id uuid,
	workspace_owner_id uuid,
	workspace_id uuid,
	workspace_name text,
	agent_name text,
	type text,
	status connection_status,
	connection_id uuid DEFAULT NULL,
	ip inet DEFAULT NULL,
	code integer DEFAULT NULL,
	user_agent text DEFAULT NULL,
	user_id uuid DEFAULT NULL,
	slug_or_port text DEFAULT NULL,
	disconnect_reason text DEFAULT NULL,
	extra jsonb DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'connlog_enqueue_1_2'
LANGUAGE C VOLATILE;

-- Kept for compatibility: 1.1's connlog_enqueue, for callers that cast
-- the type to connection_type.  A string literal or a text value resolves
-- to the function above.
CREATE FUNCTION connlog_enqueue(
	id uuid,
	event_time timestamptz,
	organization_id uuid,
	workspace_owner_id uuid,
	workspace_id uuid,
	workspace_name text,
	agent_name text,
	type connection_type,
	status connection_status,
	connection_id uuid DEFAULT NULL,
	ip inet DEFAULT NULL,
	code integer DEFAULT NULL,
	user_agent text DEFAULT NULL,
	user_id uuid DEFAULT NULL,
	slug_or_port text DEFAULT NULL,
	disconnect_reason text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'connlog_enqueue'
LANGUAGE C VOLATILE;

-- A drop-in for coder's BatchUpsertConnectionLogs: its seventeen arrays,
-- in its order, enqueued as events, all or none; returns how many events
-- (doc/connlog.md).
CREATE FUNCTION connlog_enqueue_batch(
	id uuid[],
	connect_time timestamptz[],
	organization_id uuid[],
	workspace_owner_id uuid[],
	workspace_id uuid[],
	workspace_name text[],
	agent_name text[],
	type text[],
	code integer[],
	code_valid boolean[],
	ip inet[],
	user_agent text[],
	user_id uuid[],
	slug_or_port text[],
	connection_id uuid[],
	disconnect_reason text[],
	disconnect_time timestamptz[])
RETURNS bigint
AS 'MODULE_PATHNAME', 'connlog_enqueue_batch'
LANGUAGE C VOLATILE;

-- Not STRICT: a NULL timeout is an error, not a silent no-op.
CREATE FUNCTION connlog_flush(timeout interval DEFAULT '30 s')
RETURNS void
AS 'MODULE_PATHNAME', 'connlog_flush'
LANGUAGE C VOLATILE;

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
	OUT worker_state text,
	OUT lag interval)
RETURNS record
AS 'MODULE_PATHNAME', 'connlog_stats_1_2'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW connlog_stats AS SELECT * FROM @extschema@.connlog_stats();

-- Only roles granted these may enqueue, flush or read the counters.
REVOKE ALL ON FUNCTION connlog_enqueue(uuid, timestamptz, uuid, uuid, uuid,
	text, text, text, connection_status, uuid, inet, integer, text,
	uuid, text, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION connlog_enqueue(uuid, timestamptz, uuid, uuid, uuid,
	text, text, connection_type, connection_status, uuid, inet, integer, text,
	uuid, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION connlog_enqueue_batch(uuid[], timestamptz[], uuid[],
	uuid[], uuid[], text[], text[], text[], integer[], boolean[], inet[],
	text[], uuid[], text[], uuid[], text[], timestamptz[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION connlog_flush(interval) FROM PUBLIC;
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
-- pending_at_exit: how many of those others there were when the worker
-- that stored the row exited; NULL while a worker runs.  pg_upgrade keeps
-- the row but not the WAL: the new cluster's worker reports that number
-- as lost (see src/wal.c, "pg_upgrade").
CREATE TABLE connlog_wal_progress (
	epoch bigint NOT NULL,
	done_seq bigint NOT NULL,
	done_lsn pg_lsn NOT NULL,
	pending_at_exit bigint
);
INSERT INTO @extschema@.connlog_wal_progress VALUES (0, 0, '0/0');
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
-- There is none on type: with a handful of values a type alone selects a
-- large part of the table, which an index would read little faster than the
-- table, while every write would pay for it.
CREATE INDEX connection_logs_user_id_idx
	ON connection_logs (user_id) WHERE user_id IS NOT NULL;

-- A connection's state, as the query functions filter on it: ongoing
-- while its disconnect_time is NULL, completed after.
CREATE TYPE connection_log_state AS ENUM ('ongoing', 'completed');

-- Raises an error for the query functions' arguments that no query can
-- mean, and returns true otherwise.  IMMUTABLE, so that with constant
-- arguments the planner calls it once, while planning, and drops it from
-- the inlined query.  Its search_path is pinned because PL/pgSQL resolves
-- the operators of its body (the comparisons) when it runs, and the
-- caller's path may hold look-alikes; the SET costs little, as the
-- check runs once per call of a query function, not once per row.
CREATE FUNCTION connlog_query_check(func text, "limit" integer,
	"offset" integer, connected_after timestamptz,
	connected_before timestamptz)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
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

-- Converts a value of connlog.table's columns to a type of connection_logs'
-- columns with exactly the value type's output function and the target
-- type's input function (src/query.c says why a cast will not do).
-- Internal to connlog_table_query, which its readers run it through.
CREATE FUNCTION connlog_convert(value "any", target anyelement)
RETURNS anyelement
AS 'MODULE_PATHNAME', 'connlog_convert'
LANGUAGE C STABLE PARALLEL SAFE;

-- connlog.table: the query functions read the table it names instead of
-- connection_logs.  A table chosen by a setting can only be read with a
-- statement built at run time, which an inlined SQL function cannot do;
-- so each query function is the union of two branches, each behind a
-- one-time filter on the setting: the inlined query on connection_logs
-- when connlog.table is empty (with the plans it always had), and a call
-- of the function below otherwise.  The function builds the query with
-- only the filters given, runs it with their values (so it is planned
-- for them, as the inlined query is), and returns either the rows, as
-- connection_logs rows (each column the two tables share by name, the
-- others NULL), or their count.  Its search_path is pinned, and the
-- table's name is quoted from the setting, which only a superuser can
-- change.
--
-- The table's owner chooses its columns' types, and so whatever casts
-- from them exist: a cast's function would run as the reader, so no
-- expression of the query applies one, explicitly or implicitly.  The
-- inner SELECT takes each of connection_logs' columns (found in the
-- catalog, so a column added to connection_logs needs no change here)
-- from the table's column of that name: as it is when it has the same
-- type, else through connlog_convert; every filter, the order and the
-- row then see only connection_logs' own types, whose operators are the
-- built-in ones named below.  A column the same type is a plain column
-- reference, which the planner pulls up, so the table's indexes serve
-- the filters as before.
CREATE FUNCTION connlog_table_query(func text,
	organization_id uuid, workspace_owner_id uuid, workspace_id uuid,
	types text[], user_id uuid, connection_id uuid,
	state connection_log_state, connected_after timestamptz,
	connected_before timestamptz, "limit" integer, "offset" integer,
	count_only boolean)
RETURNS TABLE (log connection_logs, count bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	setting text := pg_catalog.current_setting('connlog.table', true);
	names text[];
	source pg_catalog.regclass;
	cols text;
	conds text := 'true';
BEGIN
	PERFORM @extschema@.connlog_query_check(func, "limit", "offset",
		connected_after, connected_before);
	names := pg_catalog.parse_ident(setting);
	IF pg_catalog.array_length(names, 1) OPERATOR(pg_catalog.<>) 2 THEN
		RAISE EXCEPTION 'invalid connlog.table "%"', setting
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	source := pg_catalog.format('%I.%I', names[1], names[2])::pg_catalog.regclass;
	SELECT pg_catalog.string_agg(
			CASE
				WHEN s.atttypid IS NULL THEN
					pg_catalog.format('NULL::%s AS %I',
						r.atttypid::pg_catalog.regtype, r.attname)
				WHEN s.atttypid OPERATOR(pg_catalog.=) r.atttypid THEN
					pg_catalog.format('c.%1$I AS %1$I', r.attname)
				ELSE
					pg_catalog.format('@extschema@.connlog_convert(c.%1$I, NULL::%2$s) AS %1$I',
						r.attname, r.atttypid::pg_catalog.regtype)
			END, ', ' ORDER BY r.attnum)
		INTO cols
	FROM pg_catalog.pg_attribute r
	LEFT JOIN pg_catalog.pg_attribute s
		ON s.attrelid OPERATOR(pg_catalog.=) source
		AND s.attname OPERATOR(pg_catalog.=) r.attname
		AND s.attnum OPERATOR(pg_catalog.>) 0 AND NOT s.attisdropped
	WHERE r.attrelid OPERATOR(pg_catalog.=)
			'@extschema@.connection_logs'::pg_catalog.regclass
		AND r.attnum OPERATOR(pg_catalog.>) 0 AND NOT r.attisdropped;
	IF organization_id IS NOT NULL THEN
		conds := conds || ' AND l.organization_id OPERATOR(pg_catalog.=) $1';
	END IF;
	IF workspace_owner_id IS NOT NULL THEN
		conds := conds || ' AND l.workspace_owner_id OPERATOR(pg_catalog.=) $2';
	END IF;
	IF workspace_id IS NOT NULL THEN
		conds := conds || ' AND l.workspace_id OPERATOR(pg_catalog.=) $3';
	END IF;
	IF types IS NOT NULL THEN
		conds := conds || ' AND l.type OPERATOR(pg_catalog.=) ANY ($4)';
	END IF;
	IF user_id IS NOT NULL THEN
		conds := conds || ' AND l.user_id OPERATOR(pg_catalog.=) $5';
	END IF;
	IF connection_id IS NOT NULL THEN
		conds := conds || ' AND l.connection_id OPERATOR(pg_catalog.=) $6';
	END IF;
	IF state OPERATOR(pg_catalog.=) 'ongoing'::@extschema@.connection_log_state THEN
		conds := conds || ' AND l.disconnect_time IS NULL';
	ELSIF state IS NOT NULL THEN
		conds := conds || ' AND l.disconnect_time IS NOT NULL';
	END IF;
	IF connected_after IS NOT NULL THEN
		conds := conds || ' AND l.connect_time OPERATOR(pg_catalog.>=) $7';
	END IF;
	IF connected_before IS NOT NULL THEN
		conds := conds || ' AND l.connect_time OPERATOR(pg_catalog.<=) $8';
	END IF;
	IF count_only THEN
		RETURN QUERY EXECUTE pg_catalog.format(
			'SELECT NULL::@extschema@.connection_logs, pg_catalog.count(*) FROM (SELECT %s FROM %I.%I c) l WHERE %s',
			cols, names[1], names[2], conds)
		USING organization_id, workspace_owner_id, workspace_id, types,
			user_id, connection_id, connected_after, connected_before;
	ELSE
		RETURN QUERY EXECUTE pg_catalog.format(
			'SELECT ROW(l.*)::@extschema@.connection_logs, NULL::pg_catalog.int8 FROM (SELECT %s FROM %I.%I c) l WHERE %s ORDER BY l.connect_time DESC, l.id LIMIT $9 OFFSET $10',
			cols, names[1], names[2], conds)
		USING organization_id, workspace_owner_id, workspace_id, types,
			user_id, connection_id, connected_after, connected_before,
			"limit", "offset";
	END IF;
END
$$;

-- The two query functions are each one SELECT in LANGUAGE sql, STABLE,
-- not STRICT, without SET or SECURITY DEFINER: that is what lets the
-- planner inline them into the calling query (in its FROM clause), fold
-- away the filters passed as NULL, and plan what is left against the
-- indexes above, as if the caller had written the query out.  A filter
-- left NULL matches every row.  Parameters are qualified with the
-- function's name because the table's columns have the same names.
--
-- Without a SET clause the body is parsed under the caller's search_path,
-- in which another role may have created an operator or function that
-- matches the arguments better than the built-in one (an
-- =(connection_log_state, connection_log_state) beats pg_catalog's anyenum
-- operator) or comes before pg_catalog; it would run as the caller, once
-- per row.  So every name in the body is qualified: operators as
-- OPERATOR(pg_catalog.x), functions and types with pg_catalog or
-- @extschema@, and each argument of connlog_query_check has its exact
-- declared type (the text literal cast), so that no overload with a
-- closer signature can capture the call.  ORDER BY, LIMIT and the
-- parameters' casts look up nothing by name.  The operators resolve to
-- the same built-in ones as before, so the plans are unchanged.

-- The connections that match every filter given, newest first (id breaks
-- ties, so that pages of limit/offset neither repeat nor skip rows).
CREATE FUNCTION connlog_connections(
	organization_id uuid DEFAULT NULL,
	workspace_owner_id uuid DEFAULT NULL,
	workspace_id uuid DEFAULT NULL,
	types text[] DEFAULT NULL,
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
(SELECT c.*
FROM @extschema@.connection_logs c
WHERE COALESCE(pg_catalog.current_setting('connlog.table'::pg_catalog.text,
									 true), ''::pg_catalog.text)
		OPERATOR(pg_catalog.=) ''::pg_catalog.text
	AND @extschema@.connlog_query_check(
		'connlog_connections'::pg_catalog.text,
		connlog_connections."limit", connlog_connections."offset",
		connlog_connections.connected_after,
		connlog_connections.connected_before)
	AND (connlog_connections.organization_id IS NULL
		 OR c.organization_id OPERATOR(pg_catalog.=)
			connlog_connections.organization_id)
	AND (connlog_connections.workspace_owner_id IS NULL
		 OR c.workspace_owner_id OPERATOR(pg_catalog.=)
			connlog_connections.workspace_owner_id)
	AND (connlog_connections.workspace_id IS NULL
		 OR c.workspace_id OPERATOR(pg_catalog.=)
			connlog_connections.workspace_id)
	AND (connlog_connections.types IS NULL
		 OR c.type OPERATOR(pg_catalog.=) ANY (connlog_connections.types))
	AND (connlog_connections.user_id IS NULL
		 OR c.user_id OPERATOR(pg_catalog.=) connlog_connections.user_id)
	AND (connlog_connections.connection_id IS NULL
		 OR c.connection_id OPERATOR(pg_catalog.=)
			connlog_connections.connection_id)
	AND (connlog_connections.state IS NULL
		 OR (connlog_connections.state OPERATOR(pg_catalog.=)
			 'ongoing'::@extschema@.connection_log_state
			 AND c.disconnect_time IS NULL)
		 OR (connlog_connections.state OPERATOR(pg_catalog.=)
			 'completed'::@extschema@.connection_log_state
			 AND c.disconnect_time IS NOT NULL))
	AND (connlog_connections.connected_after IS NULL
		 OR c.connect_time OPERATOR(pg_catalog.>=)
			connlog_connections.connected_after)
	AND (connlog_connections.connected_before IS NULL
		 OR c.connect_time OPERATOR(pg_catalog.<=)
			connlog_connections.connected_before)
ORDER BY c.connect_time DESC, c.id
LIMIT connlog_connections."limit"
OFFSET connlog_connections."offset")
UNION ALL
SELECT (t.log).*
FROM @extschema@.connlog_table_query('connlog_connections'::pg_catalog.text,
	connlog_connections.organization_id,
	connlog_connections.workspace_owner_id, connlog_connections.workspace_id,
	connlog_connections.types, connlog_connections.user_id,
	connlog_connections.connection_id, connlog_connections.state,
	connlog_connections.connected_after, connlog_connections.connected_before,
	connlog_connections."limit", connlog_connections."offset", false) t
WHERE COALESCE(pg_catalog.current_setting('connlog.table'::pg_catalog.text,
									 true), ''::pg_catalog.text)
	OPERATOR(pg_catalog.<>) ''::pg_catalog.text
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
	types text[] DEFAULT NULL,
	user_id uuid DEFAULT NULL,
	connection_id uuid DEFAULT NULL,
	state connection_log_state DEFAULT NULL,
	connected_after timestamptz DEFAULT NULL,
	connected_before timestamptz DEFAULT NULL)
RETURNS TABLE (count bigint)
LANGUAGE sql STABLE PARALLEL SAFE ROWS 1
AS $$
SELECT pg_catalog.count(*)
FROM @extschema@.connection_logs c
WHERE COALESCE(pg_catalog.current_setting('connlog.table'::pg_catalog.text,
									 true), ''::pg_catalog.text)
		OPERATOR(pg_catalog.=) ''::pg_catalog.text
	AND @extschema@.connlog_query_check(
		'connlog_connection_count'::pg_catalog.text, 0, 0,
		connlog_connection_count.connected_after,
		connlog_connection_count.connected_before)
	AND (connlog_connection_count.organization_id IS NULL
		 OR c.organization_id OPERATOR(pg_catalog.=)
			connlog_connection_count.organization_id)
	AND (connlog_connection_count.workspace_owner_id IS NULL
		 OR c.workspace_owner_id OPERATOR(pg_catalog.=)
			connlog_connection_count.workspace_owner_id)
	AND (connlog_connection_count.workspace_id IS NULL
		 OR c.workspace_id OPERATOR(pg_catalog.=)
			connlog_connection_count.workspace_id)
	AND (connlog_connection_count.types IS NULL
		 OR c.type OPERATOR(pg_catalog.=) ANY (connlog_connection_count.types))
	AND (connlog_connection_count.user_id IS NULL
		 OR c.user_id OPERATOR(pg_catalog.=) connlog_connection_count.user_id)
	AND (connlog_connection_count.connection_id IS NULL
		 OR c.connection_id OPERATOR(pg_catalog.=)
			connlog_connection_count.connection_id)
	AND (connlog_connection_count.state IS NULL
		 OR (connlog_connection_count.state OPERATOR(pg_catalog.=)
			 'ongoing'::@extschema@.connection_log_state
			 AND c.disconnect_time IS NULL)
		 OR (connlog_connection_count.state OPERATOR(pg_catalog.=)
			 'completed'::@extschema@.connection_log_state
			 AND c.disconnect_time IS NOT NULL))
	AND (connlog_connection_count.connected_after IS NULL
		 OR c.connect_time OPERATOR(pg_catalog.>=)
			connlog_connection_count.connected_after)
	AND (connlog_connection_count.connected_before IS NULL
		 OR c.connect_time OPERATOR(pg_catalog.<=)
			connlog_connection_count.connected_before)
HAVING COALESCE(pg_catalog.current_setting('connlog.table'::pg_catalog.text,
									 true), ''::pg_catalog.text)
	OPERATOR(pg_catalog.=) ''::pg_catalog.text
UNION ALL
SELECT t.count
FROM @extschema@.connlog_table_query(
	'connlog_connection_count'::pg_catalog.text,
	connlog_connection_count.organization_id,
	connlog_connection_count.workspace_owner_id,
	connlog_connection_count.workspace_id, connlog_connection_count.types,
	connlog_connection_count.user_id, connlog_connection_count.connection_id,
	connlog_connection_count.state, connlog_connection_count.connected_after,
	connlog_connection_count.connected_before, 0, 0, true) t
WHERE COALESCE(pg_catalog.current_setting('connlog.table'::pg_catalog.text,
									 true), ''::pg_catalog.text)
	OPERATOR(pg_catalog.<>) ''::pg_catalog.text
$$;

-- Readers need EXECUTE on all five and SELECT on connection_logs (README).
REVOKE ALL ON FUNCTION connlog_query_check(text, integer, integer,
	timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION connlog_convert("any", anyelement) FROM PUBLIC;
REVOKE ALL ON FUNCTION connlog_table_query(text, uuid, uuid, uuid,
	text[], uuid, uuid, connection_log_state, timestamptz,
	timestamptz, integer, integer, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION connlog_connections(uuid, uuid, uuid,
	text[], uuid, uuid, connection_log_state, timestamptz,
	timestamptz, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION connlog_connection_count(uuid, uuid, uuid,
	text[], uuid, uuid, connection_log_state, timestamptz,
	timestamptz) FROM PUBLIC;

-- Events are accepted, and written, only in connlog.database, and only
-- while the library is preloaded: an installation anywhere else stays
-- empty, so say so now rather than at the first connlog_enqueue.  Without
-- the preloaded library connlog.database is not in pg_settings (a value
-- set in postgresql.conf is then only a placeholder, which pg_settings
-- does not show).  Like the query functions, this runs under a
-- search_path the script does not choose: every name is qualified.
DO $$
DECLARE
	target text;
	here text := pg_catalog.current_database();
BEGIN
	SELECT s.setting INTO target
	FROM pg_catalog.pg_settings s
	WHERE s.name OPERATOR(pg_catalog.=) 'connlog.database'::pg_catalog.text;
	IF NOT FOUND THEN
		RAISE WARNING 'connlog is not loaded via "shared_preload_libraries"'
			USING DETAIL = 'Until it is, connlog_enqueue raises an error and no connection log events are written.',
			HINT = 'Add connlog to shared_preload_libraries in postgresql.conf and restart the server.';
	ELSIF target OPERATOR(pg_catalog.<>) here THEN
		RAISE WARNING 'connlog writes events only to database "%"', target
			USING DETAIL = pg_catalog.format('connlog_enqueue cannot be called in this database ("%s"), and the connlog worker writes no rows here.', here),
			HINT = pg_catalog.format('Create the extension in database "%s", or set connlog.database to "%s" and restart the server.', target, here);
	END IF;
END
$$;
