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

# (forged WAL records and who sets connlog.durability: t/020_trust_producer_wal.pl;
# a server without a registered worker: t/029_trust_operator.pl)

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



# ---- poison rows, restarts and accounting ----
# (section: integrity)
{
	# Poison rows cost a split, not retries; a worker that exits holds
	# nothing back from its successor; nothing is counted twice.
	my $node = connlog_role_node('integrity', 'LOGIN', q{
connlog.batch_size = 100
connlog.flush_interval = '200ms'
connlog.max_retries = 3
connlog.retry_interval = '1h'
max_prepared_transactions = 2
wal_level = replica
max_replication_slots = 2
log_statement = none
});
	$node->safe_psql('postgres',
		"CREATE EXTENSION connlog; $connlog_helpers $writer_grants" . q{
CREATE FUNCTION web(n bigint) RETURNS void LANGUAGE sql AS $$
  SELECT connlog_enqueue(
    id => uid(5, n), event_time => t0(n), organization_id => uid(10, 0),
    workspace_owner_id => uid(11, 0), workspace_id => uid(12, 0),
    workspace_name => 'dev', agent_name => 'main', type => 'workspace_app',
    status => 'connected')
$$;
SELECT web(n) FROM generate_series(1, 10) n;
SELECT connlog_flush();
});
	my @names = qw(enqueued written merged rejected dropped pending retries);
	my $moved = sub {
		my ($s0) = @_;
		my $s = $node->query_hash('postgres',
			'SELECT __COLUMNS__ FROM connlog_stats', @names);
		return join(' ', map { "$_=" . ($s->{$_} - $s0->{$_}) } @names);
	};
	my $stats = sub {
		return $node->query_hash('postgres',
			'SELECT __COLUMNS__ FROM connlog_stats', @names);
	};
	my $wait_for_lock = sub {
		$node->poll_query_until(
			'postgres', q{
SELECT wait_event_type = 'Lock' FROM pg_stat_activity
WHERE backend_type = 'connlog worker'})
		  or die 'the worker does not wait for the lock';
	};
	# pg_terminate_backend on the worker; returns the log offset from before
	my $terminate_worker = sub {
		my $old_pid =
		  $node->safe_psql('postgres', 'SELECT worker_pid FROM connlog_stats');
		my $offset = -s $node->logfile;
		$node->safe_psql('postgres', "SELECT pg_terminate_backend($old_pid)");
		$node->poll_query_until('postgres',
			"SELECT worker_pid NOT IN (0, $old_pid) FROM connlog_stats")
		  or die 'no new worker';
		return $offset;
	};

	# 1. Ten web events whose id exists (23505), one every 50 pairs: each
	# is rejected by splitting its batch at once.  With retry_interval 1h a
	# batch sent to the retry queue would make connlog_flush() time out.
	my $s0 = $stats->();
	my $log_offset = -s $node->logfile;
	my ($ret, $out, $err) = $node->psql(
		'postgres', q{
SELECT pair(n), (SELECT web(n / 50 - 20) WHERE n % 50 = 0)
FROM generate_series(1001, 1500) n;
SELECT connlog_flush('20s');
});
	is($ret, 0, 'poison: connlog_flush returns, no batch waits for a retry')
	  or diag $err;
	# a pair split over two batches is two writes of its row: written and
	# merged vary, their sum does not
	my $s = $stats->();
	is( join(' ',
			(map { "$_=" . ($s->{$_} - $s0->{$_}) }
				  qw(enqueued rejected dropped pending retries)),
			'written+merged='
			  . ($s->{written} + $s->{merged} - $s0->{written} - $s0->{merged})),
		'enqueued=1010 rejected=10 dropped=0 pending=0 retries=0 written+merged=1000',
		'poison: 10 rejected without a retry, the 1000 other events written');
	is( $node->safe_psql(
			'postgres', q{
SELECT good_pairs(1001, 1500), count(*), count(*) FILTER (
  WHERE error LIKE '%(SQLSTATE 23505)'
    AND (event->>'id')::uuid BETWEEN uid(5, 1) AND uid(5, 10))
FROM connection_logs_rejected}),
		'500|10|10',
		'poison: every pair written, exactly the 10 duplicates rejected');
	ok( !$node->log_contains(qr/will be retried|Retry \d+ of/, $log_offset),
		'poison: no batch was queued for a retry');
	is( $node->safe_psql('postgres', 'SELECT worker_state FROM connlog_stats'),
		'idle', 'poison: worker_state is idle, not "retry queue full"');

	# 2. A privilege revoked, events enqueued, the worker terminated: the
	# events it held are not dropped, its successor writes them once the
	# privilege is back, and the log gives the real reason.
	$node->safe_psql('postgres',
		'REVOKE INSERT ON connection_logs FROM connlog_writer');
	$s0 = $stats->();
	$node->safe_psql('postgres',
		'SELECT pair(n) FROM generate_series(2001, 2015) n');
	$node->poll_query_until('postgres',
		"SELECT worker_state = 'missing privileges' FROM connlog_stats")
	  or die 'the worker never noticed the missing privilege';
	$log_offset = $terminate_worker->();
	$node->safe_psql('postgres',
		'GRANT INSERT ON connection_logs TO connlog_writer');
	$node->safe_psql('postgres', 'SELECT connlog_flush()');
	is( $moved->($s0),
		'enqueued=30 written=15 merged=15 rejected=0 dropped=0 pending=0 retries=0',
		'privilege: the 30 events the worker held are written by its successor');
	is($node->safe_psql('postgres', 'SELECT good_pairs(2001, 2015)'),
		'15', 'privilege: each pair written with its span');
	ok( $node->log_contains(
			qr/WARNING:  connlog worker is exiting with 30 events not written\n[^\n]*DETAIL:  connlog.role lacks a privilege that connlog's statements need\./,
			$log_offset),
		'privilege: the exiting worker names the missing privilege');
	ok( !$node->log_contains(qr/connlog dropped|as dropped|not installed/,
			$log_offset),
		'privilege: nothing is logged as dropped, nor the extension as missing');

	# 3. shutdown_timeout = 0 with connection_logs locked (by a prepared
	# transaction, which outlives the restart): the stopping worker leaves
	# the events to WAL, and the next life writes each once and counts
	# each once.
	reload_conf($node, 'connlog.shutdown_timeout' => '0');
	my $lo = 3001;
	for my $mode (qw(wal flush))
	{
		my $hi = $lo + 49;
		$node->safe_psql('postgres',
			"BEGIN; LOCK TABLE connection_logs IN ACCESS EXCLUSIVE MODE; PREPARE TRANSACTION 'lock'"
		);
		$node->safe_psql('postgres',
			"SET connlog.durability = $mode; SELECT pair(n) FROM generate_series($lo, $hi) n"
		);
		$wait_for_lock->();
		$log_offset = -s $node->logfile;
		$node->restart;
		$node->safe_psql('postgres', "COMMIT PREPARED 'lock'");
		$node->safe_psql('postgres', 'SELECT connlog_flush()');
		is( $node->safe_psql(
				'postgres',
				'SELECT enqueued, written, merged, rejected, dropped, pending FROM connlog_stats'
			),
			'100|50|50|0|0|0',
			"$mode: the next life replays the 100 events and counts each once");
		is( $node->safe_psql(
				'postgres',
				"SELECT good_pairs($lo, $hi), rows_between($lo, $hi)"),
			'50|50',
			"$mode: each pair written once");
		ok( $node->log_contains(
				qr/WARNING:  connlog worker is exiting with 100 events not written\n[^\n]*DETAIL:  connlog.shutdown_timeout expired\./,
				$log_offset),
			"$mode: the stopping worker says why it leaves them");
		ok( $node->log_contains(
				qr/LOG:  connlog will replay 100 WAL-backed events that were not written yet/,
				$log_offset),
			"$mode: the postmaster says they will be replayed");
		ok( $node->log_contains(
				qr/LOG:  connlog replayed 100 events from WAL/, $log_offset),
			"$mode: the next worker replays them");
		ok(!$node->log_contains(qr/connlog (?:dropped|lost)/, $log_offset),
			"$mode: nothing is logged as dropped or lost");
		$lo += 100;
	}

	# 4. Told to exit in the middle of a split, with part of the batch
	# written and its rejected row waiting for a lock: the successor writes
	# the batch again, and no event is counted twice.
	my $rejected0 = $node->safe_psql('postgres',
		'SELECT count(*) FROM connection_logs_rejected');
	$node->safe_psql(
		'postgres', q{
CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.workspace_name = 'poison' THEN
    RAISE EXCEPTION 'refusing a poisoned workspace' USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse_poison BEFORE INSERT ON connection_logs
  FOR EACH ROW EXECUTE FUNCTION refuse_poison();
});
	# the trigger makes the worker prepare its statements again, which
	# reads every member: let it do so before the rejected table is locked
	$node->safe_psql('postgres', 'SELECT pair(5000); SELECT connlog_flush()');
	$node->safe_psql(
		'postgres', q{
BEGIN;
LOCK TABLE connection_logs_rejected IN ACCESS EXCLUSIVE MODE;
PREPARE TRANSACTION 'rejected';
});
	$s0 = $stats->();
	$node->safe_psql('postgres',
		"SELECT pair(n, CASE n WHEN 5020 THEN 'poison' ELSE 'dev' END) FROM generate_series(5001, 5020) n"
	);
	$wait_for_lock->();
	ok( $node->safe_psql('postgres', 'SELECT rows_between(5001, 5019)') > 0,
		'split: part of the batch is written when the worker is told to exit'
	);
	$log_offset = $terminate_worker->();
	$node->safe_psql('postgres', "COMMIT PREPARED 'rejected'");
	$node->safe_psql('postgres', 'SELECT connlog_flush()');
	$s = $stats->();
	is( join(' ',
			(map { "$_=" . ($s->{$_} - $s0->{$_}) }
				  qw(enqueued dropped pending)),
			'outcomes='
			  . ($s->{written} + $s->{merged} + $s->{rejected} -
				  $s0->{written} - $s0->{merged} - $s0->{rejected})),
		'enqueued=40 dropped=0 pending=0 outcomes=40',
		'split: each of the 40 events has one outcome, counted once');
	is( $node->safe_psql(
			'postgres', qq{
SELECT good_pairs(5001, 5019), rows_between(5001, 5020),
       count(*) - $rejected0,
       count(DISTINCT event->>'id') FILTER (WHERE event->>'workspace_name' = 'poison')
FROM connection_logs_rejected}),
		($s->{rejected} - $s0->{rejected}) == 1 ? '19|19|1|1' : '19|19|2|2',
		'split: the 19 good pairs written once, the poisoned one rejected once'
	);
	ok( $node->log_contains(
			qr/WARNING:  connlog worker is exiting with \d+ events not written\n[^\n]*DETAIL:  connlog.shutdown_timeout expired\./,
			$log_offset),
		'split: the exiting worker says why it leaves the batch');

	# 5. Read back from WAL after a crash, a web event whose row is there
	# already (the same id, time and workspace) is skipped, while another
	# event that reuses an existing id is rejected, as it would have been
	# the first time.
	$node->safe_psql('postgres', 'DROP TRIGGER refuse_poison ON connection_logs');
	$node->safe_psql(
		'postgres', q{
BEGIN;
LOCK TABLE connection_logs IN ACCESS EXCLUSIVE MODE;
PREPARE TRANSACTION 'webreplay';
});
	$node->safe_psql(
		'postgres', q{
SET connlog.durability = flush;
SELECT web(3);
SELECT connlog_enqueue(
  id => uid(5, 4), event_time => t0(9999), organization_id => uid(10, 0),
  workspace_owner_id => uid(11, 0), workspace_id => uid(12, 0),
  workspace_name => 'reused', agent_name => 'main', type => 'workspace_app',
  status => 'connected');
});
	$node->stop('immediate');
	$node->start;
	$node->safe_psql('postgres', "COMMIT PREPARED 'webreplay'");
	$node->safe_psql('postgres', 'SELECT connlog_flush()');
	is( $node->safe_psql(
			'postgres',
			'SELECT enqueued, written, rejected, dropped, pending FROM connlog_stats'),
		'2|1|1|0|0',
		'replay: the two web events read back from WAL have one outcome each');
	is( $node->safe_psql(
			'postgres', q{
SELECT (SELECT count(*) FROM connection_logs WHERE id IN (uid(5, 3), uid(5, 4))),
       (SELECT count(*) FROM connection_logs WHERE workspace_name = 'reused'),
       (SELECT count(*) FROM connection_logs_rejected
        WHERE event->>'workspace_name' = 'reused' AND error LIKE '%(SQLSTATE 23505)')}),
		'2|0|1',
		'replay: the event already written is skipped, the one reusing an id is rejected');

	$node->stop;
}




done_testing();
