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
#
# A role with no connlog privilege writes records in connlog's layout with
# pg_logical_emit_message() (executable by PUBLIC), without the key: after
# a restart none becomes a row.  Then the test, which can read the key
# file as the owner of the data directory, writes records with a valid
# MAC whose events connlog_enqueue refuses (event_time = infinity, a
# workspace_name that is not valid UTF-8): not written either.  One valid
# record with a valid MAC shows the MAC computed here is right.  Genuine
# events enqueued before the restart are replayed and written.
{
	use Digest::SHA qw(hmac_sha256);

	my $node = connlog_node('wal', q{
connlog.batch_size = 100000
connlog.flush_interval = '1h'
log_statement = none
}, allows_streaming => 1);
	$node->safe_psql('postgres', q{CREATE EXTENSION connlog;
CREATE ROLE mallory LOGIN;} . $connlog_helpers
		  . 'SELECT ev(0); SELECT connlog_flush();');
	my $roles_sql = q{SELECT rolname, rolsuper, rolcreaterole, rolcreatedb,
  rolreplication, rolbypassrls,
  (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid)
FROM pg_roles r WHERE rolname = 'mallory'};
	my $privs_sql = q{SELECT has_table_privilege('mallory', 'connection_logs', 'INSERT, SELECT, UPDATE, DELETE'),
  has_table_privilege('mallory', 'connlog_wal_progress', 'SELECT, UPDATE'),
  has_function_privilege('mallory', 'connlog_enqueue(uuid, timestamptz, uuid, uuid, uuid, text, text, connection_type, connection_status, uuid, inet, integer, text, uuid, text, text)', 'EXECUTE')};
	my $roles_before = $node->safe_psql('postgres', $roles_sql);
	is( $node->safe_psql('postgres', $privs_sql),
		'f|f|f', 'wal: mallory has no privilege on connlog');

	# genuine events, held in the ring (the worker waits for a flush); the
	# first makes the worker create the slot and store its progress
	$node->safe_psql('postgres',
		'SET connlog.durability = flush; SELECT pair(n) FROM generate_series(1, 50) n'
	);
	ok(-f $node->data_dir . '/connlog_wal.key',
		'wal: the postmaster created the key file');

	# A record: epoch, seq, MAC (16 bytes), then the ring record (batch.h),
	# in host byte order.  flags 0x01: a connection_id; type ssh, connected.
	sub wal_record
	{
		my (%e) = @_;
		my $uuid = sub { pack('H32', sprintf('%08d000000000000%012d', @_)) };
		my $rec = pack('q', $e{time})
		  . $uuid->(3, $e{n}) . $uuid->(10, 0) . $uuid->(11, 0)
		  . $uuid->(12, 0)
		  . pack('CCCCCSS', 1, 0, 0, 0, 0, length($e{ws}), 4)
		  . $uuid->(2, $e{n})
		  . $e{ws} . 'main';
		$rec = pack('L', 4 + length($rec)) . $rec;
		my $head = pack('QQ', 7, $e{n});
		my $mac =
		  defined $e{key}
		  ? substr(hmac_sha256($head . $rec, $e{key}), 0, 16)
		  : $e{mac};
		return $head . $mac . $rec;
	}
	# 2024-01-01 00:00:00+00 in microseconds since 2000-01-01
	my $t = 757382400000000;
	my $infinity = 9223372036854775807;
	my $emit = sub {
		my ($payload) = @_;
		return $node->safe_psql(
			'postgres',
			"SELECT pg_logical_emit_message(false, 'connlog', '\\x"
			  . unpack('H*', $payload) . "'::bytea) IS NOT NULL",
			extra_params => [ '-U', 'mallory' ]);
	};

	# without the key: no MAC, a zero MAC, and the layout before the MAC
	my $forged = wal_record(n => 901, time => $t, ws => 'x', mac => "\0" x 16);
	$emit->($forged);
	$emit->(wal_record(n => 902, time => $infinity, ws => 'x', mac => "\0" x 16));
	$emit->(pack('QQ', 7, 903) . substr($forged, 32));

	# with the key read from the data directory
	my $key = slurp_file($node->data_dir . '/connlog_wal.key');
	is(length($key), 32, 'wal: the key file holds 32 bytes');
	$emit->(wal_record(n => 904, time => $infinity, ws => 'x', key => $key));
	$emit->(wal_record(n => 905, time => $t, ws => "\xff\xfe", key => $key));
	$emit->(wal_record(n => 906, time => $t, ws => 'ok', key => $key));

	# more genuine events; flushing their WAL flushes the records above too
	$node->safe_psql('postgres',
		'SET connlog.durability = flush; SELECT pair(n) FROM generate_series(51, 100) n'
	);

	my $offset = -s $node->logfile;
	$node->stop('immediate');
	$node->start;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'connlog worker'"
	) or die 'no worker after the restart';
	$node->safe_psql('postgres', 'SELECT connlog_flush()');

	is($node->safe_psql('postgres', 'SELECT good_pairs(1, 100)'),
		'100', 'wal: the 200 genuine events were replayed and written');
	is($node->safe_psql('postgres', 'SELECT rows_between(901, 905)'),
		'0', 'wal: no forged record became a row');
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FROM connection_logs WHERE connect_time = 'infinity' OR workspace_name = 'x'"
		),
		'0',
		'wal: no row with connect_time = infinity, none from a forged record');
	is( $node->safe_psql(
			'postgres',
			"SELECT workspace_name || ' ' || connect_time FROM connection_logs WHERE connection_id = uid(2, 906)"
		),
		'ok 2024-01-01 00:00:00+00',
		'wal: a valid event under a valid MAC is written (the test computes the MAC right)');
	ok( $node->log_contains(
			qr/WARNING:  connlog ignored 5 WAL records with prefix "connlog" between [0-9A-F]+\/[0-9A-F]+ and [0-9A-F]+\/[0-9A-F]+\n.*DETAIL:  3 records have no valid MAC; 2 have a valid MAC but hold an event connlog_enqueue refuses \(the first: event_time is not a finite timestamp\)\./,
			$offset),
		'wal: one WARNING counts the records without a valid MAC and the refused events');
	ok($node->log_contains(qr/connlog replayed 201 events from WAL/, $offset),
		'wal: the replay counts only the genuine events and the valid one');
	my $s = $node->query_hash('postgres',
		'SELECT __COLUMNS__ FROM connlog_stats',
		qw(enqueued written merged dropped rejected pending));
	is_deeply(
		[ @$s{qw(enqueued dropped rejected pending)} ],
		[ 201, 0, 0, 0 ],
		'wal: enqueued counts 201 events, none dropped, rejected or pending');
	is($s->{written} + $s->{merged}, 201, 'wal: all 201 written or merged');

	is($node->safe_psql('postgres', $roles_sql),
		$roles_before, 'wal: mallory gained no role attribute or membership');
	is($node->safe_psql('postgres', $privs_sql),
		'f|f|f', 'wal: mallory gained no privilege on connlog');

	# the key goes with the data directory, so a standby can verify
	$node->backup('wal_bk');
	is(slurp_file($node->backup_dir . '/wal_bk/connlog_wal.key'),
		$key, 'wal: pg_basebackup copies the key file');

	# A changed key: records written under the old one are not verifiable,
	# so they are counted and logged, never written.
	$node->safe_psql('postgres',
		'SET connlog.durability = flush; SELECT pair(n) FROM generate_series(201, 210) n'
	);
	unlink($node->data_dir . '/connlog_wal.key') or die "unlink: $!";
	$offset = -s $node->logfile;
	$node->stop('immediate');
	$node->start;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'connlog worker'"
	) or die 'no worker after the restart';
	$node->safe_psql('postgres', 'SELECT connlog_flush()');
	isnt(slurp_file($node->data_dir . '/connlog_wal.key'),
		$key, 'wal: a deleted key file is made again, with a new key');
	ok( $node->log_contains(
			qr/WARNING:  connlog ignored 20 WAL records with prefix "connlog" .*\n.*DETAIL:  20 records have no valid MAC\./,
			$offset),
		'wal: the 20 events written under the old key are counted and logged');
	is($node->safe_psql('postgres', 'SELECT rows_between(201, 210)'),
		'0', 'wal: ... and not written');
	is($node->safe_psql('postgres', 'SELECT enqueued FROM connlog_stats'),
		'0', 'wal: ... nor counted as enqueued');

	# A key file that cannot be read is left alone, and wal and flush are
	# refused until it is fixed.
	chmod(0000, $node->data_dir . '/connlog_wal.key') or die "chmod: $!";
	$offset = -s $node->logfile;
	$node->restart;
	ok( $node->log_contains(
			qr/WARNING:  could not open file "connlog_wal.key": Permission denied/,
			$offset),
		'wal: an unreadable key file is reported at start');
	my ($ret, $stdout, $stderr) = $node->psql('postgres',
		'SET connlog.durability = wal; SELECT ev(300)');
	like(
		$stderr,
		qr/ERROR:  connlog has no key for its WAL records/,
		'wal: without a key, connlog.durability = wal is refused');
	chmod(0600, $node->data_dir . '/connlog_wal.key') or die "chmod: $!";
	$node->stop;
}



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
{
	# Role mallory may CREATE in schema shared, which the superuser's
	# search_path puts first, and in public, the extension's schema.  Her
	# look-alikes of every operator and function the query functions use
	# (each with argument types that match better than the built-in one,
	# or that come before pg_catalog when the path names it after shared)
	# record who ran them and try to make her a superuser; they return
	# the right answer, so an attack would not show in the results.
	my $node = connlog_node('sql_lookalike', "connlog.flush_interval = '1h'\n");
	my ($ret, $out, $err);

	# $sql's messages in database $db, without psql's prefix
	my $messages = sub {
		my ($n, $db, $sql) = @_;
		($ret, $out, $err) = $n->psql($db, $sql);
		$err =~ s/^psql:<stdin>:\d+: //mg;
		return $err;
	};
	# what CREATE EXTENSION or the update says in database $db
	my $elsewhere = sub {
		my ($db) = @_;
		return qq{WARNING:  connlog writes events only to database "postgres"
DETAIL:  connlog_enqueue cannot be called in this database ("$db"), and the connlog worker writes no rows here.
HINT:  Create the extension in database "postgres", or set connlog.database to "$db" and restart the server.};
	};

	is($messages->($node, 'postgres', 'CREATE EXTENSION connlog'),
		'', 'sql: CREATE EXTENSION in connlog.database warns of nothing');

	my @lookalikes = (
		[ '=', 'public.connection_type', 'public.connection_type' ],
		[ '=', 'public.connection_log_state', 'public.connection_log_state' ],
		[ '=',  'text',        'text' ],
		[ '=',  'uuid',        'uuid' ],
		[ '>=', 'timestamptz', 'timestamptz' ],
		[ '<=', 'timestamptz', 'timestamptz' ],
		[ '>',  'timestamptz', 'timestamptz' ],
		[ '<',  'timestamptz', 'timestamptz' ],
		[ '<',  'integer',     'integer' ],
		[ '>',  'integer',     'integer' ]);
	my $mallory_schemas = q{
CREATE SCHEMA shared;
GRANT CREATE, USAGE ON SCHEMA shared TO mallory;
GRANT CREATE ON SCHEMA public TO mallory;
};
	# shared.trap(what) records the caller and tries to escalate
	my $mallory_trap = q{
CREATE TABLE shared.ran (who name, what text);
CREATE FUNCTION shared.trap(what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO shared.ran VALUES (current_user, what);
	BEGIN
		ALTER ROLE mallory SUPERUSER;
	EXCEPTION WHEN insufficient_privilege THEN
		NULL;
	END;
END $$;
};
	# the look-alikes, in schema $s
	my $lookalikes_in = sub {
		my ($s) = @_;
		my $sql = '';
		my $i = 0;
		for my $op (@lookalikes)
		{
			my ($name, $l, $r) = @$op;
			$i++;
			$sql .= qq{
CREATE FUNCTION $s.op$i(a $l, b $r) RETURNS boolean LANGUAGE plpgsql AS \$\$
BEGIN
	PERFORM shared.trap('$s.$name($l, $r)');
	RETURN a OPERATOR(pg_catalog.$name) b;
END \$\$;
CREATE OPERATOR $s.$name (LEFTARG = $l, RIGHTARG = $r, FUNCTION = $s.op$i);
};
		}
		return $sql . qq{
CREATE FUNCTION $s.count_step(n bigint) RETURNS bigint LANGUAGE plpgsql AS \$\$
BEGIN
	PERFORM shared.trap('$s.count(*)');
	RETURN n OPERATOR(pg_catalog.+) 1;
END \$\$;
CREATE AGGREGATE $s.count(*) (SFUNC = $s.count_step, STYPE = bigint,
                              INITCOND = '0');
};
	};
	my $mallory_sql =
	  $mallory_trap . $lookalikes_in->('shared') . $lookalikes_in->('public');

	# Six connections (n = 1..6) as the table of filters below expects:
	# organization, owner, workspace, type, user, connection_id, connect
	# and disconnect minute past 10:00 (undef: ongoing).
	my $u = sub { sprintf('%08d-0000-0000-0000-%012d', @_) };
	my @rows = (
		[ 1, 1, 1, 'ssh',             undef, 1,     0,  30 ],
		[ 1, 1, 2, 'vscode',          undef, 2,     10, undef ],
		[ 1, 2, 3, 'workspace_app',   1,     undef, 20, 25 ],
		[ 2, 3, 4, 'ssh',             undef, 4,     30, undef ],
		[ 2, 3, 4, 'port_forwarding', 2,     5,     40, 50 ],
		[ 2, 4, 5, 'jetbrains',       1,     6,     50, 60 ]);
	my $minute = sub {
		defined $_[0]
		  ? "timestamptz '2026-01-01 10:00+00' + interval '$_[0] min'"
		  : 'NULL';
	};
	my @values;
	for my $n (1 .. @rows)
	{
		my ($org, $owner, $ws, $type, $user, $conn, $on, $off) =
		  @{ $rows[ $n - 1 ] };
		push @values,
		  sprintf(
			"('%s', %s, '%s', '%s', '%s', 'ws%d', 'main', '%s', %s, %s, %s)",
			$u->(1, $n), $minute->($on), $u->(10, $org), $u->(11, $owner),
			$u->(12, $ws), $ws, $type,
			defined $user ? "'" . $u->(13, $user) . "'" : 'NULL',
			defined $conn ? "'" . $u->(2, $conn) . "'" : 'NULL',
			$minute->($off));
	}
	my $insert =
	    'INSERT INTO connection_logs (id, connect_time, organization_id, '
	  . 'workspace_owner_id, workspace_id, workspace_name, agent_name, '
	  . 'type, user_id, connection_id, disconnect_time) VALUES ';
	$node->safe_psql('postgres', $insert . join(",\n", @values));
	$node->safe_psql('postgres', 'CREATE ROLE mallory LOGIN;' . $mallory_schemas);
	$node->safe_psql('postgres', $mallory_sql,
		extra_params => [ '-U', 'mallory' ]);

	# each filter alone, two combinations, a page: the arguments and the
	# connections they select, newest first
	my $at = sub { "'2026-01-01 10:$_[0]+00'" };
	my @cases = (
		[ '',                                     '6 5 4 3 2 1' ],
		[ "organization_id => '" . $u->(10, 1) . "'", '3 2 1' ],
		[ "workspace_owner_id => '" . $u->(11, 3) . "'", '5 4' ],
		[ "workspace_id => '" . $u->(12, 4) . "'",       '5 4' ],
		[ "types => '{ssh}'",                            '4 1' ],
		[ "types => '{vscode,jetbrains}'",               '6 2' ],
		[ "user_id => '" . $u->(13, 1) . "'",            '6 3' ],
		[ "connection_id => '" . $u->(2, 5) . "'",       '5' ],
		[ "state => 'ongoing'",                          '4 2' ],
		[ "state => 'completed'",                        '6 5 3 1' ],
		[ 'connected_after => ' . $at->(20),             '6 5 4 3' ],
		[ 'connected_before => ' . $at->(20),            '3 2 1' ],
		[
			"organization_id => '"
			  . $u->(10, 2)
			  . "', state => 'completed', connected_after => "
			  . $at->(40)
			  . ', connected_before => '
			  . $at->(50),
			'6 5'
		],
		[ "types => '{ssh}', state => 'ongoing'", '4' ],
		[ '"limit" => 2, "offset" => 1',      '5 4', 'list only' ]);

	# which look-alikes ran (in a session with a safe search_path), and
	# whether mallory is a superuser
	my $verdict = q{
SET search_path = pg_catalog;
SELECT (SELECT coalesce(string_agg(DISTINCT what, ', '), 'none')
        FROM shared.ran),
       (SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory')};

	# The superuser calls both functions with each case under each path,
	# in one session per path; a line "case N" precedes each answer.
	for my $path ('shared, public', 'shared, pg_catalog, public',
		'"$user", public')
	{
		my $sql = "SET search_path = $path;\n";
		for my $i (0 .. $#cases)
		{
			my ($args) = @{ $cases[$i] };
			$sql .= "SELECT 'case $i';\n";
			$sql .= "SELECT id FROM connlog_connections($args);\n";
			$sql .= "SELECT count FROM connlog_connection_count($args);\n"
			  unless $cases[$i][2];
		}
		my %got;
		my $case;
		for my $line (split /\n/, $node->safe_psql('postgres', $sql))
		{
			if ($line =~ /^case (\d+)$/)
			{
				$case = $1;
				$got{$case} = [];
			}
			else
			{
				push @{ $got{$case} }, $line;
			}
		}
		for my $i (0 .. $#cases)
		{
			my ($args, $want, $list_only) = @{ $cases[$i] };
			my @ids = @{ $got{$i} };
			my $count = $list_only ? undef : pop @ids;
			my @n = map { /-0*(\d+)$/ ? $1 : "?$_" } @ids;
			is("@n", $want, "sql: path $path: connlog_connections($args)");
			next if $list_only;
			my $n = () = $want =~ /\d+/g;
			is($count, $n,
				"sql: path $path: connlog_connection_count($args)");
		}

		# still inlined into the caller's query, under a hostile path too
		my $plan = $node->safe_psql('postgres',
			"SET search_path = $path; EXPLAIN (COSTS OFF)
			 SELECT * FROM connlog_connections(types => '{ssh}', state => 'ongoing');
			 EXPLAIN (COSTS OFF)
			 SELECT * FROM connlog_connection_count(workspace_id => '"
			  . $u->(12, 4) . "')");
		like($plan, qr/Scan (using \S+ )?on connection_logs/,
			"sql: path $path: the plans scan connection_logs");
		# (the scan of connlog_table_query is the branch that runs only
		# with connlog.table set)
		unlike($plan, qr/Function Scan on connlog_conn/,
			"sql: path $path: the query functions are inlined");

		# connlog_query_check's comparisons (PL/pgSQL) and its errors
		like(
			$messages->(
				$node, 'postgres',
				"SET search_path = $path;
				 SELECT * FROM connlog_connections(\"limit\" => -1)"),
			qr/^ERROR:  argument "limit" of connlog_connections must not be negative$/m,
			"sql: path $path: a negative limit is refused");
		like(
			$messages->(
				$node, 'postgres',
				"SET search_path = $path;
				 SELECT * FROM connlog_connection_count(connected_after => "
				  . $at->(30)
				  . ', connected_before => '
				  . $at->(10) . ')'),
			qr/^ERROR:  argument "connected_after" of connlog_connection_count must not be later than "connected_before"$/m,
			"sql: path $path: an empty time range is refused");
		is($node->safe_psql('postgres', $verdict),
			'none|f',
			"sql: path $path: no look-alike ran, mallory is not a superuser");
		# each path's verdict its own
		$node->safe_psql('postgres',
			'TRUNCATE shared.ran; ALTER ROLE mallory NOSUPERUSER');
	}

	# CREATE EXTENSION elsewhere than connlog.database says where events go
	$node->safe_psql('postgres', 'CREATE DATABASE other');
	is($messages->($node, 'other', 'CREATE EXTENSION connlog'),
		$elsewhere->('other'),
		'sql: CREATE EXTENSION in another database warns where events go');
	is($ret, 0, 'sql: ... and succeeds');

	# The same attack on a 1.1 installation (in database old, whose
	# connlog.database it is not) does run mallory's operator as the
	# superuser: the look-alikes above are ones the parser would choose.
	# The update to 1.2, with her look-alikes in the extension's schema,
	# runs none of them and ends the attack.
	$node->safe_psql('postgres', 'CREATE DATABASE old');
	$node->safe_psql('old', "CREATE EXTENSION connlog VERSION '1.1'");
	$node->safe_psql('old', $mallory_schemas);
	$node->safe_psql('old', $mallory_sql, extra_params => [ '-U', 'mallory' ]);
	$node->safe_psql('old', $insert . $values[0]);
	my $attack = q{
SET search_path = shared, public;
SELECT id FROM connlog_connections(type => 'ssh')};
	# 1.2's filter on types is a text[]
	my $attack12 = q{
SET search_path = shared, public;
SELECT id FROM connlog_connections(types => '{ssh}')};
	is($node->safe_psql('old', $attack), $u->(1, 1),
		'sql: 1.1: the attacked query still answers right');
	my $superuser = $node->safe_psql('old', 'SELECT current_user');
	is( $node->safe_psql(
			'old', q{
SET search_path = pg_catalog;
SELECT (SELECT string_agg(DISTINCT who || ' ' || what, ', ') FROM shared.ran),
       (SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory')}),
		"$superuser shared.=(public.connection_type, public.connection_type)|t",
		'sql: 1.1: mallory\'s operator ran as the superuser, and made her one');
	$node->safe_psql('old',
		'ALTER ROLE mallory NOSUPERUSER; TRUNCATE shared.ran');

	is($messages->($node, 'old', 'ALTER EXTENSION connlog UPDATE'),
		$elsewhere->('old'),
		'sql: the update to 1.2 in another database warns where events go');
	is($node->safe_psql('old', $attack12), $u->(1, 1),
		'sql: 1.2 after the update: the query answers right');
	is($node->safe_psql('old', $verdict),
		'none|f',
		'sql: 1.2 after the update: no look-alike ran, not in the update either');
	$node->stop;

	# Without shared_preload_libraries, CREATE EXTENSION says so.
	my $plain = PostgreSQL::Test::Cluster->new('sql_nopreload');
	$plain->init;
	$plain->append_conf('postgresql.conf', "connlog.database = 'postgres'\n");
	$plain->start;
	is( $messages->($plain, 'postgres', 'CREATE EXTENSION connlog'),
		'WARNING:  connlog is not loaded via "shared_preload_libraries"
DETAIL:  Until it is, connlog_enqueue raises an error and no connection log events are written.
HINT:  Add connlog to shared_preload_libraries in postgresql.conf and restart the server.',
		'sql: CREATE EXTENSION without shared_preload_libraries warns');
	$plain->stop;
}



# ---- no worker; who decides what WAL is kept ----
# (section: registration)

# No worker: with max_worker_processes too low for connlog's worker, the
# log says so at startup and connlog_enqueue refuses every event at once
# instead of filling a ring nobody drains.
{
	my $node = connlog_node('noworker', "max_worker_processes = 0\n");
	like(
		slurp_file($node->logfile),
		qr/WARNING:  connlog could not register its background worker/,
		'an unregistered worker is logged at startup');
	$node->safe_psql('postgres',
		'CREATE EXTENSION connlog; ' . $ConnlogTest::connlog_helpers);
	my ($ret, $out, $err) = $node->psql('postgres', 'SELECT ev(1)');
	isnt($ret, 0, 'enqueue without a registered worker fails');
	like($err, qr/ERROR:  connlog worker is not registered/,
		'its error says the worker is not registered');
	like($err, qr/HINT:  Raise max_worker_processes \(now 0\)/,
		'its hint names max_worker_processes');
	($ret, $out, $err) = $node->psql('postgres', 'SELECT connlog_flush()');
	like($err, qr/ERROR:  connlog worker is not registered/,
		'connlog_flush says the same');
	is($node->safe_psql('postgres', 'SELECT enqueued, pending FROM connlog_stats'),
		'0|0', 'nothing was accepted');
	$node->stop;
	unlike(slurp_file($node->logfile), qr/connlog lost/,
		'shutdown loses nothing');
}

# What WAL connlog keeps is the operator's choice: connlog.durability,
# which makes connlog create the WAL-retaining slot, is settable only by
# superusers (or whom they let, per role or database).  A role that may
# enqueue cannot switch it on, for itself, through ALTER ROLE, or as the
# owner of a database through ALTER DATABASE.
{
	my $node = connlog_node('durability_suset', "wal_level = replica\n");
	$node->safe_psql(
		'postgres', q{
CREATE EXTENSION connlog;
CREATE ROLE app LOGIN;
CREATE DATABASE appdb OWNER app;
GRANT EXECUTE ON FUNCTION connlog_enqueue(uuid, timestamptz, uuid, uuid,
  uuid, text, text, text, connection_status, uuid, inet, integer, text,
  uuid, text, text) TO app;
GRANT EXECUTE ON FUNCTION connlog_flush TO app;
} . $ConnlogTest::connlog_helpers);

	for my $sql ('SET connlog.durability = wal',
		"SELECT set_config('connlog.durability', 'flush', false)",
		'ALTER ROLE app SET connlog.durability = wal',
		'ALTER DATABASE appdb SET connlog.durability = wal')
	{
		my ($ret, $out, $err) =
		  $node->psql('postgres', $sql, extra_params => [ '-U', 'app' ]);
		like(
			$err,
			qr/ERROR:  permission denied to set parameter "connlog.durability"/,
			"a role with EXECUTE cannot run: $sql");
	}
	is( $node->safe_psql(
			'postgres', 'SHOW connlog.durability',
			extra_params => [ '-U', 'app' ]),
		'memory',
		'its sessions stay in memory mode');
	$node->safe_psql('postgres', 'SELECT ev(1); SELECT connlog_flush()',
		extra_params => [ '-U', 'app' ]);
	is( $node->safe_psql(
			'postgres',
			'SELECT count(*) FROM pg_replication_slots'),
		'0',
		'no slot was created');

	# the operator chooses it for the role
	$node->safe_psql('postgres',
		'ALTER ROLE app SET connlog.durability = flush');
	is( $node->safe_psql(
			'postgres', 'SHOW connlog.durability',
			extra_params => [ '-U', 'app' ]),
		'flush',
		'a superuser sets it per role');
	$node->safe_psql('postgres', 'SELECT ev(2); SELECT connlog_flush()',
		extra_params => [ '-U', 'app' ]);
	is( $node->safe_psql(
			'postgres',
			q{SELECT slot_name FROM pg_replication_slots}),
		'connlog',
		"the operator's setting creates the slot");
	is( $node->safe_psql(
			'postgres',
			'SELECT count(*) FROM connection_logs WHERE connection_id IN (uid(2, 1), uid(2, 2))'
		),
		'2',
		'both events are written');
	is( $node->safe_psql(
			'postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = 'app'"),
		'f',
		'app gained no privilege');
	$node->stop;
}



done_testing();
