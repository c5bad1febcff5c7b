# Shared by the TAP tests: the SQL helpers that enqueue events whose
# expected row follows from their number alone, so a test can check every
# row's times without remembering what it sent.
package ConnlogTest;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;

our @EXPORT = qw($connlog_helpers $writer_grants connlog_node
  connlog_role_node reload_conf app_table_sql app_table_node
  $evil_objects nothing_ran restart_and_write update_past_squatters
  $boundary_helper wait_for_worker crash_restart connlog_counts legacy_record
  coder_schema_sql coder_node coder_batch_upsert_sql extension_members);

# Install after CREATE EXTENSION connlog.
#  uid(k, n)         a uuid that spells kind k and number n
#  t0(n)             connection n connects at t0(n), disconnects 1 h later
#  ev(n, st, ws)     connection n's connect or disconnect event
#  pair(n, ws)       both of them
#  good_pairs(lo, hi)  connections lo..hi whose row spans exactly their pair
#  rows_between(lo, hi) rows of connections lo..hi
our $connlog_helpers = q{
CREATE FUNCTION uid(k int, n bigint) RETURNS uuid IMMUTABLE LANGUAGE sql AS
$$ SELECT (lpad(k::text, 8, '0') || '-0000-0000-0000-' || lpad(n::text, 12, '0'))::uuid $$;
CREATE FUNCTION t0(n bigint) RETURNS timestamptz IMMUTABLE LANGUAGE sql AS
$$ SELECT timestamptz '2024-01-01 00:00:00+00' + n * interval '1 s' $$;
CREATE FUNCTION ev(n bigint, st connection_status DEFAULT 'connected',
                   ws text DEFAULT 'dev')
RETURNS void LANGUAGE sql AS $$
  SELECT connlog_enqueue(
    id => uid(CASE st WHEN 'connected' THEN 3 ELSE 4 END, n),
    event_time => t0(n) + CASE st WHEN 'connected' THEN interval '0'
                                  ELSE interval '1 h' END,
    organization_id => uid(10, 0), workspace_owner_id => uid(11, 0),
    workspace_id => uid(12, 0), workspace_name => ws,
    agent_name => 'main', type => 'ssh', status => st,
    connection_id => uid(2, n), ip => '10.1.2.3',
    disconnect_reason => CASE st WHEN 'disconnected' THEN 'bye' END)
$$;
CREATE FUNCTION pair(n bigint, ws text DEFAULT 'dev') RETURNS void
LANGUAGE sql AS
$$ SELECT ev(n, 'connected', ws); SELECT ev(n, 'disconnected', ws) $$;
CREATE FUNCTION good_pairs(lo bigint, hi bigint) RETURNS bigint
LANGUAGE sql AS $$
  SELECT count(*) FROM generate_series(lo, hi) n
  JOIN connection_logs l ON l.connection_id = uid(2, n)
  WHERE l.connect_time = t0(n) AND l.disconnect_time = t0(n) + interval '1 h'
    AND l.disconnect_reason = 'bye'
$$;
CREATE FUNCTION rows_between(lo bigint, hi bigint) RETURNS bigint
LANGUAGE sql AS $$
  SELECT count(*) FROM connection_logs
  WHERE connection_id BETWEEN uid(2, lo) AND uid(2, hi)
$$;
};

# A started node with connlog preloaded, writing to database postgres;
# $conf is appended to postgresql.conf, %init goes to init().
sub connlog_node
{
	my ($name, $conf, %init) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%init);
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'connlog'\n"
		  . "connlog.database = 'postgres'\n"
		  . $conf);
	$node->start;
	return $node;
}

# What connlog.role = 'connlog_writer' needs, as README's "Setting it up"
# lists it (without DELETE, which only connlog.retention needs).
our $writer_grants = q{
GRANT SELECT, INSERT, UPDATE ON connection_logs TO connlog_writer;
GRANT INSERT ON connection_logs_rejected TO connlog_writer;
GRANT SELECT, UPDATE ON connlog_wal_progress TO connlog_writer;
};

# A started node whose connlog.role is connlog_writer, a role that exists
# (created with $role_options, e.g. 'LOGIN') before connlog first starts;
# $conf is appended to postgresql.conf.  The extension is not created.
sub connlog_role_node
{
	my ($name, $role_options, $conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->start;
	$node->safe_psql('postgres', "CREATE ROLE connlog_writer $role_options");
	$node->stop;
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'connlog'\n"
		  . "connlog.database = 'postgres'\n"
		  . "connlog.role = 'connlog_writer'\n"
		  . $conf);
	$node->start;
	return $node;
}

# ALTER SYSTEM SET each name => value, reload, and wait until a new session
# sees the values: by then the postmaster has signalled the worker too.
sub reload_conf
{
	my ($node, %set) = @_;
	my $sql = '';
	my $check = 'SELECT true';
	for my $name (sort keys %set)
	{
		$sql .= "ALTER SYSTEM SET $name = '$set{$name}';\n";
		$check .= " AND current_setting('$name') = '$set{$name}'";
	}
	$node->safe_psql('postgres', $sql . 'SELECT pg_reload_conf();');
	$node->poll_query_until('postgres', $check)
	  or die "settings not reloaded: $sql";
	return;
}

# ---- connlog.target_table: an application's table ----

# The application's table, the way its migration would create it; %opt
# leaves a part out or changes it, to make each misconfiguration.
sub app_table_sql
{
	my (%opt) = @_;
	my $ip = $opt{no_ip} ? '' : "\tip inet,\n";
	my $code = $opt{code_type} // 'integer';
	my $sql = qq{
CREATE TABLE public.connection_logs (
	id uuid NOT NULL PRIMARY KEY,
	connect_time timestamptz NOT NULL,
	organization_id uuid NOT NULL,
	workspace_owner_id uuid NOT NULL,
	workspace_id uuid NOT NULL,
	workspace_name text NOT NULL,
	agent_name text NOT NULL,
	type text NOT NULL,
$ip	code $code,
	user_agent text,
	user_id uuid,
	slug_or_port text,
	connection_id uuid,
	disconnect_time timestamptz,
	disconnect_reason text,
	source text NOT NULL DEFAULT 'connlog'
);
CREATE INDEX idx_connection_logs_connect_time_desc
	ON public.connection_logs (connect_time DESC);
CREATE INDEX idx_connection_logs_workspace_id
	ON public.connection_logs (workspace_id);
};
	$sql .= q{
CREATE UNIQUE INDEX idx_connection_logs_connection_id_workspace_id_agent_name
	ON public.connection_logs (connection_id, workspace_id, agent_name);
} unless $opt{no_unique};
	return $sql;
}

# A started node whose connlog.target_table is the application's
# public.connection_logs (app_table_sql(), owned by role app), with the
# extension in schema connlog, sessions finding both through search_path,
# and $connlog_helpers installed; $conf is appended to postgresql.conf,
# %init goes to init().
sub app_table_node
{
	my ($name, $conf, %init) = @_;
	my $node = connlog_node($name,
		"connlog.target_table = 'public.connection_logs'\n" . $conf, %init);
	$node->safe_psql(
		'postgres', q{
CREATE ROLE app LOGIN;
GRANT CREATE ON SCHEMA public TO app;
CREATE SCHEMA connlog;
CREATE EXTENSION connlog SCHEMA connlog;
ALTER DATABASE postgres SET search_path = public, connlog;
});
	$node->safe_psql('postgres',
		"SET ROLE app;\n" . app_table_sql() . "RESET ROLE;\n" . $connlog_helpers);
	return $node;
}

# ---- attacks on the worker's session (t/023, t/024) ----
# The attacks of doc/connlog.md's "Security" on the worker's session are
# mounted as the role that could mount them; a function of theirs that
# runs at all says so in the server log ("evil ran as ...") and tries to
# make its owner a superuser.
use PostgreSQL::Test::Utils;
use Test::More;

# Look-alikes of every operator and function the worker's statements use,
# and of the oid = the old catalog lookup used, in schema evil (which the
# attacker owns); each logs that it ran and tries ALTER ROLE ... SUPERUSER
# as whoever ran it.
our $evil_objects = q{
GRANT USAGE ON SCHEMA evil TO PUBLIC;
CREATE FUNCTION evil.escalate() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  RAISE WARNING 'evil ran as %', current_user;
  BEGIN
    EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', 'ATTACKER');
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
END $$;
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['oid', 'uuid', 'tid', 'timestamptz', 'text']
  LOOP
    EXECUTE pg_catalog.format($f$
      CREATE FUNCTION evil.cmp(a %1$s, b %1$s) RETURNS bool LANGUAGE plpgsql AS
      $b$ BEGIN PERFORM evil.escalate(); RETURN a OPERATOR(pg_catalog.=) b; END $b$;
      CREATE OPERATOR evil.= (LEFTARG = %1$s, RIGHTARG = %1$s, FUNCTION = evil.cmp);
      CREATE OPERATOR evil.< (LEFTARG = %1$s, RIGHTARG = %1$s, FUNCTION = evil.cmp);
    $f$, t);
  END LOOP;
END $$;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.escalate(); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION evil.unnest(a anyarray) RETURNS SETOF anyelement
LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.escalate(); RETURN QUERY SELECT pg_catalog.unnest(a); END $$;
};

# Since log offset $offset, no look-alike ran, and $role is no superuser.
sub nothing_ran
{
	my ($node, $db, $role, $offset, $what) = @_;
	my $log = slurp_file($node->logfile, $offset);
	is($log =~ /evil ran as \w+/ ? $& : 'no',
		'no', "$what: no look-alike of ${role}'s ran");
	is( $node->safe_psql(
			$db, "SELECT rolsuper FROM pg_roles WHERE rolname = '$role'"),
		'f',
		"$what: $role is not a superuser");
	return;
}

# Restart $node, enqueue 20 connections to database $db once its worker
# is up, and check that the worker wrote them and nothing else happened;
# returns the log offset from before the restart.
sub restart_and_write
{
	my ($node, $db, $what) = @_;
	my $offset = -s $node->logfile;
	$node->restart;
	$node->wait_for_log(qr/connlog worker started for database "$db"/,
		$offset);
	$node->safe_psql($db,
		'SELECT pair(n) FROM generate_series(1, 20) n; SELECT connlog_flush()');
	is($node->safe_psql($db, 'SELECT good_pairs(1, 20)'),
		'20', "$what: the events are written");
	is( $node->safe_psql(
			$db,
			'SELECT written, merged, rejected, dropped, pending, write_errors, '
			  . "coalesce(last_error, '') FROM connlog_stats"),
		'20|20|0|0|0|0|',
		"$what: nothing rejected, dropped or failed");
	return $offset;
}

# The extension's member objects in database $db, described.
my $members_sql = q{
SELECT string_agg(pg_describe_object(classid, objid, 0), E'\n'
                  ORDER BY pg_describe_object(classid, objid, 0))
FROM pg_depend
WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'connlog')};

# In database $db, whose extension (in $schema, at some version) has
# objects $role created under names its updates create (@names, made by
# $squat, run as $role), the superuser's ALTER EXTENSION connlog UPDATE
# reaches the default version and has the members of the extension in
# database $fresh, created there at that version in $schema.  It warns
# of each of @names renamed to NAME_moved_1, which is still $role's and
# no member.  Returns the update's messages.
sub update_past_squatters
{
	my ($node, $db, $fresh, $schema, $role, $squat, @names) = @_;
	my $what = "$db: squatters";
	$node->safe_psql($db, "SET ROLE $role;\n$squat");
	my ($ret, $stdout, $stderr) =
	  $node->psql($db, 'ALTER EXTENSION connlog UPDATE');
	$stderr =~ s/^psql:<stdin>:\d+: //mg;
	is($ret, 0, "$what: ALTER EXTENSION connlog UPDATE succeeds")
	  or diag $stderr;
	is( $node->safe_psql(
			$db, "SELECT extversion FROM pg_extension WHERE extname = 'connlog'"),
		$node->safe_psql(
			$fresh, "SELECT extversion FROM pg_extension WHERE extname = 'connlog'"),
		"$what: the update reaches the default version");
	is($node->safe_psql($db, $members_sql),
		$node->safe_psql($fresh, $members_sql),
		"$what: the members are those of a fresh installation");
	for my $name (@names)
	{
		like($stderr,
			qr/^WARNING:  renamed \S+ (?:\Q$schema\E\.)?\Q$name\E\b.* to "\Q${name}_moved_1\E"$/m,
			"$what: the update warns that it renamed $name");
		is( $node->safe_psql(
				$db, qq{
SELECT string_agg(DISTINCT o.owner::regrole::text, ','),
       bool_or(EXISTS (SELECT FROM pg_depend d
                       WHERE d.classid = o.catalog AND d.objid = o.oid
                         AND d.deptype = 'e'))
FROM (SELECT 'pg_class'::regclass catalog, oid, relowner owner FROM pg_class
      WHERE relname = '${name}_moved_1' AND relnamespace = '$schema'::regnamespace
      UNION ALL
      SELECT 'pg_proc'::regclass, oid, proowner FROM pg_proc
      WHERE proname = '${name}_moved_1' AND pronamespace = '$schema'::regnamespace
      UNION ALL
      SELECT 'pg_type'::regclass, oid, typowner FROM pg_type
      WHERE typname = '${name}_moved_1' AND typnamespace = '$schema'::regnamespace
        AND typrelid = 0) o}),
			"$role|f",
			"$what: $name, renamed, is still ${role}'s and no member");
	}
	return $stderr;
}

# ---- WAL durability: page boundaries, forged records, the slot ----

# Install after $connlog_helpers.  enqueue_at_boundary(n) enqueues ev(n),
# ev(n + 1), ... as whoever calls it (SECURITY INVOKER: it runs with the
# caller's privileges, as the same statements in a DO block would), and
# pads WAL with pg_logical_emit_message() so that the WAL record of its
# last event ends exactly on a WAL page boundary: the insert position is
# then the next page's header, which is past the end of generated WAL.
# Returns "k lsn": how many events it enqueued, and that boundary; NULL if
# other WAL writes kept it from hitting the boundary 200 times.
our $boundary_helper = q{
CREATE FUNCTION enqueue_at_boundary(n bigint) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  first bigint := n;
  b numeric; a numeric; r numeric; d numeric; p numeric; pos numeric;
BEGIN
  -- the size of an event's record, measured where it crosses no page
  LOOP
    b := pg_current_wal_insert_lsn() - '0/0';
    PERFORM ev(n);
    n := n + 1;
    a := pg_current_wal_insert_lsn() - '0/0';
    EXIT WHEN div(a, 8192) = div(b, 8192);
  END LOOP;
  r := a - b;
  FOR i IN 1..200 LOOP
    d := 8192 - mod(pg_current_wal_insert_lsn() - '0/0', 8192);
    p := d - r;
    IF p = 0 THEN
      PERFORM ev(n);
      n := n + 1;
      pos := pg_current_wal_insert_lsn() - '0/0';
      IF mod(pos, 8192) IN (24, 40) THEN
        RETURN (n - first) || ' ' || (pg_lsn '0/0' + (pos - mod(pos, 8192)));
      END IF;
    ELSIF p >= 56 THEN
      -- a message record of exactly p bytes: 24 (header) + 2 or 5 (data
      -- header) + 24 (xl_logical_message) + 4 ('pad' and its NUL) + l
      PERFORM pg_logical_emit_message(false, 'pad',
        repeat('x', (CASE WHEN p - 54 < 228 THEN p - 54 ELSE p - 57 END)::int));
    ELSE
      PERFORM pg_logical_emit_message(false, 'pad', repeat('x', 200));
    END IF;
  END LOOP;
  RETURN NULL;
END $$;
};

# Wait until a connlog worker runs (other than the one whose pid is $not).
sub wait_for_worker
{
	my ($node, $not) = @_;
	worker_started($node, $not) or die 'no connlog worker';
	return;
}

# Crash (kill -9 of the postmaster and all) and start again; returns the
# log offset before the start.
sub crash_restart
{
	my ($node) = @_;
	$node->stop('immediate');
	my $offset = -s $node->logfile;
	$node->start;
	wait_for_worker($node);
	return $offset;
}

# connlog_stats' counters, and whether the accounting identity holds.
sub connlog_counts
{
	my ($node) = @_;
	return counters_identity($node, 'postgres',
		qw(enqueued written merged rejected dropped pending));
}

# A payload in the layout of the logical messages a MAC-keyed connlog
# wrote with prefix "connlog": epoch, seq, a 16-byte MAC, then the ring
# record (batch.h) of ev(n)'s connect event, in host byte order.  $mac
# defaults to zeros; $time is microseconds since 2000-01-01.
sub legacy_record
{
	my (%e) = @_;
	my $uuid = sub { pack('H32', sprintf('%08d000000000000%012d', @_)) };
	my $rec = pack('q', $e{time})
	  . $uuid->(3, $e{n}) . $uuid->(10, 0) . $uuid->(11, 0) . $uuid->(12, 0)
	  . pack('CCCCCSS', 1, 0, 0, 0, 0, length($e{ws}), 4)
	  . $uuid->(2, $e{n})
	  . $e{ws} . 'main';
	$rec = pack('L', 4 + length($rec)) . $rec;
	return pack('QQ', $e{epoch} // 7, $e{n}) . ($e{mac} // "\0" x 16) . $rec;
}

# ---- coder's own database (t/030) ----

# coder's schema as its migrations leave it (coderd/database/dump.sql and
# migration 000557, which added 'tunnel'), run as role coder:
# connection_logs with its enum type, its indexes and its foreign keys
# (ON DELETE CASCADE) to the parent tables, which keep only their keys and
# NOT NULL columns (workspaces' template_id without its table).  coder's
# enum connection_status is left out: the extension's, on the same
# search_path, is the one the helpers use.
sub coder_schema_sql
{
	return q{
CREATE TYPE connection_type AS ENUM (
    'ssh',
    'vscode',
    'jetbrains',
    'reconnecting_pty',
    'workspace_app',
    'port_forwarding'
);
ALTER TYPE connection_type ADD VALUE 'tunnel';
CREATE TABLE organizations (
    id uuid NOT NULL PRIMARY KEY,
    name text NOT NULL,
    description text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    is_default boolean DEFAULT false NOT NULL,
    display_name text NOT NULL,
    icon text DEFAULT ''::text NOT NULL,
    deleted boolean DEFAULT false NOT NULL
);
CREATE TABLE users (
    id uuid NOT NULL PRIMARY KEY,
    email text NOT NULL,
    username text DEFAULT ''::text NOT NULL,
    hashed_password bytea NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    deleted boolean DEFAULT false NOT NULL
);
CREATE TABLE workspaces (
    id uuid NOT NULL PRIMARY KEY,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    owner_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE RESTRICT,
    template_id uuid NOT NULL,
    deleted boolean DEFAULT false NOT NULL,
    name character varying(64) NOT NULL
);
CREATE TABLE connection_logs (
    id uuid NOT NULL,
    connect_time timestamp with time zone NOT NULL,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    workspace_owner_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    workspace_name text NOT NULL,
    agent_name text NOT NULL,
    type connection_type NOT NULL,
    ip inet,
    code integer,
    user_agent text,
    user_id uuid,
    slug_or_port text,
    connection_id uuid,
    disconnect_time timestamp with time zone,
    disconnect_reason text,
    PRIMARY KEY (id)
);
CREATE UNIQUE INDEX idx_connection_logs_connection_id_workspace_id_agent_name
ON connection_logs (connection_id, workspace_id, agent_name);
CREATE INDEX idx_connection_logs_connect_time_desc ON connection_logs USING btree (connect_time DESC);
CREATE INDEX idx_connection_logs_organization_id ON connection_logs USING btree (organization_id);
CREATE INDEX idx_connection_logs_workspace_owner_id ON connection_logs USING btree (workspace_owner_id);
CREATE INDEX idx_connection_logs_workspace_id ON connection_logs USING btree (workspace_id);
};
}

# coder's BatchUpsertConnectionLogs (coderd/database/queries/
# connectionlogs.sql), its seventeen arrays given by $arrays: the text of
# a FROM item with their columns, named as in coder's query.
sub coder_batch_upsert_sql
{
	my ($arrays) = @_;
	return qq{
INSERT INTO connection_logs (
    id, connect_time, organization_id, workspace_owner_id, workspace_id,
    workspace_name, agent_name, type, code, ip, user_agent, user_id,
    slug_or_port, connection_id, disconnect_reason, disconnect_time
)
SELECT
    u.id, u.connect_time, u.organization_id, u.workspace_owner_id,
    u.workspace_id, u.workspace_name, u.agent_name, u.type,
    CASE WHEN u.code_valid THEN u.code ELSE NULL END,
    u.ip,
    NULLIF(u.user_agent, ''),
    NULLIF(u.user_id, '00000000-0000-0000-0000-000000000000'::uuid),
    NULLIF(u.slug_or_port, ''),
    NULLIF(u.connection_id, '00000000-0000-0000-0000-000000000000'::uuid),
    NULLIF(u.disconnect_reason, ''),
    NULLIF(u.disconnect_time, '0001-01-01 00:00:00Z'::timestamptz)
FROM ($arrays) AS u
ON CONFLICT (connection_id, workspace_id, agent_name)
DO UPDATE SET
    connect_time = CASE
        WHEN EXCLUDED.connect_time = '0001-01-01 00:00:00Z'::timestamptz
        THEN connection_logs.connect_time
        WHEN connection_logs.connect_time = '0001-01-01 00:00:00Z'::timestamptz
        THEN EXCLUDED.connect_time
        ELSE LEAST(connection_logs.connect_time, EXCLUDED.connect_time)
    END,
    disconnect_time = CASE
        WHEN connection_logs.disconnect_time IS NULL
        THEN EXCLUDED.disconnect_time
        ELSE connection_logs.disconnect_time
    END,
    disconnect_reason = CASE
        WHEN connection_logs.disconnect_reason IS NULL
        THEN EXCLUDED.disconnect_reason
        ELSE connection_logs.disconnect_reason
    END,
    code = CASE
        WHEN connection_logs.code IS NULL
        THEN EXCLUDED.code
        ELSE connection_logs.code
    END};
}

# A started node shaped like a coder deployment: coder_schema_sql() in
# public, owned by role coder (LOGIN, no superuser); the extension in
# schema connlog; connlog.role connlog_writer with the grants
# doc/connlog.md's "Writing into coder's table" gives; connlog.target_table
# = 'public.connection_logs'; both schemas on the database's search_path;
# $connlog_helpers installed, with the organization, user and workspace
# the helpers' events name (uid(10, 0), uid(11, 0), uid(12, 0)).  $conf is
# appended to postgresql.conf; version => '1.2' creates the extension at
# that version.
sub coder_node
{
	my ($name, $conf, %opt) = @_;
	my $version = $opt{version} ? " VERSION '$opt{version}'" : '';
	# what coder's role calls: from 1.3, connlog_enqueue takes extra, and
	# connlog_enqueue_batch takes the arrays of coder's batch statement
	my $execute =
	  ($opt{version} // '') eq '1.2'
	  ? q{connlog.connlog_enqueue(uuid, timestamptz, uuid,
	uuid, uuid, text, text, text, connlog.connection_status, uuid, inet,
	integer, text, uuid, text, text), connlog.connlog_flush}
	  : q{connlog.connlog_enqueue(uuid, timestamptz, uuid,
	uuid, uuid, text, text, text, connlog.connection_status, uuid, inet,
	integer, text, uuid, text, text, jsonb), connlog.connlog_enqueue_batch,
	connlog.connlog_flush};
	my $node = connlog_role_node($name, 'LOGIN',
		"connlog.target_table = 'public.connection_logs'\n" . $conf);
	$node->safe_psql(
		'postgres', qq{
CREATE ROLE coder LOGIN;
GRANT CREATE ON SCHEMA public TO coder;
CREATE SCHEMA connlog;
CREATE EXTENSION connlog SCHEMA connlog$version;
ALTER DATABASE postgres SET search_path = public, connlog;
GRANT USAGE ON SCHEMA connlog TO connlog_writer;
GRANT INSERT ON connlog.connection_logs_rejected TO connlog_writer;
GRANT SELECT, UPDATE ON connlog.connlog_wal_progress TO connlog_writer;
GRANT USAGE ON SCHEMA connlog TO coder;
GRANT EXECUTE ON FUNCTION $execute TO coder;
});
	$node->safe_psql('postgres',
		"SET ROLE coder;\n"
		  . coder_schema_sql()
		  . "GRANT SELECT, INSERT, UPDATE, DELETE ON public.connection_logs TO connlog_writer;\n"
		  . "RESET ROLE;\n"
		  . $connlog_helpers);
	$node->safe_psql(
		'postgres', q{
SET ROLE coder;
INSERT INTO organizations (id, name, description, created_at, updated_at,
	display_name)
VALUES (uid(10, 0), 'coder', '', now(), now(), 'coder');
INSERT INTO users (id, email, username, hashed_password, created_at,
	updated_at)
VALUES (uid(11, 0), 'admin@example.com', 'admin', '', now(), now());
INSERT INTO workspaces (id, created_at, updated_at, owner_id,
	organization_id, template_id, name)
VALUES (uid(12, 0), now(), now(), uid(11, 0), uid(10, 0), uid(13, 0), 'dev');
});
	return $node;
}

# The members of the extension in database $db, described, one a line.
sub extension_members
{
	my ($node, $db) = @_;
	return $node->safe_psql($db, "SET search_path = pg_catalog;\n$members_sql");
}

# ---- counters, the worker, held and failing writes (every TAP file) ----

push @EXPORT, qw($identity_sql stats identity_holds moved counters_identity
  worker_pid worker_started terminate_worker lock_table worker_waits_for_lock
  failing_trigger count_lines state_error kill_backend);

# The accounting identity as an SQL expression over connlog_stats: every
# event enqueued is merged, written, rejected, dropped or still pending.
our $identity_sql = 'enqueued = merged + written + rejected + dropped + pending';

my @stats_columns = qw(enqueued merged written rejected dropped pending
  batches write_errors retries ring_used_bytes ring_size_bytes);

# connlog_stats' counters in database $db (postgres unless given), read in
# one statement, as a hash reference.
sub stats
{
	my ($node, $db) = @_;
	# query_hash refuses list context, which an argument list would give
	my $s = $node->query_hash($db // 'postgres',
		'SELECT __COLUMNS__ FROM connlog_stats', @stats_columns);
	return $s;
}

# Whether the accounting identity holds in $s, a stats() hash.
sub identity_holds
{
	my ($s) = @_;
	return $s->{enqueued} ==
	  $s->{merged} + $s->{written} + $s->{rejected} + $s->{dropped} +
	  $s->{pending};
}

# How the counters @names moved since $s0 (a stats() hash), as
# "name=delta name=delta ...".
sub moved
{
	my ($node, $s0, @names) = @_;
	my $s = stats($node);
	return join(' ', map { "$_=" . ($s->{$_} - $s0->{$_}) } @names);
}

# connlog_stats' columns @names in database $db, then whether the
# accounting identity holds, read in one statement: "v1|v2|...|t".
sub counters_identity
{
	my ($node, $db, @names) = @_;
	return $node->safe_psql($db,
		'SELECT ' . join('', map { "$_, " } @names)
		  . "$identity_sql FROM connlog_stats");
}

# The pid of the running connlog worker ('' when none runs).
sub worker_pid
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'connlog worker'"
	);
}

# Whether a connlog worker (other than the one whose pid is $not) runs
# before poll_query_until gives up.
sub worker_started
{
	my ($node, $not) = @_;
	return $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'connlog worker'"
		  . (defined $not ? " AND pid <> $not" : ''));
}

# pg_terminate_backend() of the running worker, then wait for its
# successor: whether one started.
sub terminate_worker
{
	my ($node) = @_;
	my $old = worker_pid($node);
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($old)");
	return worker_started($node, $old);
}

# kill -9 of a regular backend: the postmaster resets shared memory,
# restarts, and starts a worker, which this waits for.  Returns the log
# offset from before the kill.
sub kill_backend
{
	my ($node) = @_;
	my $victim = $node->background_psql('postgres');
	my $pid = $victim->query_safe('SELECT pg_backend_pid()');
	my $offset = -s $node->logfile;
	kill 'KILL', $pid;
	$node->wait_for_log(qr/all server processes terminated; reinitializing/,
		$offset);
	$victim->quit;
	wait_for_worker($node);
	return $offset;
}

# A background session holding an ACCESS EXCLUSIVE lock on $table
# (connection_logs unless given) in an open transaction; the caller ends
# it ($session->query_safe('COMMIT'), $session->quit).
sub lock_table
{
	my ($node, $table) = @_;
	my $session = $node->background_psql('postgres');
	$session->query_safe('BEGIN; LOCK TABLE '
		  . ($table // 'connection_logs')
		  . ' IN ACCESS EXCLUSIVE MODE');
	return $session;
}

# Whether the worker comes to wait for a lock before poll_query_until
# gives up.
sub worker_waits_for_lock
{
	my ($node) = @_;
	return $node->poll_query_until(
		'postgres', q{
SELECT wait_event_type = 'Lock' FROM pg_stat_activity
WHERE backend_type = 'connlog worker'});
}

# SQL that creates function $name (schema-qualified if it should be) and
# a BEFORE INSERT trigger of the same name on $t{on} (connection_logs
# unless given), FOR EACH $t{each} (ROW unless given), that raises
# $t{raise} (RAISE EXCEPTION's format and arguments, as SQL) with SQLSTATE
# $t{errcode} (P0001 unless given) whenever $t{when} (an SQL condition,
# true unless given; NEW is the row) holds.  Names in $t{when} are
# qualified: the worker's search_path is pg_catalog, pg_temp.
sub failing_trigger
{
	my ($name, %t) = @_;
	(my $trigger = $name) =~ s/.*\.//;
	my $errcode = defined $t{errcode} ? " USING ERRCODE = '$t{errcode}'" : '';
	return qq{
CREATE FUNCTION $name() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
  IF @{[ $t{when} // 'true' ]} THEN
    RAISE EXCEPTION $t{raise}$errcode;
  END IF;
  RETURN NEW;
END \$\$;
CREATE TRIGGER $trigger BEFORE INSERT ON @{[ $t{on} // 'connection_logs' ]}
  FOR EACH @{[ $t{each} // 'ROW' ]} EXECUTE FUNCTION $name();
};
}

# How many times $node's server log matches $re.
sub count_lines
{
	my ($node, $re) = @_;
	my @m = (slurp_file($node->logfile) =~ /$re/g);
	return scalar @m;
}

# connlog_stats' worker_state and last_error, as "state|error".
sub state_error
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		'SELECT worker_state, last_error FROM connlog_stats');
}

1;
