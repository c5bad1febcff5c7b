# Security and integrity (issue 14): each attack is mounted as the role
# that could mount it, and each block asserts that the attack fails, that
# no role gained a privilege, and that no forged row exists.  Each block
# starts its own node and stops it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

# ---- forged WAL records (pg_logical_emit_message) and replay checks ----
# (section: wal)



# ---- the worker's session settings, catalog lookups and look-alikes ----
# (section: worker-session)

# The attacks of issue 14's items 2 and 3.  Each is mounted as the role
# that could mount it; a function of theirs that runs at all says so in the
# server log ("evil ran as ...") and tries to make its owner a superuser.

# Look-alikes of every operator and function the worker's statements use,
# and of the oid = the old catalog lookup used, in schema evil (which the
# attacker owns); each logs that it ran and tries ALTER ROLE ... SUPERUSER
# as whoever ran it.
my $evil_objects = q{
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

{
	# app, owned by dbowner, who is no superuser, exists before connlog
	my $node = PostgreSQL::Test::Cluster->new('session');
	$node->init;
	$node->start;
	$node->safe_psql('postgres',
		'CREATE ROLE dbowner LOGIN; CREATE DATABASE app OWNER dbowner');
	$node->append_conf(
		'postgresql.conf', q{
shared_preload_libraries = 'connlog'
connlog.database = 'app'
connlog.flush_interval = '200ms'
connlog.max_retries = 0
connlog.purge_interval = '1s'
});
	$node->restart;
	# a column the operator added, whose default reads a sequence
	$node->safe_psql('app',
		"CREATE EXTENSION connlog; $connlog_helpers; "
		  . 'ALTER TABLE connection_logs ADD COLUMN seq bigserial');

	# The database owner sets up look-alikes, and every database and
	# per-database role setting that could steer or stop the worker.
	(my $objects = $evil_objects) =~ s/ATTACKER/dbowner/;
	$node->safe_psql('app', "SET ROLE dbowner; CREATE SCHEMA evil; $objects");
	$node->safe_psql(
		'app', q{
SET ROLE dbowner;
ALTER DATABASE app SET search_path = evil, pg_catalog, public;
ALTER ROLE ALL IN DATABASE app SET search_path = evil, pg_catalog, public;
ALTER DATABASE app SET default_transaction_read_only = on;
ALTER ROLE ALL IN DATABASE app SET default_transaction_read_only = on;
ALTER DATABASE app SET default_transaction_isolation = serializable;
ALTER DATABASE app SET default_transaction_deferrable = on;
ALTER DATABASE app SET statement_timeout = 1;
ALTER DATABASE app SET lock_timeout = 1;
ALTER DATABASE app SET idle_in_transaction_session_timeout = 1;
ALTER DATABASE app SET idle_session_timeout = 1;
ALTER DATABASE app SET role = dbowner;
ALTER DATABASE app SET session_authorization = dbowner;
ALTER DATABASE app SET exit_on_error = on;
ALTER DATABASE app SET row_security = off;
ALTER DATABASE app SET transform_null_equals = on;
ALTER DATABASE app SET standard_conforming_strings = off;
ALTER DATABASE app SET quote_all_identifiers = on;
ALTER DATABASE app SET jit_above_cost = 0;
});

	# the test's own sessions take the defaults back as a client may
	local $ENV{PGOPTIONS} = join ' ', map { "-c $_" } qw(search_path=public
	  role=none default_transaction_read_only=off statement_timeout=0
	  lock_timeout=0 idle_in_transaction_session_timeout=0
	  idle_session_timeout=0 exit_on_error=off row_security=on
	  transform_null_equals=off standard_conforming_strings=on
	  quote_all_identifiers=off jit_above_cost=100000);

	my $offset = restart_and_write($node, 'app', 'database settings');

	# the purge and the rejected table run their statements too
	$node->safe_psql(
		'app', q{
SELECT connlog_enqueue(id => uid(3, 100), event_time => '2024-01-01',
  organization_id => uid(10, 0), workspace_owner_id => uid(11, 0),
  workspace_id => uid(12, 0), workspace_name => 'dev', agent_name => 'main',
  type => 'ssh', status => 'connected', connection_id => uid(2, 100),
  ip => '10.1.2.3', code => 1);
ALTER TABLE connection_logs ADD CONSTRAINT no_code_1 CHECK (code IS DISTINCT FROM 1);
SELECT connlog_flush();
ALTER TABLE connection_logs DROP CONSTRAINT no_code_1;
ALTER SYSTEM SET connlog.retention = '1h';
SELECT pg_reload_conf();
});
	$node->poll_query_until('app',
		'SELECT count(*) = 0 FROM connection_logs')
	  or die 'the purge never ran';
	is( $node->safe_psql(
			'app',
			'SELECT (SELECT count(*) FROM connection_logs_rejected), rejected, '
			  . 'dropped FROM connlog_stats'),
		'1|1|0',
		'database settings: a failing row is rejected and the purge runs');

	nothing_ran($node, 'app', 'dbowner', $offset, 'database settings');

	# The owner renames the extension's schema (public, which
	# pg_database_owner owns) and puts a look-alike table under the old
	# name: the worker follows its own schema.
	$node->safe_psql(
		'app', q{
SET ROLE dbowner;
ALTER SCHEMA public RENAME TO moved;
CREATE SCHEMA public;
CREATE TABLE public.connection_logs (
  id uuid PRIMARY KEY, connect_time timestamptz, organization_id uuid,
  workspace_owner_id uuid, workspace_id uuid, workspace_name text,
  agent_name text, type moved.connection_type, ip inet, code integer,
  user_agent text, user_id uuid, slug_or_port text, connection_id uuid,
  disconnect_time timestamptz, disconnect_reason text,
  UNIQUE (connection_id, workspace_id, agent_name));
CREATE FUNCTION public.trap() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.escalate(); RETURN NEW; END $$;
CREATE TRIGGER trap BEFORE INSERT OR UPDATE ON public.connection_logs
  FOR EACH ROW EXECUTE FUNCTION public.trap();
GRANT ALL ON SCHEMA public TO PUBLIC;
GRANT ALL ON public.connection_logs TO PUBLIC;
});
	$node->safe_psql('app',
		'SET search_path = moved; SELECT pair(n) FROM generate_series(21, 30) n; SELECT connlog_flush()');
	is( $node->safe_psql(
			'app',
			'SET search_path = moved; SELECT good_pairs(21, 30), '
			  . '(SELECT count(*) FROM public.connection_logs)'),
		'10|0',
		'schema renamed: the rows land in the extension\'s table, none in the look-alike');
	nothing_ran($node, 'app', 'dbowner', $offset, 'schema renamed');
	$node->stop;
}

# Item 3: version 1.0 (no connlog_wal_progress) in a schema where mallory
# may CREATE; her view of that name calls her function.
{
	my $node = connlog_node('lookalike', q{
connlog.flush_interval = '200ms'
});
	local $ENV{PGOPTIONS} = '-c search_path=shared,public';
	$node->safe_psql(
		'postgres', qq{
CREATE ROLE mallory LOGIN;
CREATE SCHEMA shared;
GRANT USAGE, CREATE ON SCHEMA shared TO mallory;
CREATE EXTENSION connlog SCHEMA shared VERSION '1.0';
$connlog_helpers
});
	(my $objects = $evil_objects) =~ s/ATTACKER/mallory/;
	$node->safe_psql('postgres', 'CREATE SCHEMA evil AUTHORIZATION mallory');
	$node->safe_psql('postgres', "SET ROLE mallory; $objects");
	$node->safe_psql(
		'postgres', q{
SET ROLE mallory;
CREATE TABLE evil.progress (epoch bigint, done_seq bigint, done_lsn pg_lsn);
INSERT INTO evil.progress VALUES (0, 0, '0/0');
CREATE FUNCTION evil.pass() RETURNS bool LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.escalate(); RETURN true; END $$;
GRANT ALL ON evil.progress TO PUBLIC;
});
	# an updatable view, so the worker's UPDATE would run its WHERE
	my $view = q{
SET ROLE mallory;
CREATE VIEW shared.connlog_wal_progress AS
  SELECT * FROM evil.progress WHERE evil.pass();
GRANT ALL ON shared.connlog_wal_progress TO PUBLIC;
};
	$node->safe_psql('postgres', $view);

	my $offset = restart_and_write($node, 'postgres',
		'1.0 with a look-alike connlog_wal_progress');
	nothing_ran($node, 'postgres', 'mallory', $offset, '1.0');

	# At 1.1, a superuser takes connlog_wal_progress out of the extension
	# and drops it; mallory's view takes its name.  Then the operator puts
	# the member back.
	my $drop = q{
ALTER EXTENSION connlog DROP TABLE shared.connlog_wal_progress;
DROP TABLE shared.connlog_wal_progress;
};
	my $restore = q{
DROP VIEW shared.connlog_wal_progress;
CREATE TABLE shared.connlog_wal_progress (
	epoch bigint NOT NULL, done_seq bigint NOT NULL, done_lsn pg_lsn NOT NULL);
INSERT INTO shared.connlog_wal_progress VALUES (0, 0, '0/0');
REVOKE ALL ON shared.connlog_wal_progress FROM PUBLIC;
ALTER EXTENSION connlog ADD TABLE shared.connlog_wal_progress;
SELECT connlog_flush();
};
	my $error =
	  'relation "shared.connlog_wal_progress" is not a member of extension connlog (SQLSTATE 55000)';
	$node->safe_psql('postgres',
		"DROP VIEW shared.connlog_wal_progress;\n"
		  . "ALTER EXTENSION connlog UPDATE TO '1.1';\n$drop");
	$node->safe_psql('postgres', $view);

	# found by a worker that starts, or one that runs: either holds the
	# events, and says why
	for my $when ('at start', 'while running')
	{
		my $lo = $when eq 'at start' ? 21 : 26;
		if ($when eq 'at start')
		{
			$node->restart;
		}
		else
		{
			$node->safe_psql('postgres', $drop);
			$node->safe_psql('postgres', $view);
		}
		$node->safe_psql('postgres',
			"SELECT pair(n) FROM generate_series($lo, $lo + 4) n");
		$node->poll_query_until('postgres',
			"SELECT worker_state = 'cannot prepare statements' FROM connlog_stats"
		) or die "$when: the worker never said it cannot prepare its statements";
		is($node->safe_psql('postgres', 'SELECT last_error FROM connlog_stats'),
			$error, "1.1, member dropped $when: last_error names the look-alike");
		my ($ret, $stdout, $stderr) =
		  $node->psql('postgres', "SELECT connlog_flush('1 s')");
		like($stderr, qr/connlog_flush timed out/,
			"1.1, member dropped $when: nothing is written");
		is( $node->safe_psql(
				'postgres', 'SELECT rejected, dropped, pending FROM connlog_stats'),
			'0|0|10',
			"1.1, member dropped $when: the events wait, none rejected or dropped");
		$node->safe_psql('postgres', $restore);
		is($node->safe_psql('postgres', "SELECT good_pairs($lo, $lo + 4)"),
			'5', "1.1, member dropped $when: once restored, the events are written");
	}
	nothing_ran($node, 'postgres', 'mallory', $offset, '1.1, member dropped');
	$node->stop;
}

# ---- the query functions and look-alike operators; CREATE EXTENSION ----
# (section: sql)



# ---- poison rows, restarts and accounting ----
# (section: integrity)



# ---- no worker; who decides what WAL is kept ----
# (section: registration)



done_testing();
