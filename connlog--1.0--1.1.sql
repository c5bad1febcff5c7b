/* connlog--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION connlog UPDATE TO '1.1'" to load this file. \quit

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
CREATE TABLE connlog_wal_progress (
	done_lsn pg_lsn NOT NULL
);
INSERT INTO connlog_wal_progress VALUES ('0/0');
REVOKE ALL ON connlog_wal_progress FROM PUBLIC;

-- Query paths: see README.md, "Querying the log".
