# ALTER EXTENSION connlog UPDATE gives the same catalog as a fresh install
# of the version it reaches: functions, columns, indexes, constraints,
# grants, members and views, each compared as text.  Database postgres
# (the worker's) goes from 1.0 to 1.1, compared with a fresh 1.1, on to
# 1.2 and on to 1.3; a database created at 1.1 and one at 1.0 (updated in
# one step) go to 1.2; all three are compared with a fresh 1.2; then they
# and a database created at 1.2 go to 1.3, and all four are compared
# with a fresh 1.3.  Rows written before
# each update survive it and the query functions find them, and the
# library serves every version's SQL (connlog_stats before and after).
# The update also gives the same catalog when the indexes were built
# beforehand, as doc/connlog.md says to on a big table.  Role app, granted what an
# application and a reader need before the update, keeps it: the update
# gives the functions 1.2 makes afresh the grants of 1.1's (the catalogs
# compared, pg_init_privs included, hold the same grants made in a fresh
# 1.2), and app enqueues a type connection_type never had with a string
# literal.  The update to 1.3 gives whoever may run connlog_table_query
# connlog_convert, which it calls, and pg_dump dumps that grant.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

# database postgres (the worker's) is updated; fresh11 installs 1.1,
# fresh12 1.2, fresh the default version, 1.3; from11 is created at 1.1
# and updated to 1.2 and 1.3, from12 at 1.2 and updated to 1.3
my $node = connlog_node('upgrade', q{
connlog.flush_interval = '1h'
});
$node->safe_psql('postgres',
	"CREATE EXTENSION connlog VERSION '1.0';\n" . $connlog_helpers);
$node->safe_psql('postgres', 'CREATE DATABASE fresh11');
$node->safe_psql('fresh11', "CREATE EXTENSION connlog VERSION '1.1'");
$node->safe_psql('postgres', 'CREATE DATABASE fresh12');
$node->safe_psql('fresh12', "CREATE EXTENSION connlog VERSION '1.2'");
$node->safe_psql('postgres', 'CREATE DATABASE from12');
$node->safe_psql('from12', "CREATE EXTENSION connlog VERSION '1.2'");
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION connlog');
is($node->safe_psql('fresh',
		"SELECT extversion FROM pg_extension WHERE extname = 'connlog'"),
	'1.3', 'CREATE EXTENSION connlog installs 1.3');

# Database from11: rows in the table of a 1.1 installation before its
# update (the worker writes only to database postgres, so they are
# inserted), one connection still open.
$node->safe_psql('postgres', 'CREATE DATABASE from11');
$node->safe_psql('from11', "CREATE EXTENSION connlog VERSION '1.1'");
$node->safe_psql('from11', q{
INSERT INTO connection_logs (id, connect_time, organization_id,
  workspace_owner_id, workspace_id, workspace_name, agent_name, type,
  connection_id, disconnect_time)
SELECT ('00000003-0000-0000-0000-' || lpad(n::text, 12, '0'))::uuid,
       timestamptz '2024-01-01 00:00+00' + n * interval '1 s',
       '0000000a-0000-0000-0000-000000000000', '0000000b-0000-0000-0000-000000000000',
       '0000000c-0000-0000-0000-000000000000', 'dev', 'main', 'vscode',
       ('00000002-0000-0000-0000-' || lpad(n::text, 12, '0'))::uuid,
       CASE WHEN n < 3 THEN timestamptz '2024-01-01 01:00+00' END
FROM generate_series(1, 3) n});

# Database prebuilt takes doc/connlog.md's way for big tables: the new
# index built CONCURRENTLY before the update, which then skips it.  It is
# updated from 1.0 to 1.2 in one ALTER EXTENSION, below.
$node->safe_psql('postgres', 'CREATE DATABASE prebuilt');
$node->safe_psql('prebuilt', "CREATE EXTENSION connlog VERSION '1.0'");
$node->safe_psql('prebuilt',
	'CREATE INDEX CONCURRENTLY connection_logs_user_id_idx
	   ON connection_logs (user_id) WHERE user_id IS NOT NULL');

# Under 1.0: five closed connections and one still open, written by the
# worker; connlog_stats answers with 1.0's columns.
$node->safe_psql('postgres',
	'SELECT pair(n) FROM generate_series(1, 5) n; SELECT ev(6); SELECT connlog_flush()');
is( $node->safe_psql(
		'postgres', q{
SELECT extversion, s.enqueued, s.written, s.pending, s.worker_pid IS NOT NULL
FROM pg_extension, connlog_stats s WHERE extname = 'connlog'}),
	'1.0|11|6|0|t',
	'1.0: connlog_stats works on the 1.0 SQL, the worker wrote the rows');

$node->safe_psql('postgres', "ALTER EXTENSION connlog UPDATE TO '1.1'");
is($node->safe_psql('postgres',
		"SELECT extversion FROM pg_extension WHERE extname = 'connlog'"),
	'1.1', "ALTER EXTENSION connlog UPDATE TO '1.1' goes to 1.1");

# One query per kind of catalog entry, each printing its rows as text with
# nothing that differs between two databases of one cluster (no OIDs).
# $members is the extension's member objects.
my $members = q{
  SELECT classid, objid FROM pg_depend
  WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
    AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'connlog')};
my %catalog = (
	extension => q{
SELECT extversion, extrelocatable, extnamespace::regnamespace,
       extconfig::regclass[], extcondition
FROM pg_extension WHERE extname = 'connlog'},
	members => qq{
SELECT pg_describe_object(classid, objid, 0) FROM ($members) m ORDER BY 1},
	functions => qq{
SELECT p.oid::regprocedure::text, pg_get_function_arguments(p.oid),
       pg_get_function_result(p.oid), l.lanname, p.prokind, p.proisstrict,
       p.provolatile, p.proparallel, p.prosecdef, p.proleakproof,
       p.procost, p.prorows, p.proconfig, p.proacl,
       CASE l.lanname WHEN 'c' THEN p.probin || ' ' || p.prosrc
                      ELSE p.prosrc END
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.oid IN (SELECT objid FROM ($members) m
                WHERE classid = 'pg_proc'::regclass)
ORDER BY 1},
	relations => qq{
SELECT c.oid::regclass::text, c.relkind, c.relpersistence, c.reloptions,
       c.relreplident, c.relacl
FROM pg_class c
WHERE c.oid IN (SELECT objid FROM ($members) m
                WHERE classid = 'pg_class'::regclass)
ORDER BY 1},
	# columns of the extension's tables and views, and of its composite
	# types, by position among the columns not dropped
	columns => qq{
SELECT a.attrelid::regclass::text,
       row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
       a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
       a.attcollation::regcollation, a.attacl
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
  AND (a.attrelid IN (SELECT objid FROM ($members) m
                      WHERE classid = 'pg_class'::regclass)
       OR a.attrelid IN (SELECT t.typrelid FROM pg_type t
                         WHERE t.oid IN (SELECT objid FROM ($members) m
                                         WHERE classid = 'pg_type'::regclass)))
ORDER BY 1, 2},
	types => qq{
SELECT t.oid::regtype::text, t.typtype, t.typacl,
       (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
        FROM pg_enum e WHERE e.enumtypid = t.oid)
FROM pg_type t
WHERE t.oid IN (SELECT objid FROM ($members) m
                WHERE classid = 'pg_type'::regclass)
ORDER BY 1},
	indexes => qq{
SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
FROM pg_index i
WHERE i.indrelid IN (SELECT objid FROM ($members) m
                     WHERE classid = 'pg_class'::regclass)
ORDER BY 1},
	constraints => qq{
SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
FROM pg_constraint c
WHERE c.conrelid IN (SELECT objid FROM ($members) m
                     WHERE classid = 'pg_class'::regclass)
ORDER BY 1, 2},
	views => qq{
SELECT c.oid::regclass::text, pg_get_viewdef(c.oid)
FROM pg_class c
WHERE c.relkind IN ('v', 'm')
  AND c.oid IN (SELECT objid FROM ($members) m
                WHERE classid = 'pg_class'::regclass)
ORDER BY 1},
	# the privileges pg_dump takes as the extension's own
	init_privs => qq{
SELECT pg_describe_object(i.classoid, i.objoid, i.objsubid), i.privtype,
       i.initprivs
FROM pg_init_privs i
WHERE (i.classoid, i.objoid) IN (SELECT classid, objid FROM ($members) m)
ORDER BY 1},
	triggers_rules => qq{
SELECT tgrelid::regclass::text, tgname FROM pg_trigger
WHERE tgrelid IN (SELECT objid FROM ($members) m
                  WHERE classid = 'pg_class'::regclass)
UNION ALL
SELECT ev_class::regclass::text, rulename FROM pg_rewrite
WHERE ev_class IN (SELECT objid FROM ($members) m
                   WHERE classid = 'pg_class'::regclass)
ORDER BY 1, 2});

# Each database of @updated against $fresh, kind by kind.
sub compare_catalog
{
	my ($fresh, $what, @updated) = @_;
	for my $kind (sort keys %catalog)
	{
		my $want = $node->safe_psql($fresh, $catalog{$kind});
		isnt($want, '', "$kind: the query finds rows in $fresh");
		for my $db (@updated)
		{
			is($node->safe_psql($db->[0], $catalog{$kind}),
				$want, "$kind: $db->[1] is the same as $what");
		}
	}
	return;
}

compare_catalog('fresh11', 'fresh 1.1', [ 'postgres', 'updated 1.0' ]);

# the comparison sees what 1.1 added
my $functions = $node->safe_psql('postgres', $catalog{functions});
like($functions, qr/^connlog_connection_count\(.*^connlog_connections\(.*^connlog_query_check\(/ms,
	'the compared functions include the query paths');
like($functions, qr/\|\$libdir\/connlog connlog_stats_1_1$/m,
	'the compared connlog_stats() calls connlog_stats_1_1');
like(
	$node->safe_psql('postgres', $catalog{indexes}),
	qr/connection_logs_user_id_idx.*WHERE \(user_id IS NOT NULL\)/,
	'the compared indexes include the query paths\' indexes');

# 1.0's rows survived, the open connection is found as ongoing, and the
# worker merges its disconnect into it under 1.1.
is( $node->safe_psql(
		'postgres', q{
SELECT good_pairs(1, 5), rows_between(1, 6),
       (SELECT count FROM connlog_connection_count(state => 'ongoing')),
       (SELECT connection_id = uid(2, 6) FROM connlog_connections(state => 'ongoing'))}),
	'5|6|1|t',
	'rows written under 1.0 survive and the query functions find them');
$node->safe_psql('postgres',
	"SELECT ev(6, 'disconnected'); SELECT connlog_flush()");
is( $node->safe_psql(
		'postgres', q{
SELECT good_pairs(1, 6), rows_between(1, 6),
       (SELECT count FROM connlog_connection_count(state => 'ongoing'))}),
	'6|6|0',
	'under 1.1 the worker merges a disconnect into a row written under 1.0');

# connlog_stats after the update: 1.1's columns, counting on from 1.0's
is( $node->safe_psql(
		'postgres', q{
SELECT enqueued, written, pending, purged, worker_state IS NOT NULL
FROM connlog_stats}),
	'12|7|0|0|t',
	'1.1: connlog_stats has the new columns and kept counting');

# Role app's grants: in postgres and from11 on 1.1's functions, in fresh
# on 1.2's (both connlog_enqueue overloads), in prebuilt on 1.0's
# connlog_enqueue; 1.0 has no query functions, so prebuilt's are granted
# after its update.
my $app_grants = q{
GRANT SELECT ON connection_logs TO app;
GRANT EXECUTE ON FUNCTION connlog_query_check(text, integer, integer,
  timestamptz, timestamptz) TO app;
GRANT EXECUTE ON FUNCTION connlog_connections, connlog_connection_count
  TO app WITH GRANT OPTION;
};
my $enqueue_args = 'uuid, timestamptz, uuid, uuid, uuid, text, text, %s, '
  . 'connection_status, uuid, inet, integer, text, uuid, text, text';
my $grant_enqueue = sub {
	return sprintf("GRANT EXECUTE ON FUNCTION connlog_enqueue($enqueue_args) TO app;\n",
		$_[0]);
};
$node->safe_psql('postgres', 'CREATE ROLE app');
$node->safe_psql($_, $grant_enqueue->('connection_type') . $app_grants)
  for qw(postgres from11);
# (the update gives whoever may run connlog_query_check
# connlog_table_query too, which a reader of a fresh 1.2 is granted, and
# the update to 1.3 whoever may run that connlog_convert)
my $grants12 =
    $grant_enqueue->('connection_type')
  . $grant_enqueue->('text')
  . $app_grants
  . 'GRANT EXECUTE ON FUNCTION connlog_table_query TO app;';
$node->safe_psql($_, $grants12) for qw(fresh12 from12);
# (and the update to 1.3 gives whoever may run 1.2's connlog_enqueue with
# a text type the one with extra that replaces it, and
# connlog_enqueue_batch)
$node->safe_psql('fresh',
	    $grant_enqueue->('connection_type')
	  . ($grant_enqueue->('text') =~ s/, text, text\)/, text, text, jsonb)/r)
	  . 'GRANT EXECUTE ON FUNCTION connlog_enqueue_batch TO app;'
	  . $app_grants
	  . 'GRANT EXECUTE ON FUNCTION connlog_table_query TO app;'
	  . 'GRANT EXECUTE ON FUNCTION connlog_convert TO app;');
$node->safe_psql('prebuilt',
	$grant_enqueue->('connection_type')
	  . 'GRANT SELECT ON connection_logs TO app');

# Under 1.1: connection 7 connects and is written, still open.  Then the
# update to 1.2, which the prebuilt database (at 1.0) and from11 (at 1.1)
# take too.
$node->safe_psql('postgres', 'SELECT ev(7); SELECT connlog_flush()');
for my $db (qw(postgres prebuilt from11))
{
	$node->safe_psql($db, "ALTER EXTENSION connlog UPDATE TO '1.2'");
	is($node->safe_psql($db,
			"SELECT extversion FROM pg_extension WHERE extname = 'connlog'"),
		'1.2', "$db: ALTER EXTENSION connlog UPDATE TO '1.2' goes to 1.2");
}
$node->safe_psql('prebuilt',
	($app_grants =~ s/GRANT SELECT ON \S+ TO app;//r)
	  . 'GRANT EXECUTE ON FUNCTION connlog_table_query TO app;');

compare_catalog(
	'fresh12', 'fresh 1.2',
	[ 'postgres', '1.0 updated to 1.1, then to 1.2' ],
	[ 'prebuilt', '1.0 updated to 1.2 after building indexes beforehand' ],
	[ 'from11',   '1.1 updated to 1.2' ]);

# the comparison sees what 1.2 changed
$functions = $node->safe_psql('postgres', $catalog{functions});
like($functions,
	qr/^connlog_connection_count\(.*OPERATOR\(pg_catalog\.=\).*^connlog_connections\(.*OPERATOR\(pg_catalog\.>=\)/ms,
	'the compared query functions are 1.2\'s, with qualified operators');
like($functions, qr/^connlog_query_check\(.*\{"search_path=pg_catalog, pg_temp"\}/m,
	'the compared connlog_query_check is 1.2\'s, with its search_path');

# On to 1.3: the three databases at 1.2 and one created at 1.2
for my $db (qw(postgres prebuilt from11 from12))
{
	$node->safe_psql($db, 'ALTER EXTENSION connlog UPDATE');
	is($node->safe_psql($db,
			"SELECT extversion FROM pg_extension WHERE extname = 'connlog'"),
		'1.3', "$db: ALTER EXTENSION connlog UPDATE goes to 1.3");
}
compare_catalog(
	'fresh', 'fresh 1.3',
	[ 'postgres', '1.0 updated to 1.1, 1.2, then 1.3' ],
	[ 'prebuilt', '1.0 updated to 1.2, then 1.3' ],
	[ 'from11',   '1.1 updated to 1.2, then 1.3' ],
	[ 'from12',   '1.2 updated to 1.3' ]);

# the comparison sees what 1.3 changed, and the grant the update gave
$functions = $node->safe_psql('postgres', $catalog{functions});
like($functions,
	qr/^connlog_convert\("any",anyelement\)\|.*,app=X\/\w+\}\|\$libdir\/connlog connlog_convert$/m,
	'the compared functions include 1.3\'s connlog_convert, app may run it');
like($functions, qr/^connlog_table_query\(.*connlog_convert\(c\.%1\$I/ms,
	'the compared connlog_table_query is 1.3\'s');
for my $db (qw(fresh from12))
{
	my ($dump) = run_command(
		[ 'pg_dump', '--schema-only', '-d', $node->connstr($db) ]);
	like(
		$dump,
		qr/^GRANT ALL ON FUNCTION public\.connlog_convert\(value "any", target anyelement\) TO app;$/m,
		"$db: pg_dump dumps app's grant on connlog_convert");
}

# Rows written under 1.0 and 1.1 survive the update to 1.2, their types
# with them, the query functions find them, and the worker merges
# connection 7's disconnect into the row written under 1.1.
is( $node->safe_psql(
		'postgres', q{
SELECT format_type(atttypid, atttypmod), attnotnull,
       (SELECT string_agg(type || ' ' || n, ',' ORDER BY type)
        FROM (SELECT type, count(*) n FROM connection_logs GROUP BY type) t)
FROM pg_attribute
WHERE attrelid = 'connection_logs'::regclass AND attname = 'type'}),
	'text|t|ssh 7',
	'1.2: connection_logs.type is text NOT NULL, the rows\' types kept');
is( $node->safe_psql(
		'postgres', q{
SELECT good_pairs(1, 6), rows_between(1, 7),
       (SELECT count FROM connlog_connection_count(state => 'ongoing')),
       (SELECT connection_id = uid(2, 7) FROM connlog_connections(state => 'ongoing'))}),
	'6|7|1|t',
	'1.2: rows written under 1.0 and 1.1 survive and the query functions find them');
$node->safe_psql('postgres',
	"SELECT ev(7, 'disconnected'); SELECT connlog_flush()");
is( $node->safe_psql(
		'postgres', q{
SELECT good_pairs(1, 7), rows_between(1, 7),
       (SELECT count FROM connlog_connection_count(state => 'ongoing'))}),
	'7|7|0',
	'under 1.2 the worker merges a disconnect into a row written under 1.1');
is( $node->safe_psql(
		'postgres', q{
SELECT enqueued, written, pending, purged, worker_state IS NOT NULL
FROM connlog_stats}),
	'14|9|0|0|t',
	'1.2: connlog_stats kept counting');

# app was granted 1.1's connlog_enqueue; it enqueues with a literal type
# connection_type has no label for, which resolves to 1.2's function, and
# finds the row with the query functions the update granted it.
$node->safe_psql(
	'postgres', q{
SET ROLE app;
SELECT connlog_enqueue(id => uid(3, 8), event_time => t0(8),
  organization_id => uid(10, 0), workspace_owner_id => uid(11, 0),
  workspace_id => uid(12, 0), workspace_name => 'dev', agent_name => 'main',
  type => 'file_transfer', status => 'connected', connection_id => uid(2, 8));
RESET ROLE;
SELECT connlog_flush()});
is( $node->safe_psql(
		'postgres', q{
SET ROLE app;
SELECT connection_id = uid(2, 8), type
FROM connlog_connections(types => '{file_transfer,tunnel}');
SELECT count FROM connlog_connection_count(types => ARRAY['ssh']);
SELECT has_function_privilege('connlog_enqueue(uuid, timestamptz, uuid, uuid,
  uuid, text, text, connection_type, connection_status, uuid, inet, integer,
  text, uuid, text, text)', 'EXECUTE')}),
	"t|file_transfer\n7\nt",
	'1.2: a role granted 1.1\'s functions enqueues a new type with a literal and queries it'
);

# from11's rows, inserted under 1.1, as 1.2's query functions see them
is( $node->safe_psql(
		'from11', q{
SELECT array(SELECT right(connection_id::text, 1)
             FROM connlog_connections(types => '{vscode}')),
       (SELECT count FROM connlog_connection_count(state => 'ongoing')),
       (SELECT count FROM connlog_connection_count(
          workspace_id => '0000000c-0000-0000-0000-000000000000',
          connected_after => '2024-01-01 00:00:02+00'))}),
	'{3,2,1}|1|2',
	'1.1 updated to 1.2: rows written before the update are found');

# The library writes to a 1.0 or 1.1 table too, whose type is the enum:
# events enqueued under 1.2 and written after the extension was made
# again at 1.1 keep their type if the enum has it, and one the enum does
# not have fails only its own row, which is rejected.  (CASCADE drops the
# helper ev(), whose argument is a connection_status.)
$node->safe_psql('postgres', q{
SELECT ev(9);
SELECT connlog_enqueue(id => uid(3, 10), event_time => t0(10),
  organization_id => uid(10, 0), workspace_owner_id => uid(11, 0),
  workspace_id => uid(12, 0), workspace_name => 'dev', agent_name => 'main',
  type => 'file_transfer', status => 'connected', connection_id => uid(2, 10));
DROP EXTENSION connlog CASCADE;
CREATE EXTENSION connlog VERSION '1.1';
SELECT connlog_flush()});
is( $node->safe_psql(
		'postgres', q{
SELECT string_agg(right(connection_id::text, 2) || ' ' || type, ',')
FROM connection_logs;
SELECT error, event->>'type' FROM connection_logs_rejected}),
	qq{09 ssh\ninvalid input value for enum connection_type: "file_transfer" (SQLSTATE 22P02)|file_transfer},
	'1.1 table: a type the enum has is written, one it has not is rejected alone'
);

$node->stop;
done_testing();
