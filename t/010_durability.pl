# connlog.durability: what a crash restart (kill -9 of a backend) loses in
# each mode, 50 000 events each; the library removed from
# shared_preload_libraries after WAL-backed events were written (the
# server starts, the events come back once it is loaded again, the slot
# can be dropped); a standby replays the WAL records and, promoted, starts
# its worker and writes the events the primary had not.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

# Nothing is written until connlog_flush() asks: the worker is held back.
my $node = connlog_node('main', q{
connlog.batch_size = 100000
connlog.flush_interval = '1h'
restart_after_crash = on
log_statement = none
max_connections = 40
}, allows_streaming => 1);
$node->safe_psql('postgres', 'CREATE EXTENSION connlog;' . $connlog_helpers);

# events of connections lo..hi that made it into connection_logs: a
# connect shows as its connect_time, a disconnect as its disconnect_time
sub events_present
{
	my ($lo, $hi) = @_;
	return $node->safe_psql(
		'postgres', qq{
SELECT (count(*) FILTER (WHERE l.connect_time = t0(n)))
     + (count(*) FILTER (WHERE l.disconnect_time = t0(n) + interval '1 h'))
FROM generate_series($lo, $hi) n
JOIN connection_logs l ON l.connection_id = uid(2, n)});
}

# five sessions enqueue pairs lo .. lo + 24999 (50 000 events) in $mode
sub enqueue_50k
{
	my ($mode, $lo) = @_;
	$node->pgbench(
		'-n -c 5 -j 5 -t 1',
		0,
		[qr/number of transactions actually processed: 5\b/],
		[qr/^$/],
		"$mode: five sessions enqueue 25000 connect/disconnect pairs",
		{
			"010_$mode" => qq{
SET connlog.durability = '$mode';
SELECT pair(n) FROM generate_series($lo + :client_id * 5000, $lo + :client_id * 5000 + 4999) n;
}
		});
}

# kill -9 a backend and wait for the crash restart and the new worker
sub crash
{
	my $offset = kill_backend($node);
	$node->safe_psql('postgres', 'SELECT connlog_flush()');
	return $offset;
}

###########################################################################
# 1. memory: the crash loses what the ring held, and says how much.
###########################################################################
enqueue_50k('memory', 1);
is(stats($node)->{pending}, 50000, 'memory: 50000 events pending before the crash');
my $offset = crash();
is(events_present(1, 25000), 0, 'memory: the crash lost all 50000 events');
ok( $node->log_contains(
		qr/WARNING:  connlog lost 50000 events that were not written yet\n.*DETAIL:  Shared memory is being reinitialized after a crash\./,
		$offset),
	'memory: the log says 50000 events were lost');
is( $node->safe_psql(
		'postgres', 'SELECT count(*) FROM pg_replication_slots'),
	'0', 'memory: no replication slot is created');

###########################################################################
# 2. flush: nothing is lost.
###########################################################################
enqueue_50k('flush', 100001);
is( $node->safe_psql(
		'postgres',
		"SELECT slot_type || ' ' || (restart_lsn IS NOT NULL) FROM pg_replication_slots WHERE slot_name = 'connlog'"
	),
	'physical true',
	'flush: the first WAL-backed enqueue made the worker create slot "connlog"');
is(stats($node)->{pending}, 50000, 'flush: 50000 events pending before the crash');
$offset = crash();
is(events_present(100001, 125000),
	50000, 'flush: after the crash all 50000 events are in connection_logs');
is($node->safe_psql('postgres', 'SELECT good_pairs(100001, 125000)'),
	'25000', 'flush: every row spans its connect and disconnect');
ok( $node->log_contains(
		qr/LOG:  connlog will replay 50000 WAL-backed events that were not written yet/,
		$offset),
	'flush: the postmaster says 50000 WAL-backed events will be replayed');
ok( $node->log_contains(
		qr/connlog read back from WAL all 50000 WAL-backed events that were not written yet at the crash/,
		$offset),
	'flush: the worker says it read all 50000 back');
ok(!$node->log_contains(qr/connlog lost \d+ events/, $offset),
	'flush: no loss is logged');
my $s = stats($node);
is_deeply(
	[ @$s{qw(enqueued pending dropped rejected)} ],
	[ 50000, 0, 0, 0 ],
	'flush: the 50000 replayed events count as enqueued, none pending');
is($s->{written} + $s->{merged}, 50000, 'flush: all written or merged');
is( $node->safe_psql(
		'postgres',
		"SELECT (SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'connlog') <= done_lsn FROM connlog_wal_progress"
	),
	't',
	'flush: the slot keeps WAL from at most connlog_wal_progress.done_lsn');

# a second crash right away replays nothing twice
$offset = crash();
is($node->safe_psql('postgres', 'SELECT count(*) FROM connection_logs WHERE connection_id BETWEEN uid(2, 100001) AND uid(2, 125000)'),
	'25000', 'flush: a second crash writes no row twice');
is(stats($node)->{enqueued}, 0, 'flush: nothing was left to replay after the second crash');

###########################################################################
# 3. wal: loses at most what had not left the WAL buffers, and says so.
###########################################################################
enqueue_50k('wal', 200001);
$offset = crash();
my $present = events_present(200001, 225000);
my $lost = 50000 - $present;
note "wal: $present of 50000 events survived the crash";
if ($lost == 0)
{
	ok( $node->log_contains(
			qr/connlog read back from WAL all 50000 WAL-backed events/,
			$offset),
		'wal: nothing lost, and the log says all 50000 were read back');
}
else
{
	ok( $node->log_contains(
			qr/connlog lost $lost WAL-backed events whose WAL had not been written when the server crashed/,
			$offset),
		"wal: the log says $lost events were lost, as many as are missing");
}

###########################################################################
# 4. The library removed from shared_preload_libraries after a crash,
#    with WAL-backed events after the last checkpoint: recovery cannot
#    replay connlog's records and the server does not start, with
#    PostgreSQL's own message; put back, it starts and the events return.
#    (t/029_trust_operator.pl tests the removal doc/connlog.md gives.)
###########################################################################
$node->safe_psql('postgres',
	"SET connlog.durability = flush; SELECT pair(n) FROM generate_series(300001, 300500) n"
);
$node->stop('immediate');
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "''");
$offset = -s $node->logfile;
ok(!$node->start(fail_ok => 1),
	'without the library, recovery through connlog records fails');
ok( $node->log_contains(
		qr/resource manager with ID 187 not registered/, $offset),
	'PostgreSQL says the resource manager is not registered');
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "'connlog'");
$offset = -s $node->logfile;
$node->start;
wait_for_worker($node);
$node->safe_psql('postgres', 'SELECT connlog_flush()');
is($node->safe_psql('postgres', 'SELECT good_pairs(300001, 300500)'),
	'500', 'with the library back, the 1000 events are replayed from WAL');
ok( $node->log_contains(qr/connlog replayed 1000 events from WAL/, $offset),
	'the worker logs the replay');

# an operator who removes the library for good drops the slot
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "''");
$node->restart;
$node->safe_psql('postgres', "SELECT pg_drop_replication_slot('connlog')");
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_replication_slots'),
	'0', 'without the library the slot can be dropped');
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "'connlog'");
$node->restart;

###########################################################################
# 5. pg_terminate_backend on the worker while flush-mode producers run:
#    each new worker reads WAL back from the stored progress, leaving out
#    the events written already (some start after done_lsn: producers
#    write their WAL records side by side, out of ring order) and those
#    the ring still holds, so every event is written and counted once.
###########################################################################
$node->safe_psql(
	'postgres', q{
ALTER SYSTEM SET connlog.batch_size = 200;
ALTER SYSTEM SET connlog.flush_interval = '10ms';
SELECT pg_reload_conf();
CREATE SEQUENCE pairseq START 600001;
});
my $before = stats($node);
my $script = $node->basedir . '/010_producer.sql';
append_to_file($script,
	"SET connlog.durability = flush;\nSELECT pair(nextval('pairseq'));\n");
my ($out, $err) = ('', '');
# 4 x 3000 pairs at 2000 pairs/s: about 6 s, time for three terminations
my $pgbench = IPC::Run::start(
	[
		'pgbench', '-n', '-c', '4', '-j', '2', '-t', '3000', '-R', '2000',
		'-f', $script, '-h', $node->host, '-p', $node->port, 'postgres'
	],
	'>', \$out, '2>', \$err);
for my $round (1 .. 3)
{
	$node->poll_query_until('postgres',
		"SELECT enqueued >= $before->{enqueued} + $round * 4000 FROM connlog_stats")
	  or die 'producers made no progress';
	$offset = -s $node->logfile;
	terminate_worker($node) or die 'no new worker';
	$node->wait_for_log(qr/connlog replayed \d+ events from WAL/, $offset);
	ok( $node->log_contains(qr/connlog replayed 0 events from WAL/, $offset),
		"round $round: the new worker replays no event the old one wrote");
}
ok($pgbench->finish, 'flush-mode producers finished without an error')
  or diag "pgbench: $err";
$node->safe_psql('postgres', 'SELECT connlog_flush()');
$s = stats($node);
is_deeply(
	[
		$s->{enqueued} - $before->{enqueued},
		@$s{qw(pending dropped rejected)}
	],
	[ 24000, 0, $before->{dropped}, 0 ],
	'24000 events, each counted once; none pending, dropped or rejected');
is( $node->safe_psql(
		'postgres',
		'SELECT count(*) FROM connection_logs WHERE connection_id BETWEEN uid(2, 600001) AND uid(2, 612000)'
	),
	'12000',
	'one row per connection');
is($node->safe_psql('postgres', 'SELECT good_pairs(600001, 612000)'),
	'12000', 'every row has its connect and disconnect time');

###########################################################################
# 6. A standby replays the WAL records; promoted, its worker starts and
#    writes the events the primary had not (its keeper held their WAL).
###########################################################################
# The standby streams through a slot of its own on the primary: without
# it a checkpoint of the primary may remove a segment before the standby
# has received it, once the worker has written its events.
$node->safe_psql('postgres',
	"SET connlog.durability = flush; SELECT ev(400000); SELECT connlog_flush(); "
	  . "SELECT pg_create_physical_replication_slot('standby')");
$node->backup('bk');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'bk', has_streaming => 1);
$standby->append_conf('postgresql.conf',
	"wal_keep_size = 0\nprimary_slot_name = 'standby'\n");
$standby->start;

$node->safe_psql('postgres',
	"SET connlog.durability = flush; SELECT pair(n) FROM generate_series(400001, 400500) n"
);
# move both servers' WAL on, so the standby removes the segments with
# those records at its restartpoints (the primary's slot keeps its own)
for my $i (1 .. 3)
{
	$node->safe_psql('postgres',
		"CREATE TABLE filler$i AS SELECT g FROM generate_series(1, 1000) g; SELECT pg_switch_wal(); CHECKPOINT");
	$node->wait_for_catchup($standby);
	$standby->safe_psql('postgres', 'CHECKPOINT');
}
ok(!$standby->log_contains(qr/ERROR|FATAL|PANIC/),
	'the standby replayed the connlog WAL records without an error');

$node->stop('immediate');
my $soffset = -s $standby->logfile;
$standby->promote;
wait_for_worker($standby);
$standby->safe_psql('postgres', 'SELECT connlog_flush()');
# the standby's keeper (standby.c) held the WAL: t/013_failover.pl has more
ok( !$standby->log_contains(qr/connlog cannot replay/, $soffset),
	'the promoted standby had the WAL of the events the primary had not written'
);
is($standby->safe_psql('postgres', 'SELECT good_pairs(400001, 400500)'),
	'500', 'the promoted standby wrote the 1000 events the primary had not');
$standby->safe_psql('postgres',
	"SET connlog.durability = flush; SELECT pair(500001); SELECT connlog_flush()");
is($standby->safe_psql('postgres', 'SELECT good_pairs(500001, 500001)'),
	'1', 'the promoted standby enqueues in flush mode and writes');

$standby->stop;
done_testing();
