# connlog_stats.lag: the age of the oldest accepted event not written yet.
# NULL when idle; growing while the worker waits for a lock on
# connection_logs, NULL again once connlog_flush() has seen the events
# written; counting a batch in the retry queue while newer ones are
# written; counting events read back from WAL after a restart from the
# server's start.  The update from 1.1 gives the grants other roles had
# on connlog_stats again, and a 1.1 database reads its columns from the
# new library until then.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

my $node = connlog_node('lag', q{
connlog.flush_interval = '100ms'
connlog.retry_interval = '100ms'
connlog.max_retries = 1000
}, allows_streaming => 1);
$node->safe_psql('postgres', 'CREATE EXTENSION connlog;' . $connlog_helpers);

is($node->safe_psql('postgres', 'SELECT pending, lag IS NULL FROM connlog_stats'),
	'0|t', 'idle: nothing pending, lag is NULL');

###########################################################################
# The worker waits for a lock on connection_logs, held for 3 s.
###########################################################################
my $locker = lock_table($node);
my $locker_pid = $locker->query_safe('SELECT pg_backend_pid()');
$node->safe_psql('postgres', 'SELECT pair(1)');
ok(worker_waits_for_lock($node),
	'the worker waits for the lock on connection_logs');
ok( $node->poll_query_until(
		'postgres', "SELECT lag >= interval '2 s' FROM connlog_stats"),
	'lag reaches 2 s while the lock is held');
is($node->safe_psql('postgres', 'SELECT pending, written FROM connlog_stats'),
	'2|0', 'the 2 events are pending, nothing written');
$node->poll_query_until(
	'postgres', qq{
SELECT clock_timestamp() - xact_start >= interval '3 s'
FROM pg_stat_activity WHERE pid = $locker_pid})
  or die 'the lock was not held for 3 s';
$locker->query_safe('COMMIT');
$locker->quit;
$node->safe_psql('postgres', 'SELECT connlog_flush()');
is( $node->safe_psql(
		'postgres', 'SELECT pending, lag IS NULL, good_pairs(1, 1) FROM connlog_stats'),
	'0|t|1',
	'after the lock is released and connlog_flush() returns, lag is NULL');

###########################################################################
# A batch in the retry queue counts while newer batches are written.
###########################################################################
# transient (40001): retried max_retries times (1000 here, so for as long
# as this test needs) before a split
$node->safe_psql(
	'postgres', q{
CREATE TABLE fail_stuck (on_ boolean);
INSERT INTO fail_stuck VALUES (true);
}
	  . failing_trigger(
		'fail_stuck',
		when => q{NEW.workspace_name = 'stuck' AND (SELECT on_ FROM public.fail_stuck)},
		raise => q{'stuck row'},
		errcode => 'serialization_failure'));
$node->safe_psql('postgres', "SELECT pair(2, 'stuck')");
$node->poll_query_until('postgres',
	'SELECT write_errors > 0 FROM connlog_stats')
  or die 'the stuck batch did not fail';
$node->safe_psql('postgres', 'SELECT pair(3)');
$node->poll_query_until('postgres', 'SELECT good_pairs(3, 3) = 1')
  or die 'the batch after the stuck one was not written';
ok( $node->poll_query_until(
		'postgres', "SELECT lag >= interval '1 s' FROM connlog_stats"),
	'lag counts the batch in the retry queue, not the newer one written');
is( $node->safe_psql(
		'postgres', 'SELECT pending, rows_between(2, 2) FROM connlog_stats'),
	'2|0', 'the stuck pair is pending, its row not written');
$node->safe_psql('postgres', 'UPDATE fail_stuck SET on_ = false');
ok( $node->poll_query_until(
		'postgres', 'SELECT pending = 0 AND lag IS NULL FROM connlog_stats'),
	'once the retry writes it, lag is NULL');
is($node->safe_psql('postgres', "SELECT good_pairs(2, 2)"),
	'1', 'the retried pair is written');

###########################################################################
# Events read back from WAL after a restart count from the server's start.
###########################################################################
$node->safe_psql('postgres', 'UPDATE fail_stuck SET on_ = true');
my $errors = $node->safe_psql('postgres', 'SELECT write_errors FROM connlog_stats');
$node->safe_psql('postgres',
	"SET connlog.durability = 'flush'; SELECT pair(4, 'stuck')");
$node->poll_query_until('postgres',
	"SELECT write_errors > $errors FROM connlog_stats")
  or die 'the stuck WAL-backed batch did not fail';
$node->stop('immediate');
$node->start;
# the counters start from zero: the replayed batch has failed once
$node->poll_query_until('postgres',
	'SELECT write_errors > 0 FROM connlog_stats')
  or die 'the replayed batch did not fail';
is( $node->safe_psql(
		'postgres', q{
SELECT pending, lag >= now() - pg_postmaster_start_time()
FROM connlog_stats}),
	'0|t',
	'replayed events held in the retry queue: lag counts from the server start (pending counts them once written)'
);
$node->safe_psql('postgres', 'UPDATE fail_stuck SET on_ = false');
ok( $node->poll_query_until(
		'postgres', 'SELECT good_pairs(4, 4) = 1 AND lag IS NULL FROM connlog_stats'),
	'once the replayed events are written, lag is NULL');

###########################################################################
# 1.1 to 1.2: the library serves 1.1's connlog_stats, and the update gives
# the grants other roles had again.
###########################################################################
$node->safe_psql('postgres', q{
CREATE ROLE watcher LOGIN;
CREATE ROLE helper LOGIN;
CREATE DATABASE v11});
$node->safe_psql(
	'v11', q{
CREATE EXTENSION connlog VERSION '1.1';
GRANT SELECT ON connlog_stats TO watcher;
GRANT EXECUTE ON FUNCTION connlog_stats() TO watcher WITH GRANT OPTION;
GRANT EXECUTE ON FUNCTION connlog_stats() TO helper;
});
is($node->safe_psql('v11', 'SELECT count(*) FROM connlog_stats'),
	'1', '1.1: connlog_stats works with the new library');
$node->safe_psql('v11', 'ALTER EXTENSION connlog UPDATE');
is( $node->safe_psql(
		'v11', q{
SELECT has_table_privilege('watcher', 'connlog_stats', 'SELECT'),
       has_function_privilege('watcher', 'connlog_stats()', 'EXECUTE WITH GRANT OPTION'),
       has_function_privilege('helper', 'connlog_stats()', 'EXECUTE'),
       has_table_privilege('helper', 'connlog_stats', 'SELECT'),
       has_function_privilege('public', 'connlog_stats()', 'EXECUTE')}),
	't|t|t|f|f',
	'the update gives the grants on connlog_stats again, and no others');
my $init_privs = q{
SELECT pg_describe_object(classoid, objoid, objsubid), initprivs
FROM pg_init_privs
WHERE (classoid, objoid) IN (('pg_proc'::regclass, 'connlog_stats()'::regprocedure),
                             ('pg_class'::regclass, 'connlog_stats'::regclass))
ORDER BY 1};
is($node->safe_psql('v11', $init_privs),
	$node->safe_psql('postgres', $init_privs),
	'the extension\'s initial privileges are those of a fresh 1.2');
my ($dump) = run_command(
	[ 'pg_dump', '--schema-only', '-d', $node->connstr('v11') ]);
like(
	$dump,
	qr/^GRANT SELECT ON TABLE public\.connlog_stats TO watcher;$/m,
	'pg_dump dumps the grant given again on the view');
like(
	$dump,
	qr/^GRANT ALL ON FUNCTION public\.connlog_stats\(.*\) TO watcher WITH GRANT OPTION;$/m,
	'pg_dump dumps the grant given again on the function');
is( $node->safe_psql(
		'v11', 'SELECT lag IS NULL FROM connlog_stats',
		extra_params => [ '-U', 'watcher' ]),
	't', '1.2: a role granted SELECT before the update reads lag');

$node->stop;
done_testing();
