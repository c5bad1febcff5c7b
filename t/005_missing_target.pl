# connlog.database, connlog.role or the extension missing when the server
# starts: the worker fails to connect once, then waits without restarting
# (a waiter polls pg_database and pg_authid; a connected worker polls for
# the extension), and once everything exists the waiting events are
# written.  Every worker start, exit and message is counted in the log.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

# the helpers each part installs with the extension
my $helpers = $connlog_helpers;

# Wait until process $pid has lived $secs seconds, or is gone; then say
# whether it is still there.
sub survives
{
	my ($node, $pid, $secs) = @_;
	$node->poll_query_until(
		'postgres', qq{
SELECT coalesce((SELECT clock_timestamp() - backend_start >= '$secs s'
                 FROM pg_stat_activity WHERE pid = $pid), true)})
	  or die "poll failed";
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE pid = $pid") eq '1';
}

my $starts = qr/DEBUG:  starting background worker process "connlog worker"/;
my $exits =
  qr/LOG:  background worker "connlog worker" \(PID \d+\) exited with exit code 1/;

###########################################################################
# The database does not exist yet, then the extension is missing.
###########################################################################
my $node = PostgreSQL::Test::Cluster->new('nodb');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'connlog'
connlog.database = 'logs'
connlog.flush_interval = '300ms'
log_min_messages = debug1
log_statement = none
});
$node->start;

$node->wait_for_log(qr/connlog worker is waiting: database "logs" does not exist/);
my $waiter = worker_pid($node);
ok(survives($node, $waiter, 3),
	'database missing: the waiter keeps running for 3 s (10 polls)');
is(count_lines($node, qr/FATAL:  database "logs" does not exist/),
	1, 'database missing: one failed connection attempt');
is(count_lines($node, $starts), 2,
	'database missing: two worker starts (the failed one, the waiter)');
is(count_lines($node, $exits), 1, 'database missing: one worker exit');

$node->safe_psql('postgres', 'CREATE DATABASE logs');
$node->wait_for_log(
	qr/extension connlog is not installed in database "logs"/);
my $worker = worker_pid($node);
isnt($worker, $waiter, 'database created: a new worker connected to it');
ok(survives($node, $worker, 3),
	'extension missing: the worker keeps running for 3 s (10 checks)');

# Enqueue in the transaction that creates the extension: the worker cannot
# see the extension before the commit, so the events wait in the ring.
my @out = split /\n/,
  $node->safe_psql(
	'logs', qq{
BEGIN;
CREATE EXTENSION connlog;
$helpers
SELECT count(*) FROM (SELECT pair(n) FROM generate_series(1, 200) n) p;
SELECT enqueued || ' ' || pending FROM connlog_stats;
COMMIT;
});
is($out[-1], '400 400',
	'extension missing: 400 events wait in the ring');
$node->safe_psql('logs', 'SELECT connlog_flush()');
is($node->safe_psql('logs', 'SELECT good_pairs(1, 200)'),
	'200', 'extension created: the waiting events are written');
is($node->safe_psql('logs', 'SELECT count(*) FROM connection_logs'),
	'200', 'one row per connection');
is( counters_identity(
		$node, 'logs', qw(enqueued written merged rejected dropped pending)),
	'400|200|200|0|0|0|t',
	'400 events: 200 rows written, 200 merged; accounting identity holds');

is(worker_pid($node), $worker, 'the same worker did it all');
is(count_lines($node, $starts), 3, 'three worker starts in all');
is(count_lines($node, $exits), 2,
	'two worker exits in all (the failed one, the waiter)');
for my $line (
	qr/FATAL:  database "logs" does not exist/,
	qr/LOG:  connlog worker is waiting: database "logs" does not exist/,
	qr/LOG:  connlog worker restarting to connect to database "logs"/,
	qr/LOG:  connlog worker started for database "logs"/,
	qr/LOG:  extension connlog is not installed in database "logs"/,
	qr/LOG:  connlog can write to database "logs" again; writing resumes/
  )
{
	is(count_lines($node, $line), 1, "logged once: $line");
}
$node->stop;

###########################################################################
# The role does not exist yet: events wait in the ring meanwhile.
###########################################################################
$node = connlog_node('norole', q{
connlog.role = 'connlog_writer'
connlog.flush_interval = '300ms'
log_min_messages = debug1
log_statement = none
});
$node->safe_psql('postgres', "CREATE EXTENSION connlog; $helpers");
$node->wait_for_log(
	qr/connlog worker is waiting: role "connlog_writer" does not exist/);
$waiter = worker_pid($node);
$node->safe_psql('postgres', 'SELECT pair(n) FROM generate_series(1, 200) n');
ok(survives($node, $waiter, 3),
	'role missing: the waiter keeps running for 3 s (10 polls)');
is($node->safe_psql('postgres', 'SELECT pending FROM connlog_stats'),
	'400', 'role missing: 400 events wait in the ring');

# one transaction: the waiter sees the role only with its privileges
$node->safe_psql(
	'postgres', qq{
BEGIN;
CREATE ROLE connlog_writer LOGIN;
$writer_grants
COMMIT;
});
$node->wait_for_log(qr/connlog worker started for database "postgres"/);
$node->safe_psql('postgres', 'SELECT connlog_flush()');
is($node->safe_psql('postgres', 'SELECT good_pairs(1, 200)'),
	'200', 'role created: the waiting events are written');
is( counters_identity(
		$node, 'postgres',
		qw(enqueued written merged rejected dropped pending write_errors)),
	'400|200|200|0|0|0|0|t',
	'400 events: 200 rows written, 200 merged, no write error; accounting identity holds');
is( $node->safe_psql(
		'postgres',
		"SELECT usename FROM pg_stat_activity WHERE backend_type = 'connlog worker'"
	),
	'connlog_writer',
	'the worker runs as connlog.role');
is(count_lines($node, qr/FATAL:  role "connlog_writer" does not exist/),
	1, 'role missing: one failed connection attempt');
is(count_lines($node, $starts), 3, 'three worker starts in all');
is(count_lines($node, $exits), 2,
	'two worker exits in all (the failed one, the waiter)');
$node->stop;

done_testing();
