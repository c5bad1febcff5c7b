# What survives the worker and the server going away: a fast shutdown
# (everything enqueued is written), pg_terminate_backend on the worker (a
# new one within 2 s, nothing lost), and a crash restart after kill -9 of
# a regular backend (shared memory is reset: what was flushed is there,
# what was still in the ring is gone).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;
use IPC::Run;

# Nothing is written until the batch is full (never: 100000 is more than
# any test enqueues) or connlog_flush() asks, so "pending" is exact.
my $node = connlog_node('main', q{
connlog.batch_size = 100000
connlog.flush_interval = '1h'
restart_after_crash = on
log_statement = none
max_connections = 40
});
$node->safe_psql('postgres',
	'CREATE EXTENSION connlog;' . $connlog_helpers . q{
CREATE SEQUENCE pairseq START 100001;
});

###########################################################################
# 50 000 events from five sessions, then pg_ctl stop -m fast at once.
###########################################################################
$node->pgbench(
	'-n -c 5 -j 5 -t 1',
	0,
	[qr/number of transactions actually processed: 5\b/],
	[qr/^$/],
	'five sessions enqueue 25000 connect/disconnect pairs',
	{
		'002_pairs' => q{
SELECT pair(n) FROM generate_series(:client_id * 5000 + 1, :client_id * 5000 + 5000) n;
}
	});
my $s = stats($node);
is_deeply(
	[ @$s{qw(enqueued pending written merged dropped)} ],
	[ 50000, 50000, 0, 0, 0 ],
	'before the stop: 50000 enqueued, all still pending in the ring');
ok(identity_holds($s), 'accounting identity holds before the stop');

# after the restart, the worker writes small batches at once (for the
# termination below)
$node->safe_psql('postgres',
	"ALTER SYSTEM SET connlog.batch_size = 100; "
	  . "ALTER SYSTEM SET connlog.flush_interval = '100ms'");
my $log_offset = -s $node->logfile;
$node->stop('fast');
my $stop_log = slurp_file($node->logfile, $log_offset);
unlike(
	$stop_log,
	qr/connlog (?:dropped|worker is exiting with)/,
	'the shutdown drain reports nothing dropped or left behind');
$node->start;

is($node->safe_psql('postgres', 'SELECT count(*) FROM connection_logs'),
	'25000', 'after the restart: one row per connection, 25000');
is($node->safe_psql('postgres', 'SELECT good_pairs(1, 25000)'),
	'25000',
	'every row spans its connect and disconnect: all 50000 events applied');
# Counters live in shared memory and start again from zero, but the table
# statistics survive a clean shutdown: 25000 inserts and no conflict
# updates mean each pair was merged in the ring before it was written.
is( $node->safe_psql(
		'postgres',
		"SELECT n_tup_ins || ' ' || n_tup_upd FROM pg_stat_user_tables
		 WHERE relname = 'connection_logs'"),
	'25000 0',
	'the drain inserted 25000 rows: the 25000 pairs were merged, not upserted twice'
);
is($node->safe_psql('postgres', 'SELECT count(*) FROM connection_logs_rejected'),
	'0', 'nothing rejected');
$s = stats($node);
is_deeply([ @$s{qw(enqueued pending)} ],
	[ 0, 0 ], 'counters start from zero after a restart');

###########################################################################
# pg_terminate_backend on the worker while producers run.
###########################################################################
my $script = $node->basedir . '/002_producer.sql';
append_to_file($script, "SELECT pair(nextval('pairseq'));\n");
my ($out, $err) = ('', '');
# 4 x 4000 pairs, throttled to 2000 pairs/s: the producers run for ~8 s,
# long enough for three terminations (each takes a little over a second).
my $pgbench = IPC::Run::start(
	[
		'pgbench', '-n', '-c', '4', '-j', '2', '-t', '4000', '-R', '2000',
		'-f', $script, '-h', $node->host, '-p', $node->port, 'postgres'
	],
	'>', \$out, '2>', \$err);

my $total = 2 * 16000;
for my $round (1 .. 3)
{
	my $floor = $round * 2000;
	$node->poll_query_until('postgres',
		"SELECT enqueued >= $floor FROM connlog_stats")
	  or die "producers made no progress";
	my $old_pid = worker_pid($node);
	my ($killed_at, $enqueued) = split /\|/,
	  $node->safe_psql(
		'postgres', qq{
SELECT clock_timestamp(), (SELECT enqueued FROM connlog_stats)
FROM pg_terminate_backend($old_pid) AS t WHERE t});
	ok($enqueued < $total,
		"round $round: worker $old_pid terminated while producers run ($enqueued of $total enqueued)"
	);
	ok(worker_started($node, $old_pid), "round $round: a new worker started");
	my $delay = $node->safe_psql(
		'postgres', qq{
SELECT extract(epoch FROM backend_start - '$killed_at'::timestamptz)
FROM pg_stat_activity WHERE backend_type = 'connlog worker'});
	note "round $round: new worker started ${delay}s after the termination";
	cmp_ok($delay, '<', 2, "round $round: the new worker started within 2 s");
}

ok($pgbench->finish, 'producers finished without an error')
  or diag "pgbench: $err";
like($out, qr/number of transactions actually processed: 16000\b/,
	'all 16000 producer transactions ran');
$node->safe_psql('postgres', 'SELECT connlog_flush()');
$s = stats($node);
is_deeply(
	[ @$s{qw(enqueued pending rejected dropped)} ],
	[ $total, 0, 0, 0 ],
	"$total events enqueued, none pending, rejected or dropped");
is($s->{merged} + $s->{written},
	$total, 'every event is written or merged into a written row');
ok(identity_holds($s), 'accounting identity holds');
is( $node->safe_psql(
		'postgres', 'SELECT count(*) FROM connection_logs WHERE connection_id >= uid(2, 100001)'),
	'16000',
	'one row per connection');
is($node->safe_psql('postgres', 'SELECT good_pairs(100001, 116000)'),
	'16000', 'every row has its connect and disconnect time');

###########################################################################
# kill -9 of a regular backend: the postmaster resets shared memory.
###########################################################################
reload_conf($node,
	'connlog.batch_size' => '100000',
	'connlog.flush_interval' => '1h');
# 1000 flushed events (pairs 200001..200500), then 1000 left in the ring
$node->safe_psql('postgres',
	'SELECT pair(n) FROM generate_series(200001, 200500) n; SELECT connlog_flush()');
$node->safe_psql('postgres',
	'SELECT pair(n) FROM generate_series(200501, 201000) n');
$s = stats($node);
my $before = $s;
is($s->{pending}, 1000,
	'before the crash: 1000 events flushed, 1000 pending in the ring');
ok(identity_holds($s), 'accounting identity holds before the crash');

$log_offset = kill_backend($node);

is($node->safe_psql('postgres', 'SELECT good_pairs(200001, 200500)'),
	'500', 'after the crash: every flushed event is in connection_logs');
my $survived = $node->safe_psql('postgres',
	'SELECT count(*) FROM connection_logs WHERE connection_id BETWEEN uid(2, 200501) AND uid(2, 201000)'
);
my $lost = $before->{pending} - 2 * $survived;
note "crash restart: $lost of $before->{pending} un-flushed events were lost";
is($lost, 1000,
	'the crash restart lost exactly the 1000 events still in the ring');
ok( $node->log_contains(
		qr/WARNING:  connlog lost 1000 events that were not written yet\n.*DETAIL:  Shared memory is being reinitialized after a crash\./,
		$log_offset),
	'the server log says how many events the crash restart lost');
$s = stats($node);
is_deeply([ @$s{qw(enqueued pending)} ],
	[ 0, 0 ], 'the crash reset shared memory: counters start from zero');

# the fresh ring works
$node->safe_psql('postgres',
	'SELECT pair(n) FROM generate_series(300001, 300100) n; SELECT connlog_flush()');
is($node->safe_psql('postgres', 'SELECT good_pairs(300001, 300100)'),
	'100', 'events enqueued after the crash restart are written');
$s = stats($node);
is_deeply(
	[ @$s{qw(enqueued merged written pending dropped)} ],
	[ 200, 100, 100, 0, 0 ],
	'200 events after the crash: 100 rows written, 100 merged');
ok(identity_holds($s), 'accounting identity holds after the crash');

$node->stop;
done_testing();
