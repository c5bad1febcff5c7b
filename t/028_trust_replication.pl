# What a LOGIN REPLICATION role (not a superuser, no privilege on
# connlog's tables) can do to connlog.durability, each attack mounted as
# that role:
#
#  1. pg_basebackup, which copies the data directory, then logical
#     messages in every layout connlog ever read, with prefix "connlog":
#     after a crash restart none becomes a row (connlog's records belong to
#     its own WAL resource manager, which SQL cannot write, and there is no
#     key to copy).
#  2. pg_replication_slot_advance() and pg_drop_replication_slot() on slot
#     "connlog" while the worker runs: refused, the worker holds the slot.
#  3. the slot moved while no worker holds it (connlog.database names a
#     database that does not exist, so the worker waits without the slot):
#     the next worker sees it at once and sets it back.  With the WAL still
#     there nothing is lost and the WARNING says so; with the WAL removed
#     by a checkpoint, the WARNING names the move and the count, dropped
#     counts exactly the events lost, and the accounting identity holds.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

my $node = connlog_node('replication', q{
connlog.batch_size = 100000
connlog.flush_interval = '1h'
connlog.shutdown_timeout = 0
log_statement = none
}, allows_streaming => 1);
$node->safe_psql('postgres',
	'CREATE EXTENSION connlog; CREATE ROLE rep LOGIN REPLICATION;'
	  . $connlog_helpers
	  . 'SELECT ev(0); SELECT connlog_flush();');
my $roles_sql = q{SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls,
  (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid)
FROM pg_roles r WHERE rolname = 'rep'};
my $privs_sql = q{SELECT has_table_privilege('rep', 'connection_logs', 'INSERT, UPDATE, DELETE'),
  has_table_privilege('rep', 'connlog_wal_progress', 'SELECT, UPDATE')};
my $roles_before = $node->safe_psql('postgres', $roles_sql);
is($node->safe_psql('postgres', $privs_sql),
	'f|f', 'rep has no privilege on connlog\'s tables');
my $as_rep = [ '-U', 'rep' ];

# ---- 1. a base backup, then forged logical messages ----
$node->safe_psql('postgres',
	'SET connlog.durability = flush; SELECT pair(n) FROM generate_series(1, 50) n'
);
$node->backup('rep_bk', backup_options => $as_rep);
my $bk = $node->backup_dir . '/rep_bk';
ok(-f "$bk/PG_VERSION", 'rep made a base backup');
ok(!-e "$bk/connlog_wal.key" && !-e $node->data_dir . '/connlog_wal.key',
	'there is no key in the backup or in the data directory');

my $epoch =
  $node->safe_psql('postgres', 'SELECT epoch FROM connlog_wal_progress');
my $t = 757382400000000;    # 2024-01-01 00:00:00+00
my $emit = sub {
	my ($prefix, $payload, $transactional) = @_;
	$node->safe_psql(
		'postgres',
		"SELECT pg_logical_emit_message($transactional, '$prefix', '\\x"
		  . unpack('H*', $payload) . "'::bytea) IS NOT NULL",
		extra_params => $as_rep);
};
my $legacy = legacy_record(n => 901, time => $t, ws => 'x');
# the layout a MAC-keyed connlog read, under a made-up and this life's
# epoch, transactional or not
$emit->('connlog', $legacy, 'false');
$emit->('connlog',
	legacy_record(n => 902, time => $t, ws => 'x', epoch => $epoch),
	'true');
# the layout of connlog's own records (epoch, seq, ring record), as a
# message: still a message, never one of connlog's records
$emit->('connlog', substr($legacy, 0, 16) . substr($legacy, 32), 'false');
# other prefixes: nothing to connlog
$emit->('connlog_wal', $legacy, 'false');
$emit->('', $legacy, 'false');
$node->safe_psql('postgres',
	'SET connlog.durability = flush; SELECT pair(n) FROM generate_series(51, 100) n'
);

my $offset = crash_restart($node);
$node->safe_psql('postgres', 'SELECT connlog_flush()');
is($node->safe_psql('postgres', 'SELECT good_pairs(1, 100)'),
	'100', 'the 200 genuine events were replayed and written');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM connection_logs WHERE workspace_name = 'x' OR connection_id BETWEEN uid(2, 900) AND uid(2, 999)"
	),
	'0',
	'no forged message became a row');
ok( $node->log_contains(
		qr/WARNING:  connlog did not write 3 events from logical messages with prefix "connlog"/,
		$offset),
	'the three "connlog" messages in a layout connlog once read are counted');
ok($node->log_contains(qr/connlog replayed 200 events from WAL/, $offset),
	'the replay wrote only the genuine events');
is(connlog_counts($node), '200|100|100|0|0|0|t',
	'200 events enqueued (replayed), none dropped; the identity holds');

# ---- 2. the slot while the worker runs ----
my $worker = worker_pid($node);
is( $node->safe_psql(
		'postgres',
		"SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'connlog'"
	),
	$worker,
	'the worker holds slot connlog');
my $restart_lsn = $node->safe_psql('postgres',
	"SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'connlog'");
for my $sql ("SELECT pg_replication_slot_advance('connlog', pg_current_wal_lsn())",
	"SELECT pg_drop_replication_slot('connlog')")
{
	my ($ret, $out, $err) =
	  $node->psql('postgres', $sql, extra_params => $as_rep);
	like(
		$err,
		qr/ERROR:  replication slot "connlog" is active for PID $worker/,
		"refused while the worker holds the slot: $sql");
}
is( $node->safe_psql(
		'postgres',
		"SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'connlog'"
	),
	$restart_lsn,
	'the slot did not move');
# a worker that exits lets go of the slot, and its successor takes it
terminate_worker($node) or die 'no new worker';
$node->safe_psql('postgres',
	'SET connlog.durability = flush; SELECT pair(101); SELECT connlog_flush()');
is( $node->safe_psql(
		'postgres',
		"SELECT active_pid = (SELECT pid FROM pg_stat_activity WHERE backend_type = 'connlog worker') FROM pg_replication_slots WHERE slot_name = 'connlog'"
	),
	't',
	'the next worker holds the slot');

# ---- 3. the slot moved while no worker holds it ----
# Events left pending: the worker holds them for flush_interval (1 h), and
# with shutdown_timeout = 0 the stopping worker leaves them to WAL and
# stores how many (pending_at_exit).  Then connlog.database names a
# database that does not exist: the next worker waits for it, without the
# slot.
sub leave_pending
{
	my ($lo, $hi) = @_;
	$node->safe_psql('postgres',
		"SET connlog.durability = flush; SELECT pair(n) FROM generate_series($lo, $hi) n"
	);
	$node->stop('fast');
	$node->adjust_conf('postgresql.conf', 'connlog.database', "'nosuchdb'");
	$node->start;
	is( $node->safe_psql(
			'postgres',
			"SELECT active FROM pg_replication_slots WHERE slot_name = 'connlog'"
		),
		'f',
		"$lo: no worker holds the slot while it waits for its database");
	return;
}

sub back_to_work
{
	$node->adjust_conf('postgresql.conf', 'connlog.database', "'postgres'");
	$node->stop('fast');
	my $offset = -s $node->logfile;
	$node->start;
	wait_for_worker($node);
	$node->safe_psql('postgres', 'SELECT connlog_flush()');
	return $offset;
}

# a. moved, but no checkpoint has removed the WAL yet
leave_pending(1001, 1010);
my $done = $node->safe_psql('postgres',
	'SELECT done_lsn, pending_at_exit FROM connlog_wal_progress');
my ($done_lsn, $pending) = split /\|/, $done;
is($pending, '20', 'the exiting worker left 20 events');
my $moved = $node->safe_psql('postgres',
	"SELECT end_lsn FROM pg_replication_slot_advance('connlog', pg_current_wal_lsn())",
	extra_params => $as_rep);
$offset = back_to_work();
ok( $node->log_contains(
		qr/WARNING:  replication slot "connlog" was moved from $done_lsn to $moved by another session\n.*DETAIL:  connlog set it back to $done_lsn; no WAL had been removed since, so no event was lost\./,
		$offset),
	'a: the move is detected at once and set back, and nothing was lost');
is($node->safe_psql('postgres', 'SELECT good_pairs(1001, 1010)'),
	'10', 'a: the 20 events are replayed and written');
is(connlog_counts($node), '20|10|10|0|0|0|t',
	'a: nothing dropped; the identity holds');

# b. moved, and the WAL of the pending events removed by a checkpoint
leave_pending(2001, 2010);
($done_lsn, $pending) = split /\|/,
  $node->safe_psql('postgres',
	'SELECT done_lsn, pending_at_exit FROM connlog_wal_progress');
is($pending, '20', 'the exiting worker left 20 events');
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
$moved = $node->safe_psql('postgres',
	"SELECT end_lsn FROM pg_replication_slot_advance('connlog', pg_current_wal_lsn())",
	extra_params => $as_rep);
# the operator's routine checkpoint removes the WAL the slot let go
$node->safe_psql('postgres', 'CHECKPOINT');
$offset = back_to_work();
ok( $node->log_contains(
		qr/WARNING:  replication slot "connlog" was moved from $done_lsn to $moved by another session; 20 events were lost\n.*DETAIL:  The WAL from $done_lsn to [0-9A-F\/]+ was removed while no connlog worker held the slot; 20 WAL-backed events were not written yet, 0 were read back from the WAL that is left, and the lost ones are counted as dropped\./,
			$offset),
	'b: the WARNING names the move and counts the 20 events lost');
is($node->safe_psql('postgres', 'SELECT rows_between(2001, 2010)'),
	'0', 'b: the lost events are not written');
is(connlog_counts($node), '20|0|0|0|20|0|t',
	'b: dropped counts exactly the 20 lost events; the identity holds');
is( $node->safe_psql(
		'postgres',
		"SELECT active_pid = (SELECT pid FROM pg_stat_activity WHERE backend_type = 'connlog worker') FROM pg_replication_slots WHERE slot_name = 'connlog'"
	),
	't',
	'b: the new worker holds the slot');

# new events are kept and written as before
$node->safe_psql('postgres',
	'SET connlog.durability = flush; SELECT pair(3001); SELECT connlog_flush()');
is($node->safe_psql('postgres', 'SELECT good_pairs(3001, 3001)'),
	'1', 'events enqueued afterwards are written');

is($node->safe_psql('postgres', $roles_sql),
	$roles_before, 'rep gained no role attribute or membership');
is($node->safe_psql('postgres', $privs_sql),
	'f|f', 'rep gained no privilege on connlog\'s tables');
$node->stop;

done_testing();
