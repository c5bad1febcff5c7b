/* connlog--1.1.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION connlog" to load this file. \quit

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
	type connection_type NOT NULL,
	ip inet,
	code integer,
	user_agent text,
	user_id uuid,
	slug_or_port text,
	connection_id uuid,
	disconnect_time timestamptz,
	disconnect_reason text,
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
	type connection_type,
	ip inet,
	code integer,
	user_agent text,
	user_id uuid,
	slug_or_port text,
	connection_id uuid,
	disconnect_time timestamptz,
	disconnect_reason text
);

CREATE TABLE connection_logs_rejected (
	rejected_at timestamptz NOT NULL DEFAULT now(),
	error text NOT NULL,
	event jsonb NOT NULL
);

-- the tables hold user data: pg_dump must dump their contents
SELECT pg_catalog.pg_extension_config_dump('connection_logs', '');
SELECT pg_catalog.pg_extension_config_dump('connection_logs_rejected', '');

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
	OUT worker_state text)
RETURNS record
AS 'MODULE_PATHNAME', 'connlog_stats_1_1'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW connlog_stats AS SELECT * FROM connlog_stats();

-- Only roles granted these may enqueue, flush or read the counters.
REVOKE ALL ON FUNCTION connlog_enqueue(uuid, timestamptz, uuid, uuid, uuid,
	text, text, connection_type, connection_status, uuid, inet, integer, text,
	uuid, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION connlog_flush(interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION connlog_stats() FROM PUBLIC;
REVOKE ALL ON connlog_stats FROM PUBLIC;
GRANT EXECUTE ON FUNCTION connlog_stats() TO pg_monitor;
GRANT SELECT ON connlog_stats TO pg_monitor;

-- connlog.durability: how far the WAL-backed events are written.  The
-- worker updates the one row in the same transaction as each write, and
-- reads WAL back from here after a crash (see README.md, "Durability").
-- Internal; not dumped: an LSN means nothing in another cluster.
CREATE TABLE connlog_wal_progress (
	done_lsn pg_lsn NOT NULL
);
INSERT INTO connlog_wal_progress VALUES ('0/0');
REVOKE ALL ON connlog_wal_progress FROM PUBLIC;

-- Query paths: see README.md, "Querying the log".
