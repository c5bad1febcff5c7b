/* connlog--1.1--1.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION connlog UPDATE TO '1.2'" to load this file. \quit

-- 1.2 makes the query functions immune to look-alike operators and
-- functions on the caller's search_path (see connlog--1.2.sql), makes a
-- connection's type text, and warns when the extension is in a database
-- connlog does not write to.  connlog_query_check keeps its signature,
-- so CREATE OR REPLACE keeps its OID and grants; the query functions take
-- types text[] instead of a connection_type, so they are made afresh with
-- the grants of the old ones, which are then dropped.  Every definition
-- must stay that of connlog--1.2.sql (t/007_upgrade.pl compares them).
-- The replaced functions are members of this extension, and CREATE OR
-- REPLACE refuses to take over an object that is not, so nothing another
-- role created can be captured here.

-- Make room.  The schema this extension lives in may be one where other
-- roles can create objects (public is the database owner's), and an
-- object there with a name this script creates (including connlog_stats_1_1, the name
-- the old connlog_stats takes while its grants are copied) would make the CREATE
-- fail, and so block the update.  Such an object is not a member of the
-- extension: it is renamed to a free name, with a WARNING that says so,
-- and otherwise left as its owner made it.  It never becomes a
-- member (another role's object must not) and is never dropped.  The list names each object the script creates under a name
-- that may be free before it runs, by its identity: a function by its
-- arguments, a relation and a type by its name (they share one name
-- space).  A type that is a relation's row type is the relation's.  Like
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
			('pg_catalog.pg_proc'::pg_catalog.regclass,
			 pg_catalog.to_regprocedure('@extschema@.connlog_enqueue(pg_catalog.uuid, pg_catalog.timestamptz, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.text, pg_catalog.text, pg_catalog.text, @extschema@.connection_status, pg_catalog.uuid, pg_catalog.inet, pg_catalog.int4, pg_catalog.text, pg_catalog.uuid, pg_catalog.text, pg_catalog.text)')::pg_catalog.oid),
			('pg_catalog.pg_proc'::pg_catalog.regclass,
			 pg_catalog.to_regprocedure('@extschema@.connlog_table_query(pg_catalog.text, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.text[], pg_catalog.uuid, pg_catalog.uuid, @extschema@.connection_log_state, pg_catalog.timestamptz, pg_catalog.timestamptz, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool)')::pg_catalog.oid),
			('pg_catalog.pg_proc'::pg_catalog.regclass,
			 pg_catalog.to_regprocedure('@extschema@.connlog_connections(pg_catalog.uuid, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.text[], pg_catalog.uuid, pg_catalog.uuid, @extschema@.connection_log_state, pg_catalog.timestamptz, pg_catalog.timestamptz, pg_catalog.int4, pg_catalog.int4)')::pg_catalog.oid),
			('pg_catalog.pg_proc'::pg_catalog.regclass,
			 pg_catalog.to_regprocedure('@extschema@.connlog_connection_count(pg_catalog.uuid, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.text[], pg_catalog.uuid, pg_catalog.uuid, @extschema@.connection_log_state, pg_catalog.timestamptz, pg_catalog.timestamptz)')::pg_catalog.oid),
			('pg_catalog.pg_proc'::pg_catalog.regclass,
			 pg_catalog.to_regprocedure('@extschema@.connlog_stats_1_1()')::pg_catalog.oid),
			('pg_catalog.pg_class'::pg_catalog.regclass,
			 pg_catalog.to_regclass('@extschema@.connlog_stats_1_1')::pg_catalog.oid),
			('pg_catalog.pg_type'::pg_catalog.regclass,
			 pg_catalog.to_regtype('@extschema@.connlog_stats_1_1')::pg_catalog.oid)
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

-- A connection's type is text, so that a new kind needs no migration.
-- Converting the column rewrites connection_logs and its indexes, under
-- an ACCESS EXCLUSIVE lock that holds off the worker's writes and every
-- reader (README gives the time per million rows, bench/type_rewrite).
-- connection_type stays, for callers of connlog_enqueue that cast to it.
ALTER TABLE connection_logs
	ALTER COLUMN type TYPE text USING type::pg_catalog.text;
ALTER TYPE connlog_batch_row ALTER ATTRIBUTE type TYPE text;

-- connlog_enqueue with type text; 1.1's, which takes a connection_type,
-- is kept for compatibility.  A string literal or a text value resolves
-- to the new one.  The roles that may call 1.1's may call this one too
-- (below, with the query functions).
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
	disconnect_reason text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'connlog_enqueue_1_2'
LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION connlog_enqueue(uuid, timestamptz, uuid, uuid, uuid,
	text, text, text, connection_status, uuid, inet, integer, text,
	uuid, text, text) FROM PUBLIC;

-- Raises an error for the query functions' arguments that no query can
-- mean, and returns true otherwise.  IMMUTABLE, so that with constant
-- arguments the planner calls it once, while planning, and drops it from
-- the inlined query.  Its search_path is pinned because PL/pgSQL resolves
-- the operators of its body (the comparisons) when it runs, and the
-- caller's path may hold look-alikes; the SET costs little, as the
-- check runs once per call of a query function, not once per row.
CREATE OR REPLACE FUNCTION connlog_query_check(func text, "limit" integer,
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
	conds text := 'true';
BEGIN
	PERFORM @extschema@.connlog_query_check(func, "limit", "offset",
		connected_after, connected_before);
	names := pg_catalog.parse_ident(setting);
	IF pg_catalog.array_length(names, 1) OPERATOR(pg_catalog.<>) 2 THEN
		RAISE EXCEPTION 'invalid connlog.table "%"', setting
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF organization_id IS NOT NULL THEN
		conds := conds || ' AND c.organization_id OPERATOR(pg_catalog.=) $1';
	END IF;
	IF workspace_owner_id IS NOT NULL THEN
		conds := conds || ' AND c.workspace_owner_id OPERATOR(pg_catalog.=) $2';
	END IF;
	IF workspace_id IS NOT NULL THEN
		conds := conds || ' AND c.workspace_id OPERATOR(pg_catalog.=) $3';
	END IF;
	IF types IS NOT NULL THEN
		conds := conds || ' AND c.type::pg_catalog.text OPERATOR(pg_catalog.=) ANY ($4)';
	END IF;
	IF user_id IS NOT NULL THEN
		conds := conds || ' AND c.user_id OPERATOR(pg_catalog.=) $5';
	END IF;
	IF connection_id IS NOT NULL THEN
		conds := conds || ' AND c.connection_id OPERATOR(pg_catalog.=) $6';
	END IF;
	IF state OPERATOR(pg_catalog.=) 'ongoing'::@extschema@.connection_log_state THEN
		conds := conds || ' AND c.disconnect_time IS NULL';
	ELSIF state IS NOT NULL THEN
		conds := conds || ' AND c.disconnect_time IS NOT NULL';
	END IF;
	IF connected_after IS NOT NULL THEN
		conds := conds || ' AND c.connect_time OPERATOR(pg_catalog.>=) $7';
	END IF;
	IF connected_before IS NOT NULL THEN
		conds := conds || ' AND c.connect_time OPERATOR(pg_catalog.<=) $8';
	END IF;
	IF count_only THEN
		RETURN QUERY EXECUTE pg_catalog.format(
			'SELECT NULL::@extschema@.connection_logs, pg_catalog.count(*) FROM %I.%I c WHERE %s',
			names[1], names[2], conds)
		USING organization_id, workspace_owner_id, workspace_id, types,
			user_id, connection_id, connected_after, connected_before;
	ELSE
		RETURN QUERY EXECUTE pg_catalog.format(
			'SELECT pg_catalog.jsonb_populate_record(NULL::@extschema@.connection_logs, pg_catalog.to_jsonb(c)), NULL::pg_catalog.int8 FROM %I.%I c WHERE %s ORDER BY c.connect_time DESC, c.id LIMIT $9 OFFSET $10',
			names[1], names[2], conds)
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

REVOKE ALL ON FUNCTION connlog_connections(uuid, uuid, uuid,
	text[], uuid, uuid, connection_log_state, timestamptz,
	timestamptz, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION connlog_connection_count(uuid, uuid, uuid,
	text[], uuid, uuid, connection_log_state, timestamptz,
	timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION connlog_table_query(text, uuid, uuid, uuid,
	text[], uuid, uuid, connection_log_state, timestamptz,
	timestamptz, integer, integer, boolean) FROM PUBLIC;

-- connlog_stats gains lag.  A function's OUT columns cannot change in
-- place, so the view and the function are made afresh.  The old ones are
-- renamed first and dropped last, so that the grants other roles had on
-- them can be given again on the new ones (below).
ALTER VIEW @extschema@.connlog_stats RENAME TO connlog_stats_1_1;
ALTER FUNCTION @extschema@.connlog_stats() RENAME TO connlog_stats_1_1;

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

REVOKE ALL ON FUNCTION @extschema@.connlog_stats() FROM PUBLIC;
REVOKE ALL ON @extschema@.connlog_stats FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.connlog_stats() TO pg_monitor;
GRANT SELECT ON @extschema@.connlog_stats TO pg_monitor;

-- The roles' grants on what 1.2 makes afresh.  Whoever may execute
-- 1.1's connlog_enqueue, connlog_connections, connlog_connection_count or
-- connlog_stats(), or read the view connlog_stats, may do the same with
-- its 1.2 counterpart, and whoever may execute connlog_query_check (every
-- reader of the query functions) may execute connlog_table_query, which
-- they call: each grant (to a role or PUBLIC, with its grant option) is
-- given again on the new object, by the role running the update.  A GRANT
-- in an extension script also records the object's privileges as the
-- extension's initial ones (pg_init_privs), which pg_dump leaves out of
-- a dump because CREATE EXTENSION makes them; but these grants are the
-- administrator's, not the extension's, so the initial privileges are
-- set back to what the script's own REVOKEs and GRANTs made them, those
-- of a fresh 1.2.  (The script runs as a superuser: connlog is not
-- trusted.)  Like the query functions, this runs under a search_path the
-- script does not choose: every name is qualified.
DO $$
DECLARE
	pair record;
	g record;
	init pg_catalog.aclitem[];
BEGIN
	FOR pair IN
		SELECT v.catalog, v.old_obj, v.new_obj
		FROM (VALUES
			('pg_catalog.pg_proc'::pg_catalog.regclass,
			 '@extschema@.connlog_enqueue(pg_catalog.uuid, pg_catalog.timestamptz, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.text, pg_catalog.text, @extschema@.connection_type, @extschema@.connection_status, pg_catalog.uuid, pg_catalog.inet, pg_catalog.int4, pg_catalog.text, pg_catalog.uuid, pg_catalog.text, pg_catalog.text)'::pg_catalog.regprocedure::pg_catalog.oid,
			 '@extschema@.connlog_enqueue(pg_catalog.uuid, pg_catalog.timestamptz, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.text, pg_catalog.text, pg_catalog.text, @extschema@.connection_status, pg_catalog.uuid, pg_catalog.inet, pg_catalog.int4, pg_catalog.text, pg_catalog.uuid, pg_catalog.text, pg_catalog.text)'::pg_catalog.regprocedure::pg_catalog.oid),
			('pg_catalog.pg_proc'::pg_catalog.regclass,
			 '@extschema@.connlog_connections(pg_catalog.uuid, pg_catalog.uuid, pg_catalog.uuid, @extschema@.connection_type, pg_catalog.uuid, pg_catalog.uuid, @extschema@.connection_log_state, pg_catalog.timestamptz, pg_catalog.timestamptz, pg_catalog.int4, pg_catalog.int4)'::pg_catalog.regprocedure::pg_catalog.oid,
			 '@extschema@.connlog_connections(pg_catalog.uuid, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.text[], pg_catalog.uuid, pg_catalog.uuid, @extschema@.connection_log_state, pg_catalog.timestamptz, pg_catalog.timestamptz, pg_catalog.int4, pg_catalog.int4)'::pg_catalog.regprocedure::pg_catalog.oid),
			('pg_catalog.pg_proc'::pg_catalog.regclass,
			 '@extschema@.connlog_connection_count(pg_catalog.uuid, pg_catalog.uuid, pg_catalog.uuid, @extschema@.connection_type, pg_catalog.uuid, pg_catalog.uuid, @extschema@.connection_log_state, pg_catalog.timestamptz, pg_catalog.timestamptz)'::pg_catalog.regprocedure::pg_catalog.oid,
			 '@extschema@.connlog_connection_count(pg_catalog.uuid, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.text[], pg_catalog.uuid, pg_catalog.uuid, @extschema@.connection_log_state, pg_catalog.timestamptz, pg_catalog.timestamptz)'::pg_catalog.regprocedure::pg_catalog.oid),
			('pg_catalog.pg_proc'::pg_catalog.regclass,
			 '@extschema@.connlog_query_check(pg_catalog.text, pg_catalog.int4, pg_catalog.int4, pg_catalog.timestamptz, pg_catalog.timestamptz)'::pg_catalog.regprocedure::pg_catalog.oid,
			 '@extschema@.connlog_table_query(pg_catalog.text, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.text[], pg_catalog.uuid, pg_catalog.uuid, @extschema@.connection_log_state, pg_catalog.timestamptz, pg_catalog.timestamptz, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool)'::pg_catalog.regprocedure::pg_catalog.oid),
			('pg_catalog.pg_proc'::pg_catalog.regclass,
			 '@extschema@.connlog_stats_1_1()'::pg_catalog.regprocedure::pg_catalog.oid,
			 '@extschema@.connlog_stats()'::pg_catalog.regprocedure::pg_catalog.oid),
			('pg_catalog.pg_class'::pg_catalog.regclass,
			 '@extschema@.connlog_stats_1_1'::pg_catalog.regclass::pg_catalog.oid,
			 '@extschema@.connlog_stats'::pg_catalog.regclass::pg_catalog.oid)
		) AS v(catalog, old_obj, new_obj)
	LOOP
		SELECT i.initprivs INTO init
		FROM pg_catalog.pg_init_privs i
		WHERE i.objoid OPERATOR(pg_catalog.=) pair.new_obj
			AND i.classoid OPERATOR(pg_catalog.=) pair.catalog::pg_catalog.oid
			AND i.objsubid OPERATOR(pg_catalog.=) 0;
		FOR g IN
			SELECT a.grantee, a.privilege_type, a.is_grantable
			FROM pg_catalog.pg_proc p,
				LATERAL pg_catalog.aclexplode(p.proacl) a
			WHERE pair.catalog OPERATOR(pg_catalog.=)
					'pg_catalog.pg_proc'::pg_catalog.regclass
				AND p.oid OPERATOR(pg_catalog.=) pair.old_obj
				AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
			UNION ALL
			SELECT a.grantee, a.privilege_type, a.is_grantable
			FROM pg_catalog.pg_class c,
				LATERAL pg_catalog.aclexplode(c.relacl) a
			WHERE pair.catalog OPERATOR(pg_catalog.=)
					'pg_catalog.pg_class'::pg_catalog.regclass
				AND c.oid OPERATOR(pg_catalog.=) pair.old_obj
				AND a.grantee OPERATOR(pg_catalog.<>) c.relowner
		LOOP
			EXECUTE pg_catalog.format('GRANT %s ON %s TO %s%s',
				g.privilege_type,
				CASE WHEN pair.catalog OPERATOR(pg_catalog.=)
						'pg_catalog.pg_proc'::pg_catalog.regclass
					THEN 'FUNCTION ' OPERATOR(pg_catalog.||)
						pair.new_obj::pg_catalog.regprocedure::pg_catalog.text
					ELSE 'TABLE ' OPERATOR(pg_catalog.||)
						pair.new_obj::pg_catalog.regclass::pg_catalog.text
				END,
				CASE WHEN g.grantee OPERATOR(pg_catalog.=) 0::pg_catalog.oid
					THEN 'PUBLIC'
					ELSE pg_catalog.quote_ident(
						pg_catalog.pg_get_userbyid(g.grantee)) END,
				CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
		END LOOP;
		UPDATE pg_catalog.pg_init_privs i SET initprivs = init
		WHERE i.objoid OPERATOR(pg_catalog.=) pair.new_obj
			AND i.classoid OPERATOR(pg_catalog.=) pair.catalog::pg_catalog.oid
			AND i.objsubid OPERATOR(pg_catalog.=) 0;
	END LOOP;
END
$$;

DROP FUNCTION connlog_connections(uuid, uuid, uuid, connection_type, uuid,
	uuid, connection_log_state, timestamptz, timestamptz, integer, integer);
DROP FUNCTION connlog_connection_count(uuid, uuid, uuid, connection_type,
	uuid, uuid, connection_log_state, timestamptz, timestamptz);

DROP VIEW @extschema@.connlog_stats_1_1;
DROP FUNCTION @extschema@.connlog_stats_1_1();

-- How many WAL-backed events were not written when the worker last
-- exited, so that a cluster made by pg_upgrade, which keeps this row but
-- not the WAL, can say what it lost (see connlog--1.2.sql).
ALTER TABLE connlog_wal_progress ADD COLUMN pending_at_exit bigint;

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
