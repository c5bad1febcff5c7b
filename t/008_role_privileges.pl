# connlog.role that cannot do what the worker needs.  A NOLOGIN role: one
# failed connection, then a waiter that rechecks pg_authid every
# flush_interval (no restart storm) and says why in last_error and
# worker_state.  A role without the privileges the statements need: the
# worker says which are missing, keeps every event in the ring, and writes
# them once they are granted; a privilege revoked while the worker runs
# holds the failed batch instead of rejecting or dropping it.  A full ring
# says why in its error.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

my $starts = qr/DEBUG:  starting background worker process "connlog worker"/;

###########################################################################
# A NOLOGIN role.
###########################################################################
my $node = connlog_role_node('nologin', 'NOLOGIN', q{
connlog.flush_interval = '200ms'
log_min_messages = debug1
log_statement = none
});
$node->safe_psql('postgres', "CREATE EXTENSION connlog; $connlog_helpers");
$node->safe_psql('postgres', $writer_grants);
$node->poll_query_until('postgres',
	"SELECT worker_state = 'role cannot log in' FROM connlog_stats")
  or die 'the worker never said the role cannot log in';
is( state_error($node),
	'role cannot log in|role "connlog_writer" is not permitted to log in',
	'NOLOGIN: worker_state and last_error say why');

$node->safe_psql('postgres', 'SELECT pair(n) FROM generate_series(1, 20) n');
my ($ret, $stdout, $stderr) =
  $node->psql('postgres', "SELECT connlog_flush('1 s')");
like(
	$stderr,
	qr/ERROR:  connlog_flush timed out\nDETAIL:  40 events enqueued before the call are not written yet\. The connlog worker is not writing \(role cannot log in\): role "connlog_writer" is not permitted to log in\./,
	'NOLOGIN: connlog_flush times out, and says why');

# 1 s of waiting is five checks: still one failed connection, two starts
is(count_lines($node, qr/FATAL:  role "connlog_writer" is not permitted to log in/),
	1, 'NOLOGIN: one failed connection attempt, no restart storm');
is(count_lines($node, $starts), 2,
	'NOLOGIN: two worker starts (the failed one, the waiter)');
is( count_lines(
		$node,
		qr/LOG:  connlog worker is waiting: role "connlog_writer" is not permitted to log in/
	),
	1,
	'NOLOGIN: the reason is logged once');
is(connlog_counts($node), '40|0|0|0|0|40|t', 'NOLOGIN: 40 events wait in the ring');

$node->safe_psql('postgres', 'ALTER ROLE connlog_writer LOGIN');
$node->safe_psql('postgres', 'SELECT connlog_flush()');
is($node->safe_psql('postgres', 'SELECT good_pairs(1, 20)'),
	'20', 'LOGIN granted: the waiting events are written');
is(connlog_counts($node), '40|20|20|0|0|0|t',
	'20 rows, 20 merged, nothing dropped or rejected');
is(state_error($node), 'idle|', 'writing: last_error is cleared');
$node->stop;

###########################################################################
# A role that can log in but lacks privileges; a small ring to fill.
###########################################################################
$node = connlog_role_node('privs', 'LOGIN', q{
connlog.flush_interval = '200ms'
connlog.ring_size = '64kB'
log_statement = none
});
$node->safe_psql('postgres', "CREATE EXTENSION connlog; $connlog_helpers");
$node->safe_psql('postgres', 'SELECT pair(n) FROM generate_series(1, 20) n');
$node->poll_query_until('postgres',
	"SELECT worker_state = 'missing privileges' FROM connlog_stats")
  or die 'the worker never said privileges are missing';
is( state_error($node),
	'missing privileges|role "connlog_writer" lacks SELECT, INSERT, UPDATE on table public.connection_logs and INSERT on table public.connection_logs_rejected and SELECT, UPDATE on table public.connlog_wal_progress (SQLSTATE 42501)',
	'no privileges: last_error names every missing one');

# INSERT and UPDATE are not enough: ON CONFLICT DO UPDATE reads the row
$node->safe_psql('postgres',
	'GRANT INSERT, UPDATE ON connection_logs TO connlog_writer');
$node->poll_query_until('postgres',
	q{SELECT last_error LIKE '%lacks SELECT on table public.connection_logs and INSERT%' FROM connlog_stats})
  or die 'the worker never noticed the GRANT';
pass('INSERT, UPDATE granted: SELECT and the rejected table still missing');
is(connlog_counts($node), '40|0|0|0|0|40|t',
	'missing privileges: all 40 events wait; none rejected or dropped');

# a full ring says why
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET connlog.overflow = 'error'; SELECT ev(n) FROM generate_series(100, 2000) n"
);
like(
	$stderr,
	qr/ERROR:  connlog ring is full\nDETAIL:  The connlog worker is not writing \(missing privileges\): role "connlog_writer" lacks SELECT/,
	'ring full: the error says the worker lacks privileges');
is( count_lines(
		$node,
		qr/WARNING:  connlog cannot write with the privileges of its role: role "connlog_writer" lacks SELECT, INSERT, UPDATE/
	),
	1,
	'each reason is logged once, however many checks');

$node->safe_psql('postgres',
	'GRANT SELECT ON connection_logs TO connlog_writer; '
	  . 'GRANT INSERT ON connection_logs_rejected TO connlog_writer; '
	  . 'GRANT SELECT, UPDATE ON connlog_wal_progress TO connlog_writer');
$node->safe_psql('postgres', 'SELECT connlog_flush()');
is($node->safe_psql('postgres', 'SELECT good_pairs(1, 20)'),
	'20', 'privileges granted: the waiting events are written');
my $accepted = $node->safe_psql('postgres',
	'SELECT count(*) FROM connection_logs WHERE connection_id >= uid(2, 100)');
ok($accepted > 100, "the ring held $accepted more events before it was full");
is( $node->safe_psql('postgres',
		'SELECT rejected, dropped, pending, worker_state FROM connlog_stats'),
	'0|0|0|idle',
	'nothing rejected, dropped or pending');

###########################################################################
# A privilege revoked while the worker runs: the batch waits, then lands.
###########################################################################
$node->safe_psql('postgres',
	'REVOKE UPDATE ON connection_logs FROM connlog_writer');
my $errors0 = $node->safe_psql('postgres', 'SELECT write_errors FROM connlog_stats');
$node->safe_psql('postgres',
	'SELECT pair(n) FROM generate_series(3001, 3030) n');
$node->poll_query_until('postgres',
	"SELECT worker_state = 'missing privileges' FROM connlog_stats")
  or die 'the worker never noticed the REVOKE';
($ret, $stdout, $stderr) =
  $node->psql('postgres', "SELECT connlog_flush('500ms')");
like($stderr, qr/connlog_flush timed out/,
	'UPDATE revoked: the batch is not written');
like(
	$node->safe_psql('postgres', 'SELECT last_error FROM connlog_stats'),
	qr/UPDATE on table public\.connection_logs|permission denied for table connection_logs/,
	'UPDATE revoked: last_error says so');
is( $node->safe_psql('postgres',
		'SELECT rejected, dropped, pending FROM connlog_stats'),
	'0|0|60',
	'UPDATE revoked: 60 events held, none rejected or dropped');
$node->safe_psql('postgres',
	'GRANT UPDATE ON connection_logs TO connlog_writer');
$node->safe_psql('postgres', 'SELECT connlog_flush()');
is($node->safe_psql('postgres', 'SELECT good_pairs(3001, 3030)'),
	'30', 'UPDATE granted again: the held events are written');
is( counters_identity(
		$node, 'postgres',
		qw(rejected dropped pending), "write_errors > $errors0"),
	'0|0|0|t|t',
	'nothing rejected or dropped; the refused writes count as write_errors');
$node->stop;

done_testing();
