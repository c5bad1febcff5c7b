# Failover with connlog.durability: a hot standby's keeper (standby.c)
# holds the WAL of the events the primary had not written, so the promoted
# standby's worker writes every acknowledged event exactly once.
#
#  1. flush, synchronous standby, worker held back by flush_interval = 1h,
#     WAL rotated on both servers before the primary is killed.
#  4. the old primary rewound with pg_rewind and attached as a standby of
#     the new one: its keeper holds WAL for the new primary.
#  2. flush, the worker stalled by a locked table: part written before the
#     lock, the rest after the promotion of the rewound node, none twice.
#  3. wal, asynchronous standby that misses the last events: what is lost
#     is exactly the connlog records the standby never received.
use strict;
use warnings;
use File::Copy;
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

my $na = connlog_node('a', q{
connlog.batch_size = 100000
connlog.flush_interval = '1h'
wal_log_hints = on
wal_keep_size = 0
log_statement = none
max_connections = 40
}, allows_streaming => 1);
$na->safe_psql('postgres', 'CREATE EXTENSION connlog;' . $connlog_helpers);
# the slot and the progress exist before the base backup (restarted, the
# held-back worker finds the extension at once)
$na->restart;
$na->safe_psql('postgres',
	"SET connlog.durability = flush; SELECT pair(1); SELECT connlog_flush()");

# four sessions enqueue $per connect/disconnect pairs each, from $lo on
sub enqueue
{
	my ($node, $mode, $lo, $per, $tag) = @_;
	$node->pgbench(
		'-n -c 4 -j 4 -t 1',
		0,
		[qr/number of transactions actually processed: 4\b/],
		[qr/^$/],
		"$tag: four sessions enqueue " . (4 * $per) . " pairs in $mode mode",
		{
			"013_$tag" => qq{
SET connlog.durability = '$mode';
SELECT pair(n) FROM generate_series($lo + :client_id * $per, $lo + :client_id * $per + $per - 1) n;
}
		});
	return;
}

# the standby's slot "connlog" keeps WAL from the primary's done_lsn
sub wait_for_keeper
{
	my ($primary, $standby, $tag) = @_;
	$primary->wait_for_catchup($standby, 'replay',
		$primary->lsn('insert'));
	my $done = $primary->safe_psql('postgres',
		'SELECT done_lsn FROM connlog_wal_progress');
	ok( $standby->poll_query_until(
			'postgres',
			"SELECT restart_lsn = '$done' FROM pg_replication_slots WHERE slot_name = 'connlog'"
		),
		"$tag: the standby's keeper holds slot \"connlog\" at the primary's done_lsn $done"
	);
	return;
}

# five rounds of pg_switch_wal() + CHECKPOINT on the primary, and a
# restartpoint on the standby after each
sub rotate_wal
{
	my ($primary, $standby) = @_;
	for my $i (1 .. 5)
	{
		$primary->safe_psql('postgres', 'SELECT pg_switch_wal(); CHECKPOINT');
		$primary->wait_for_catchup($standby);
		$standby->safe_psql('postgres', 'CHECKPOINT');
	}
	return;
}

# promote, and wait until the worker has replayed and written everything;
# returns the log offset at the promotion
sub promote
{
	my ($node) = @_;
	my $offset = -s $node->logfile;
	$node->promote;
	wait_for_worker($node);
	$node->wait_for_log(qr/connlog replayed \d+ events from WAL/, $offset);
	$node->safe_psql('postgres', 'SELECT connlog_flush()');
	return $offset;
}

# connections lo..hi: rows, distinct connections, rows with exactly their pair
sub rows
{
	my ($node, $lo, $hi) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) || ' ' || count(DISTINCT connection_id) || ' ' || good_pairs($lo, $hi) FROM connection_logs WHERE connection_id BETWEEN uid(2, $lo) AND uid(2, $hi)"
	);
}

###########################################################################
# 1. flush, synchronous standby, the worker held back.
###########################################################################
$na->backup('bk_a');
my $nb = PostgreSQL::Test::Cluster->new('b');
$nb->init_from_backup($na, 'bk_a', has_streaming => 1);
$nb->start;
# A base backup starts in a new WAL segment, so a done_lsn from before it
# is not on the standby (standby.c, "the window before the slot first
# exists"): one more written event moves it into the standby's WAL.
$na->safe_psql('postgres',
	"SET connlog.durability = flush; SELECT pair(2); SELECT connlog_flush()");
$na->append_conf('postgresql.conf', "synchronous_standby_names = '*'\n");
$na->reload;
$na->poll_query_until('postgres',
	"SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = 'b'"
) or die 'b is not a synchronous standby';
wait_for_keeper($na, $nb, 'sync');

enqueue($na, 'flush', 10001, 1250, 'sync');
is($na->safe_psql('postgres', 'SELECT pending FROM connlog_stats'),
	'10000', 'sync: 10000 events acknowledged and not written');
# Until flush-mode enqueues wait for the synchronous standby as a commit
# does, make sure the standby has received their WAL: wait_for_catchup on
# the insert position (inside wait_for_keeper).
wait_for_keeper($na, $nb, 'sync, after the enqueues');
rotate_wal($na, $nb);
wait_for_keeper($na, $nb, 'sync, after five WAL switches and restartpoints');

$na->kill9;
my $offset = promote($nb);
is(rows($nb, 10001, 15000), '5000 5000 5000',
	'sync: all 10000 events are in connection_logs on the promoted standby, each once'
);
ok($nb->log_contains(qr/connlog replayed 10000 events from WAL/, $offset),
	'sync: the promoted worker replayed the 10000 events');
ok(!$nb->log_contains(qr/connlog cannot replay/, $offset),
	'sync: no WAL was missing');
ok($nb->wait_for_log(qr/connlog standby keeper exits: the server was promoted/,
		$offset),
	'sync: the keeper handed the slot to the worker');

###########################################################################
# 4. The old primary, rewound, follows the new one; nothing is written
#    twice and its keeper holds WAL for the new primary.
###########################################################################
# pg_rewind needs a clean shutdown: crash recovery in single-user mode,
# where no background worker runs, so nothing is written on the old
# timeline.
# The killed postmaster's children may still be exiting: until they are
# gone the lock file or the shared memory refuses a new server, so poll.
my ($out, $err);
for (my $tries = 0;; $tries++)
{
	($out, $err) = ('', '');
	last
	  if IPC::Run::run(
		[ 'postgres', '--single', '-D', $na->data_dir, 'postgres' ],
		'<', \'', '>', \$out, '2>', \$err);
	die "single-user mode failed: $err"
	  if $tries > 10 * $PostgreSQL::Test::Utils::timeout_default
	  || $err !~ /already exists|still in use/;
	usleep(100_000);
}
# pg_rewind copies the configuration of the source: keep a's own
my $conf = $na->data_dir . '/postgresql.conf';
my $keep = $na->basedir . '/postgresql.conf.keep';
copy($conf, $keep) or die $!;
command_ok(
	[
		'pg_rewind', '--target-pgdata', $na->data_dir,
		'--source-server', $nb->connstr('postgres')
	],
	'rewind: pg_rewind of the old primary from the new one');
move($keep, $conf) or die $!;
$na->append_conf('postgresql.conf', "synchronous_standby_names = ''\n");
$na->enable_streaming($nb);
my $aoffset = -s $na->logfile;
$na->start;
wait_for_keeper($nb, $na, 'rewind');
ok( $na->log_contains(
		qr/LOG:  connlog created replication slot "connlog"/, $aoffset),
	'rewind: pg_rewind removed the old slot; the keeper made it anew');
is(rows($na, 10001, 15000), '5000 5000 5000',
	'rewind: the rewound standby has each row once');
is(rows($nb, 1, 2), '2 2 2', 'rewind: the first two rows are there once');

###########################################################################
# 2. flush, the worker stalled by a locked table; a (rewound) is promoted.
###########################################################################
$nb->append_conf('postgresql.conf', "synchronous_standby_names = '*'\n");
reload_conf($nb, 'connlog.flush_interval' => '100ms');
$nb->poll_query_until('postgres',
	"SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = 'a'"
) or die 'a is not a synchronous standby';
enqueue($nb, 'flush', 20001, 500, 'lock, before');
$nb->safe_psql('postgres', 'SELECT connlog_flush()');
is(rows($nb, 20001, 22000), '2000 2000 2000',
	'lock: the first 4000 events are written');
my $locker = lock_table($nb);
enqueue($nb, 'flush', 30001, 500, 'lock, during');
worker_waits_for_lock($nb) or die 'the worker is not waiting for the lock';
# as in 1: the standby has the events' WAL (inside wait_for_keeper)
wait_for_keeper($nb, $na, 'lock');
rotate_wal($nb, $na);
wait_for_keeper($nb, $na, 'lock, after five WAL switches and restartpoints');

$nb->kill9;
$locker->quit;
$offset = promote($na);
is(rows($na, 20001, 22000), '2000 2000 2000',
	'lock: the events written before the lock are there once');
is(rows($na, 30001, 32000), '2000 2000 2000',
	'lock: the 4000 events stalled behind the lock are there once');
ok($na->log_contains(qr/connlog replayed 4000 events from WAL/, $offset),
	'lock: the promoted worker replayed only the 4000 unwritten events');
is(rows($na, 10001, 15000), '5000 5000 5000',
	'lock: the rows of case 1 are still there once');
ok(!$na->log_contains(qr/connlog cannot replay/, $offset),
	'lock: no WAL was missing');

###########################################################################
# 3. wal, asynchronous standby: the events lost are those whose WAL the
#    standby never received.
###########################################################################
$na->backup('bk_c');
my $nc = PostgreSQL::Test::Cluster->new('c');
$nc->init_from_backup($na, 'bk_c', has_streaming => 1);
$nc->start;
enqueue($na, 'wal', 40001, 250, 'async, received');
wait_for_keeper($na, $nc, 'async');
my $fork = $nc->safe_psql('postgres', 'SELECT pg_last_wal_replay_lsn()');
$nc->stop;
enqueue($na, 'wal', 50001, 100, 'async, not received');
my $insert = $na->lsn('insert');
$na->poll_query_until('postgres',
	"SELECT pg_current_wal_flush_lsn() >= '$insert'")
  or die 'the WAL writer did not flush';
my $tli = hex(substr($na->safe_psql('postgres',
	'SELECT pg_walfile_name(pg_current_wal_lsn())'), 0, 8));
$na->kill9;
$nc->start;
$offset = promote($nc);
is(rows($nc, 40001, 41000), '1000 1000 1000',
	'async: the 2000 events the standby received are there once');
ok($nc->log_contains(qr/connlog replayed 2000 events from WAL/, $offset),
	'async: the promoted worker says it replayed 2000 events');
is(rows($nc, 50001, 50400), '0 0 0',
	'async: the 800 events after the standby stopped are lost');
# the new primary cannot see them; the old primary's WAL after the last
# position the standby replayed holds exactly those records
my ($dump, $dumperr) = ('', '');
IPC::Run::run(
	[
		'pg_waldump', '--path', $na->data_dir . '/pg_wal',
		'--timeline', $tli, '--start', $fork, '--rmgr', 'custom187'
	],
	'>', \$dump, '2>', \$dumperr);
# pg_waldump, which cannot load connlog, names its resource manager by id
my $records = () = $dump =~ /^rmgr: custom187 /mg;
is($records, 800,
	'async: the old primary holds the 800 lost events after the standby\'s last position'
);

# a and b were killed
$nc->stop;
done_testing();
