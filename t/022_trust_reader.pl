# The readers' side: the query functions run nothing another role chose.
# Each attack is mounted as the role that could mount it: look-alike
# operators and functions on a hostile search_path (a role with CREATE on
# a schema the caller's path names, and on the extension's), and the
# owner of the table connlog.target_table names, whose own types' casts a read
# must never run.  Each asserts the rows, and that no role gained a
# privilege.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

# ---- the query functions and look-alike operators; CREATE EXTENSION ----
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
		# with connlog.target_table set)
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
		'sql: the update (through 1.2) in another database warns where events go');
	is($node->safe_psql('old', $attack12), $u->(1, 1),
		'sql: after the update: the query answers right');
	is($node->safe_psql('old', $verdict),
		'none|f',
		'sql: after the update: no look-alike ran, not in the update either');
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

# ---- the table owner's casts; connlog.target_table ----
# connlog.target_table names public.connection_logs, owned by role app, with the
# extension in schema connlog (as in t/018_app_table.pl).  app gives the
# table a column of an enum of her own, and casts from it to json and
# (implicitly) to text whose functions record that they ran and try to
# make her a superuser.  A superuser and a pg_monitor member with the
# grants a reader needs read the table through the query functions, with
# and without a filter on type.  In database v12, at 1.2, the same read
# runs her cast as the superuser (so the attack is real); at 1.3 nothing
# of hers runs, and the rows are right.
{
	my $node = connlog_node('owner_casts', q{
connlog.target_table = 'public.connection_logs'
connlog.flush_interval = '1h'
});
	$node->safe_psql('postgres', q{
CREATE ROLE app LOGIN;
CREATE ROLE watch LOGIN IN ROLE pg_monitor;
CREATE DATABASE v12;
});
	my $setup = sub {
		my ($db, $version) = @_;
		$node->safe_psql(
			$db, qq{
GRANT CREATE ON SCHEMA public TO app;
CREATE SCHEMA connlog;
CREATE EXTENSION connlog SCHEMA connlog VERSION '$version';
GRANT USAGE ON SCHEMA connlog TO watch;
GRANT EXECUTE ON FUNCTION connlog.connlog_connections,
  connlog.connlog_connection_count, connlog.connlog_query_check,
  connlog.connlog_table_query TO watch;
GRANT SELECT ON connlog.connection_logs TO watch;
});
		$node->safe_psql($db,
			'GRANT EXECUTE ON FUNCTION connlog.connlog_convert TO watch')
		  if $version ne '1.2';
		$node->safe_psql(
			$db, q{
SET ROLE app;
CREATE TYPE public.kind AS ENUM ('ssh', 'vscode', 'jetbrains');
CREATE TABLE public.ran (who name, what text);
GRANT INSERT ON public.ran TO PUBLIC;
CREATE FUNCTION public.trap(what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	RAISE WARNING 'owner''s % ran as %', what, current_user;
	INSERT INTO public.ran VALUES (current_user, what);
	BEGIN
		ALTER ROLE app SUPERUSER;
	EXCEPTION WHEN insufficient_privilege THEN
		NULL;
	END;
END $$;
CREATE FUNCTION public.kind_json(k public.kind) RETURNS json LANGUAGE plpgsql AS
$$ BEGIN PERFORM public.trap('cast to json'); RETURN pg_catalog.to_json(k::pg_catalog.name); END $$;
CREATE FUNCTION public.kind_text(k public.kind) RETURNS text LANGUAGE plpgsql AS
$$ BEGIN PERFORM public.trap('cast to text'); RETURN k::pg_catalog.name; END $$;
CREATE CAST (public.kind AS json) WITH FUNCTION public.kind_json(public.kind);
CREATE CAST (public.kind AS text) WITH FUNCTION public.kind_text(public.kind)
  AS IMPLICIT;
CREATE TABLE public.connection_logs (
	id uuid PRIMARY KEY,
	connect_time timestamptz NOT NULL,
	organization_id uuid NOT NULL,
	workspace_owner_id uuid NOT NULL,
	workspace_id uuid NOT NULL,
	workspace_name varchar(64) NOT NULL,
	agent_name text NOT NULL,
	type public.kind NOT NULL,
	connection_id uuid,
	disconnect_time timestamptz,
	source text
);
INSERT INTO public.connection_logs
SELECT ('00000001-0000-0000-0000-' || lpad(n::text, 12, '0'))::uuid,
       timestamptz '2026-01-01 10:00+00' + n * interval '1 min',
       '0000000a-0000-0000-0000-000000000000', '0000000b-0000-0000-0000-000000000000',
       '0000000c-0000-0000-0000-000000000000', 'ws' || n, 'main',
       (ARRAY['ssh', 'vscode', 'jetbrains'])[n % 3 + 1]::public.kind,
       ('00000002-0000-0000-0000-' || lpad(n::text, 12, '0'))::uuid,
       CASE WHEN n % 2 = 0 THEN timestamptz '2026-01-01 12:00+00' END, 'app'
FROM generate_series(1, 6) n;
GRANT SELECT ON public.connection_logs TO watch;
});
		return;
	};
	$setup->('postgres', '1.3');
	$setup->('v12', '1.2');

	# each reader's calls, and the rows they must give: ids (by number),
	# types, workspace names and states, newest first
	my $reads = q{
SELECT string_agg(right(id::text, 1) || ' ' || type || ' ' || workspace_name
                  || ' ' || (disconnect_time IS NULL), ','
                  ORDER BY connect_time DESC)
FROM connlog.connlog_connections();
SELECT string_agg(right(id::text, 1), ',' ORDER BY connect_time DESC)
FROM connlog.connlog_connections(types => '{ssh,jetbrains}', state => 'completed');
SELECT count FROM connlog.connlog_connection_count();
SELECT count FROM connlog.connlog_connection_count(types => '{vscode}');
};
	my $want = join "\n",
	  '6 ssh ws6 false,5 jetbrains ws5 true,4 vscode ws4 false,'
	  . '3 ssh ws3 true,2 jetbrains ws2 false,1 vscode ws1 true',
	  '6,2', '6', '2';
	my $verdict = q{
SELECT (SELECT coalesce(string_agg(DISTINCT who || ' ' || what, ', '), 'none')
        FROM public.ran),
       (SELECT rolsuper FROM pg_roles WHERE rolname = 'app')};

	# 1.2: the superuser's read runs app's cast to json, which makes her
	# a superuser
	$node->safe_psql('v12', 'SELECT * FROM connlog.connlog_connections()');
	my $superuser = $node->safe_psql('v12', 'SELECT current_user');
	like($node->safe_psql('v12', $verdict),
		qr/^\Q$superuser\E cast to json.*\|t$/,
		'owner casts: at 1.2 the superuser\'s read runs app\'s cast and makes her a superuser');
	$node->safe_psql('v12', 'ALTER ROLE app NOSUPERUSER; TRUNCATE public.ran');

	my $offset = -s $node->logfile;
	for my $reader ('superuser', 'watch')
	{
		my @as = $reader eq 'watch' ? (extra_params => [ '-U', 'watch' ]) : ();
		is($node->safe_psql('postgres', $reads, @as),
			$want, "owner casts: $reader reads the right rows at 1.3");
		is($node->safe_psql('postgres', $verdict),
			'none|f',
			"owner casts: $reader: none of app's functions ran, app is not a superuser");
	}

	# updated to 1.3, database v12 reads the same, and runs nothing of
	# app's; watch, who could run connlog_table_query, may now run
	# connlog_convert, which it calls
	$node->safe_psql('v12', 'ALTER EXTENSION connlog UPDATE');
	is($node->safe_psql('v12', $reads, extra_params => [ '-U', 'watch' ]),
		$want, 'owner casts: after the update to 1.3 watch reads the right rows');
	is($node->safe_psql('v12', $reads), $want,
		'owner casts: after the update to 1.3 the superuser reads the right rows');
	is($node->safe_psql('v12', $verdict), 'none|f',
		'owner casts: after the update to 1.3 none of app\'s functions ran');
	unlike(slurp_file($node->logfile, $offset), qr/owner's cast to \w+ ran/,
		'owner casts: the server log shows none of app\'s casts ran at 1.3');
	$node->stop;
}

done_testing();
