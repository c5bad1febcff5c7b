# The owner of the table connlog.target_table names (role app, no superuser)
# refuses, discards or merges rows with its policies, triggers and
# indexes, and gives it an inheritance child.  Each attack is mounted as
# app.  A row the owner refuses on its own is rejected, the others are
# written; an error every row gets holds the events (nothing rejected,
# last_error says why, never "missing privileges") until it is gone;
# written counts only rows the table stored; retention deletes only the
# table's own old rows.  Every block checks the exact rows, the
# accounting identity, and that app gained nothing.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

# A batch is what is enqueued between two connlog_flush() calls; a failed
# batch is retried twice, 100 ms apart, before it is split.
my $node = app_table_node(
	'owner_rows', q{
connlog.flush_interval = 1h
connlog.retry_interval = 100ms
connlog.max_retries = 2
connlog.purge_interval = 1s
});
$node->safe_psql(
	'postgres', q{
CREATE FUNCTION web(n bigint, ws text DEFAULT 'dev') RETURNS void
LANGUAGE sql AS $$
  SELECT connlog_enqueue(
    id => uid(5, n), event_time => t0(n), organization_id => uid(10, 0),
    workspace_owner_id => uid(11, 0), workspace_id => uid(12, 0),
    workspace_name => ws, agent_name => 'main', type => 'workspace_app',
    status => 'connected')
$$;
SELECT pair(1);
SELECT connlog_flush();
});
is($node->safe_psql('postgres', 'SELECT good_pairs(1, 1)'),
	'1', 'the worker writes into the application\'s table');

# what the owner may not gain, and the accounting identity
sub nothing_gained
{
	my ($what) = @_;
	is( $node->safe_psql(
			'postgres', qq{
SELECT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = 'app'),
       $identity_sql, dropped
FROM connlog_stats}),
		'f|t|0',
		"$what: app is no superuser, the accounting identity holds, nothing dropped"
	);
	return;
}

sub rejected_errors
{
	my ($where) = @_;
	return $node->safe_psql('postgres',
		"SELECT string_agg(event->>'workspace_name' || ': ' || error, ',' ORDER BY event->>'id') FROM connection_logs_rejected WHERE $where"
	);
}

# connlog_flush() within 20 s: 0 if it returned
sub flush_returns
{
	my ($sql) = @_;
	my ($ret, $out, $err) =
	  $node->psql('postgres', "$sql; SELECT connlog_flush('20s')");
	diag $err if $ret;
	return $ret;
}

# $sql, then a connlog_flush() that times out, as the events are held
sub flush_times_out
{
	my ($sql) = @_;
	my ($ret, $out, $err) =
	  $node->psql('postgres', "$sql; SELECT connlog_flush('1s')");
	return $err =~ /connlog_flush timed out/;
}

# how often the log says, since $offset, that rows are held for $error
sub held_lines
{
	my ($offset, $error) = @_;
	my @m = (slurp_file($node->logfile, $offset) =~
		  /WARNING:  connlog is holding rows that no write takes: \Q$error\E\n/g);
	return scalar @m;
}

# Wait until the worker has retried at least $n more times since $s0.
sub wait_retries
{
	my ($s0, $n) = @_;
	$node->poll_query_until('postgres',
		"SELECT retries >= $s0->{retries} + $n FROM connlog_stats")
	  or die 'the worker does not retry';
	return;
}

# Every row refused: $enqueue's $n events are held past max_retries, none
# written or rejected, last_error is $error (the state never "missing
# privileges"), the log says it once; after $fix they are written
# ($written: the counters' "written=.. merged=..").
sub held_until_fixed
{
	my ($what, $enqueue, $n, $error, $fix, $written) = @_;
	my $s0 = stats($node);
	my $offset = -s $node->logfile;
	ok(flush_times_out($enqueue), "$what: connlog_flush times out");
	$node->poll_query_until('postgres',
		"SELECT last_error = \$\$$error\$\$ AND retries > $s0->{retries} + 3 FROM connlog_stats"
	) or diag state_error($node);
	is(moved($node, $s0, qw(enqueued written rejected pending)),
		"enqueued=$n written=0 rejected=0 pending=$n",
		"$what: the events are held past max_retries, none rejected");
	like(state_error($node), qr/^(?:idle|writing)\|\Q$error\E$/,
		"$what: last_error says why, the state is not \"missing privileges\"");
	is(held_lines($offset, $error),
		1, "$what: the log says so once, however many retries");
	$node->safe_psql('postgres', $fix);
	is(flush_returns('SELECT 1'), 0, "$what, fixed: connlog_flush returns");
	is(moved($node, $s0, qw(enqueued written merged rejected pending)),
		"enqueued=$n $written rejected=0 pending=0",
		"$what, fixed: the held events are written");
	return;
}

my $rls_error =
  'new row violates row-level security policy for table "connection_logs" (SQLSTATE 42501)';

###########################################################################
# A FORCE ROW LEVEL SECURITY policy refuses one workspace: its row is
# rejected with the policy's 42501, the others are written, and the worker
# never takes it for a missing privilege.
###########################################################################
$node->safe_psql(
	'postgres', q{
SET ROLE app;
ALTER TABLE public.connection_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.connection_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY no_system ON public.connection_logs
	USING (true) WITH CHECK (workspace_name <> 'system');
});
my $s0 = stats($node);
is( flush_returns(
		"SELECT pair(n, CASE n WHEN 12 THEN 'system' ELSE 'dev' END) FROM generate_series(10, 14) n"
	),
	0,
	'policy: connlog_flush returns');
is( moved($node, $s0, qw(enqueued written merged rejected pending)),
	'enqueued=10 written=4 merged=5 rejected=1 pending=0',
	'policy: 4 rows written, the refused one rejected');
is( $node->safe_psql(
		'postgres', 'SELECT good_pairs(10, 14), rows_between(10, 14)'),
	'4|4', 'policy: the 4 other pairs are rows, with their spans');
is(rejected_errors("event->>'workspace_name' = 'system'"),
	"system: $rls_error", 'policy: the rejected row has the policy\'s error');
like(state_error($node), qr/^idle\|/,
	'policy: worker_state is idle, never "missing privileges"');

# what comes after the refused event is written too
$s0 = stats($node);
is(flush_returns('SELECT pair(n) FROM generate_series(15, 17) n'),
	0, 'policy: later events are written');
is(moved($node, $s0, qw(written merged rejected pending)),
	'written=3 merged=3 rejected=0 pending=0',
	'policy: the next batch is written whole');

# a refused event alone in its batch is held until the table takes another
# row (the next batch), then rejected
$s0 = stats($node);
ok(flush_times_out("SELECT ev(18, 'connected', 'system')"),
	'policy, alone: the refused event is held while no other row is written'
);
is(moved($node, $s0, qw(rejected pending)),
	'rejected=0 pending=1', 'policy, alone: nothing rejected yet');
is(flush_returns('SELECT pair(19)'),
	0, 'policy, alone: another batch is written, and connlog_flush returns');
is( moved($node, $s0, qw(enqueued written merged rejected pending)),
	'enqueued=3 written=1 merged=1 rejected=1 pending=0',
	'policy, alone: then the refused event is rejected');
is( $node->safe_psql(
		'postgres', 'SELECT good_pairs(19, 19), rows_between(18, 18)'),
	'1|0', 'policy, alone: exactly the other event is a row');
nothing_gained('policy');

###########################################################################
# A policy refuses every row: that is the table's fault, not the rows'.
# Nothing is rejected, the events are held, last_error says why, the log
# says it once; they are written once the policy is gone.
###########################################################################
$node->safe_psql(
	'postgres', q{
SET ROLE app;
DROP POLICY no_system ON public.connection_logs;
CREATE POLICY nothing ON public.connection_logs USING (true) WITH CHECK (false);
});
held_until_fixed(
	'every row refused', 'SELECT pair(n) FROM generate_series(20, 24) n',
	10, $rls_error,
	'SET ROLE app; DROP POLICY nothing ON public.connection_logs; '
	  . 'ALTER TABLE public.connection_logs DISABLE ROW LEVEL SECURITY',
	'written=5 merged=5');
is($node->safe_psql('postgres', 'SELECT good_pairs(20, 24)'),
	'5', 'policy dropped: each pair is a row with its span');
nothing_gained('every row refused');

###########################################################################
# The owner's trigger raises a transient SQLSTATE (40001).  For one row:
# the batch is retried max_retries times, then split, the others written,
# and that row, retried max_retries times alone (a server's 40001 or
# 40P01 would not come back each time), rejected.  For every row: the
# batch is held.
###########################################################################
$node->safe_psql(
	'postgres', q{
SET ROLE app;
CREATE TABLE public.flaky_all (on_all bool);
INSERT INTO public.flaky_all VALUES (false);
}
	  . failing_trigger(
		'public.flaky',
		on => 'public.connection_logs',
		when =>
		  q{NEW.workspace_name = 'flaky' OR (SELECT on_all FROM public.flaky_all)},
		raise => q{'spoofed serialization failure'},
		errcode => 'serialization_failure'));
my $flaky_error = 'spoofed serialization failure (SQLSTATE 40001)';
$s0 = stats($node);
is( flush_returns(
		"SELECT pair(n, CASE n WHEN 32 THEN 'flaky' ELSE 'dev' END) FROM generate_series(30, 34) n"
	),
	0,
	'40001 for one row: connlog_flush returns');
is( moved($node, $s0, qw(enqueued written merged rejected pending retries)),
	'enqueued=10 written=4 merged=5 rejected=1 pending=0 retries=4',
	'40001 for one row: max_retries retries, 4 written, max_retries of that row alone, then it rejected'
);
is($node->safe_psql('postgres', 'SELECT good_pairs(30, 34)'),
	'4', '40001 for one row: the other pairs are rows');
is(rejected_errors("event->>'workspace_name' = 'flaky'"),
	"flaky: $flaky_error", '40001 for one row: rejected with its error');

$node->safe_psql('postgres', 'UPDATE public.flaky_all SET on_all = true');
held_until_fixed(
	'40001 for every row', 'SELECT pair(n) FROM generate_series(40, 42) n',
	6, $flaky_error, 'UPDATE public.flaky_all SET on_all = false',
	'written=3 merged=3');
is($node->safe_psql('postgres', 'SELECT good_pairs(40, 42)'),
	'3', '40001 gone: each pair is a row');
$node->safe_psql('postgres',
	'DROP TRIGGER flaky ON public.connection_logs');
nothing_gained('40001');

# 40001 for one row that is gone once the row has been tried alone, as a
# deadlock with another writer is: the row meets it in the batch's first
# write and max_retries retries, in the split's first range that holds it
# and alone (the 5th time), then in the batch's next attempt (the 6th),
# and the 7th try, alone again, writes it: nothing rejected.
$node->safe_psql(
	'postgres', q{
SET ROLE app;
CREATE SEQUENCE public.once_seq;
CREATE FUNCTION public.once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.workspace_name = 'once' THEN
		IF pg_catalog.nextval('public.once_seq') <= 6 THEN
			RAISE EXCEPTION 'deadlock-like failure'
				USING ERRCODE = 'serialization_failure';
		END IF;
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER once BEFORE INSERT ON public.connection_logs
	FOR EACH ROW EXECUTE FUNCTION public.once();
});
$s0 = stats($node);
is( flush_returns(
		"SELECT pair(n, CASE n WHEN 37 THEN 'once' ELSE 'dev' END) FROM generate_series(35, 39) n"
	),
	0,
	'40001 gone on the row\'s retry alone: connlog_flush returns');
is( moved($node, $s0, qw(enqueued written merged rejected pending)),
	'enqueued=10 written=5 merged=5 rejected=0 pending=0',
	'40001 gone on the row\'s retry alone: every row written, none rejected');
is( $node->safe_psql(
		'postgres',
		"SELECT good_pairs(35, 39), last_value FROM public.once_seq"),
	'5|7',
	'40001 gone on the row\'s retry alone: each pair is a row, the row tried 7 times'
);
$node->safe_psql('postgres',
	'DROP TRIGGER once ON public.connection_logs');
nothing_gained('40001 gone on a retry alone');

###########################################################################
# A BEFORE INSERT trigger returns NULL for some rows: the statement stored
# nothing for them, so they are not counted as written; each goes to
# connection_logs_rejected with the reason.  When it discards every row,
# the events are held.
###########################################################################
$node->safe_psql(
	'postgres', q{
SET ROLE app;
CREATE TABLE public.void_all (on_all bool);
INSERT INTO public.void_all VALUES (false);
CREATE FUNCTION public.void() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.workspace_name = 'void' OR (SELECT on_all FROM public.void_all) THEN
		RETURN NULL;
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER void BEFORE INSERT ON public.connection_logs
	FOR EACH ROW EXECUTE FUNCTION public.void();
});
my $void_error =
  'table public.connection_logs stored nothing for 1 of the 1 rows connlog wrote (SQLSTATE 09000)';
$s0 = stats($node);
is( flush_returns(
		"SELECT web(n, CASE n WHEN 51 THEN 'void' ELSE 'dev' END) FROM generate_series(50, 52) n"
	),
	0,
	'NULL for one row: connlog_flush returns');
is( moved($node, $s0, qw(enqueued written merged rejected pending)),
	'enqueued=3 written=2 merged=0 rejected=1 pending=0',
	'NULL for one row: written counts the 2 rows stored, the other is rejected'
);
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(workspace_name, ',' ORDER BY id) FROM public.connection_logs WHERE id BETWEEN uid(5, 50) AND uid(5, 52)"
	),
	'dev,dev',
	'NULL for one row: exactly the 2 rows counted are in the table');
is(rejected_errors("event->>'workspace_name' = 'void'"),
	"void: $void_error",
	'NULL for one row: connection_logs_rejected has the event and the reason');

$node->safe_psql('postgres', 'UPDATE public.void_all SET on_all = true');
held_until_fixed(
	'NULL for every row', 'SELECT web(n) FROM generate_series(53, 55) n',
	3, $void_error, 'DROP TRIGGER void ON public.connection_logs',
	'written=3 merged=0');
is( $node->safe_psql(
		'postgres',
		'SELECT count(*) FROM public.connection_logs WHERE id BETWEEN uid(5, 53) AND uid(5, 55)'
	),
	'3',
	'trigger dropped: 3 rows');
nothing_gained('NULL');

###########################################################################
# A unique index NULLS NOT DISTINCT would merge web events (no
# connection_id) into one row: it is refused, the events wait, and are
# written once the index is replaced.  (The web events written so far
# would make the index fail to build: they go first.)
###########################################################################
$node->safe_psql(
	'postgres', q{
DELETE FROM public.connection_logs WHERE connection_id IS NULL;
SET ROLE app;
DROP INDEX public.idx_connection_logs_connection_id_workspace_id_agent_name;
CREATE UNIQUE INDEX merging ON public.connection_logs
	(connection_id, workspace_id, agent_name) NULLS NOT DISTINCT;
});
$s0 = stats($node);
ok(flush_times_out('SELECT web(n) FROM generate_series(60, 62) n'),
	'NULLS NOT DISTINCT: connlog_flush times out');
my $nnd_error =
  'unique index "merging" of table public.connection_logs is NULLS NOT DISTINCT (SQLSTATE 42P17)';
$node->poll_query_until('postgres',
	"SELECT last_error = '$nnd_error' FROM connlog_stats")
  or diag state_error($node);
is(state_error($node), "cannot prepare statements|$nnd_error",
	'NULLS NOT DISTINCT: refused, last_error says so');
is(moved($node, $s0, qw(enqueued written rejected pending)),
	'enqueued=3 written=0 rejected=0 pending=3',
	'NULLS NOT DISTINCT: the events wait, none rejected');
$node->safe_psql(
	'postgres', q{
SET ROLE app;
CREATE UNIQUE INDEX distinct_nulls ON public.connection_logs
	(connection_id, workspace_id, agent_name);
DROP INDEX public.merging;
});
is(flush_returns('SELECT 1'), 0, 'index replaced: connlog_flush returns');
is( moved($node, $s0, qw(enqueued written rejected pending)),
	'enqueued=3 written=3 rejected=0 pending=0',
	'index replaced: 3 events written');
is( $node->safe_psql(
		'postgres',
		'SELECT count(*) FROM public.connection_logs WHERE id BETWEEN uid(5, 60) AND uid(5, 62)'
	),
	'3',
	'index replaced: 3 distinct rows');
nothing_gained('NULLS NOT DISTINCT');

###########################################################################
# An inheritance child (an archive) with old and young rows, many more
# than the table has, so its ctids cover every one of the table's: the
# retention deletes the table's own old rows only, and counts them.
###########################################################################
$node->safe_psql(
	'postgres', q{
SET ROLE app;
CREATE TABLE public.connection_logs_archive () INHERITS (public.connection_logs);
INSERT INTO public.connection_logs_archive (id, connect_time, organization_id,
	workspace_owner_id, workspace_id, workspace_name, agent_name, type)
SELECT uid(7, n), now() - CASE WHEN n <= 3 THEN interval '3000 days' ELSE interval '1 minute' END,
	uid(10, 0), uid(11, 0), uid(12, 0), 'archive', 'main', 'ssh'
FROM generate_series(1, 3000) n;
INSERT INTO public.connection_logs (id, connect_time, organization_id,
	workspace_owner_id, workspace_id, workspace_name, agent_name, type)
SELECT uid(9, n), now() - interval '3000 days', uid(10, 0), uid(11, 0),
	uid(12, 0), 'old', 'main', 'ssh'
FROM generate_series(1, 5) n;
});
my $young = $node->safe_psql('postgres',
	"SELECT count(*) FROM ONLY public.connection_logs WHERE workspace_name <> 'old'"
);
my $purged0 = $node->safe_psql('postgres', 'SELECT purged FROM connlog_stats');
reload_conf($node, 'connlog.retention' => '2000d');
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM ONLY public.connection_logs WHERE workspace_name = 'old'"
) or die 'retention did not purge';
# the run ends with a step that deletes fewer rows than it may
reload_conf($node, 'connlog.retention' => '0');
is($node->safe_psql('postgres', 'SELECT purged FROM connlog_stats') - $purged0,
	5, 'retention: purged counts the 5 old rows of the table');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*), count(*) FILTER (WHERE connect_time < now() - interval '2000 days')
FROM public.connection_logs_archive}),
	'3000|3',
	'retention: the child keeps all its rows, old and young');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM ONLY public.connection_logs WHERE workspace_name <> 'old'"
	),
	$young,
	'retention: the table keeps its young rows');
nothing_gained('retention');

$node->stop;
done_testing();
