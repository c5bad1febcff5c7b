/* connlog--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION connlog UPDATE TO '1.3'" to load this file. \quit

-- 1.3: with connlog.table set, the query functions run no code the
-- table's owner chose (connlog--1.3.sql, src/query.c).  Every definition
-- must stay that of connlog--1.3.sql (t/007_upgrade.pl compares them).
--
-- The script has three parts; a change to 1.3 adds to each what it needs:
--  1. make room: every object the script creates under a name that may
--     be free before it runs is listed, by its identity, in the first DO
--     block, which renames an object of that identity that another role
--     created in the extension's schema;
--  2. the definitions, each as in connlog--1.3.sql: CREATE OR REPLACE for
--     a function whose arguments stay (it keeps its OID and grants, and
--     the server refuses to replace an object that is not a member), and
--     for one whose arguments change, CREATE of the new one, then DROP of
--     the old one after part 3;
--  3. grants: the last DO block gives the roles' grants on each old
--     object (listed with its new counterpart) to the new one, and keeps
--     the extension's initial privileges those of a fresh 1.3.

-- Make room.  The schema this extension lives in may be one where other
-- roles can create objects (public is the database owner's), and an
-- object there with a name this script creates would make the CREATE
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
			 pg_catalog.to_regprocedure('@extschema@.connlog_convert("any", anyelement)')::pg_catalog.oid),
			('pg_catalog.pg_proc'::pg_catalog.regclass,
			 pg_catalog.to_regprocedure('@extschema@.connlog_enqueue(pg_catalog.uuid, pg_catalog.timestamptz, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.text, pg_catalog.text, pg_catalog.text, @extschema@.connection_status, pg_catalog.uuid, pg_catalog.inet, pg_catalog.int4, pg_catalog.text, pg_catalog.uuid, pg_catalog.text, pg_catalog.text, pg_catalog.jsonb)')::pg_catalog.oid),
			('pg_catalog.pg_proc'::pg_catalog.regclass,
			 pg_catalog.to_regprocedure('@extschema@.connlog_enqueue_batch(pg_catalog.uuid[], pg_catalog.timestamptz[], pg_catalog.uuid[], pg_catalog.uuid[], pg_catalog.uuid[], pg_catalog.text[], pg_catalog.text[], pg_catalog.text[], pg_catalog.int4[], pg_catalog.bool[], pg_catalog.inet[], pg_catalog.text[], pg_catalog.uuid[], pg_catalog.text[], pg_catalog.uuid[], pg_catalog.text[], pg_catalog.timestamptz[])')::pg_catalog.oid)
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
CREATE OR REPLACE FUNCTION connlog_table_query(func text,
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

REVOKE ALL ON FUNCTION connlog_convert("any", anyelement) FROM PUBLIC;

-- connlog_enqueue's extra: the application's columns (connlog--1.3.sql).
-- The function with the new argument replaces the one without it (both
-- at once would make every call without extra ambiguous); the last DO
-- block gives it the old one's grants, and so connlog_enqueue_batch too,
-- which enqueues the same events.
ALTER TABLE connection_logs ADD COLUMN extra pg_catalog.jsonb;
ALTER TYPE connlog_batch_row ADD ATTRIBUTE extra pg_catalog.jsonb;

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

REVOKE ALL ON FUNCTION connlog_enqueue(uuid, timestamptz, uuid, uuid, uuid,
	text, text, text, connection_status, uuid, inet, integer, text,
	uuid, text, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION connlog_enqueue_batch(uuid[], timestamptz[], uuid[],
	uuid[], uuid[], text[], text[], text[], integer[], boolean[], inet[],
	text[], uuid[], text[], uuid[], text[], timestamptz[]) FROM PUBLIC;

-- The roles' grants on what 1.3 adds: whoever may execute
-- connlog_table_query may execute connlog_convert, which it calls.  Each
-- grant (to a role or PUBLIC, with its grant option) is given again on
-- the new object by the role running the update, and the new object's
-- initial privileges (pg_init_privs, which pg_dump leaves out of a dump
-- as the extension's own) are set back to what the script's REVOKEs and
-- GRANTs made them, those of a fresh 1.3, since these grants are the
-- administrator's.  Like the query functions, this runs under a
-- search_path the script does not choose: every name is qualified.
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
			 '@extschema@.connlog_table_query(pg_catalog.text, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.text[], pg_catalog.uuid, pg_catalog.uuid, @extschema@.connection_log_state, pg_catalog.timestamptz, pg_catalog.timestamptz, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool)'::pg_catalog.regprocedure::pg_catalog.oid,
			 '@extschema@.connlog_convert("any", anyelement)'::pg_catalog.regprocedure::pg_catalog.oid),
			('pg_catalog.pg_proc'::pg_catalog.regclass,
			 '@extschema@.connlog_enqueue(pg_catalog.uuid, pg_catalog.timestamptz, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.text, pg_catalog.text, pg_catalog.text, @extschema@.connection_status, pg_catalog.uuid, pg_catalog.inet, pg_catalog.int4, pg_catalog.text, pg_catalog.uuid, pg_catalog.text, pg_catalog.text)'::pg_catalog.regprocedure::pg_catalog.oid,
			 '@extschema@.connlog_enqueue(pg_catalog.uuid, pg_catalog.timestamptz, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.text, pg_catalog.text, pg_catalog.text, @extschema@.connection_status, pg_catalog.uuid, pg_catalog.inet, pg_catalog.int4, pg_catalog.text, pg_catalog.uuid, pg_catalog.text, pg_catalog.text, pg_catalog.jsonb)'::pg_catalog.regprocedure::pg_catalog.oid),
			('pg_catalog.pg_proc'::pg_catalog.regclass,
			 '@extschema@.connlog_enqueue(pg_catalog.uuid, pg_catalog.timestamptz, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.uuid, pg_catalog.text, pg_catalog.text, pg_catalog.text, @extschema@.connection_status, pg_catalog.uuid, pg_catalog.inet, pg_catalog.int4, pg_catalog.text, pg_catalog.uuid, pg_catalog.text, pg_catalog.text)'::pg_catalog.regprocedure::pg_catalog.oid,
			 '@extschema@.connlog_enqueue_batch(pg_catalog.uuid[], pg_catalog.timestamptz[], pg_catalog.uuid[], pg_catalog.uuid[], pg_catalog.uuid[], pg_catalog.text[], pg_catalog.text[], pg_catalog.text[], pg_catalog.int4[], pg_catalog.bool[], pg_catalog.inet[], pg_catalog.text[], pg_catalog.uuid[], pg_catalog.text[], pg_catalog.uuid[], pg_catalog.text[], pg_catalog.timestamptz[])'::pg_catalog.regprocedure::pg_catalog.oid)
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

-- the connlog_enqueue without extra, whose grants its successor has now
DROP FUNCTION connlog_enqueue(uuid, timestamptz, uuid, uuid, uuid,
	text, text, text, connection_status, uuid, inet, integer, text,
	uuid, text, text);
