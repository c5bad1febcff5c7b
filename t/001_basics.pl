# Basics that need servers of their own: the worker in pg_stat_activity,
# settings that take effect on reload, the log_events line, and the errors
# pg_regress cannot provoke (library not preloaded, hot standby).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

my $node = connlog_node('primary', q{
connlog.flush_interval = '1h'
}, allows_streaming => 1);
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION connlog;
CREATE SEQUENCE evseq;
-- enqueue event number i (a fresh one by default)
CREATE FUNCTION ev(i bigint DEFAULT nextval('evseq'),
                   status connection_status DEFAULT 'connected')
RETURNS void LANGUAGE sql AS $$
  SELECT connlog_enqueue(
    id => ('00000000-0000-0000-0003-' || lpad(i::text, 12, '0'))::uuid,
    event_time => now(),
    organization_id => '00000000-0000-0000-0000-00000000000a',
    workspace_owner_id => '00000000-0000-0000-0000-00000000000b',
    workspace_id => '00000000-0000-0000-0000-00000000000c',
    workspace_name => 'dev', agent_name => 'main', type => 'ssh',
    status => status,
    connection_id => ('00000000-0000-0000-0002-' || lpad(i::text, 12, '0'))::uuid,
    ip => '10.1.2.3', disconnect_reason => 'client "closed"')
$$;
-- enqueue n fresh events, flush, and return the batches that took
CREATE FUNCTION batches_for(n int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE b0 bigint;
BEGIN
  SELECT batches INTO b0 FROM connlog_stats;
  PERFORM ev() FROM generate_series(1, n);
  PERFORM connlog_flush();
  RETURN (SELECT batches FROM connlog_stats) - b0;
END $$;
});

# The worker is a visible backend that sleeps on a wait event.
ok( $node->poll_query_until(
		'postgres',
		"SELECT backend_type || ' ' || wait_event_type FROM pg_stat_activity
		 WHERE backend_type = 'connlog worker'",
		'connlog worker Extension'),
	'worker shows in pg_stat_activity, waiting on an extension wait event');

# batch_size takes effect on reload: 100 events, then in batches of 10.
is($node->safe_psql('postgres', 'SELECT batches_for(100)'),
	'1', 'batch_size 1000: 100 events are one batch');
$node->safe_psql('postgres',
	"ALTER SYSTEM SET connlog.batch_size = 10; SELECT pg_reload_conf()");
ok($node->poll_query_until('postgres', 'SELECT batches_for(100) = 10'),
	'batch_size 10 after reload: 100 events are ten batches');

# flush_interval takes effect on reload: with 1h nothing is written without
# connlog_flush(); at 200ms an event shows up on its own.
$node->safe_psql('postgres',
	"ALTER SYSTEM SET connlog.flush_interval = '200ms'; SELECT pg_reload_conf()");
ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) > 0 FROM (SELECT ev(9000000 + nextval('evseq'))) e,
  LATERAL (SELECT 1 FROM connection_logs
           WHERE connection_id > '00000000-0000-0000-0002-000009000000') w}),
	'flush_interval 200ms after reload: events are written without a flush');

# log_events: one JSON line per event in the server log.
$node->safe_psql('postgres',
	"ALTER SYSTEM SET connlog.log_events = on; SELECT pg_reload_conf()");
my $logged = 0;
for my $try (1 .. 300)
{
	my $i = 800000 + $try;
	$node->safe_psql('postgres', "SELECT ev($i); SELECT connlog_flush()");
	if ($node->log_contains(sprintf('"id":"00000000-0000-0000-0003-%012d"', $i)))
	{
		$logged = $i;
		last;
	}
}
ok($logged, 'log_events writes the event to the server log');
like(
	slurp_file($node->logfile),
	qr/LOG:  connection_log \{"id":"00000000-0000-0000-0003-0*$logged","event_time":"[^"]+","organization_id":"00000000-0000-0000-0000-00000000000a","workspace_owner_id":"00000000-0000-0000-0000-00000000000b","workspace_id":"00000000-0000-0000-0000-00000000000c","workspace_name":"dev","agent_name":"main","type":"ssh","status":"connected","connection_id":"00000000-0000-0000-0002-0*$logged","ip":"10.1.2.3","disconnect_reason":"client \\"closed\\""\}/,
	'the log line is one JSON object with every non-NULL field');

# Every event so far is accounted for.
$node->safe_psql('postgres', 'SELECT connlog_flush()');
is(counters_identity($node, 'postgres', qw(pending dropped)),
	'0|0|t',
	'accounting identity holds and nothing is pending');

# A hot standby refuses events and runs no worker.
$node->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'b', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby);
my ($ret, $out, $err) = $standby->psql('postgres', 'SELECT ev(1)');
like(
	$err,
	qr/ERROR:  cannot enqueue connection log events during recovery/,
	'enqueue on a standby is refused');
is( $standby->safe_psql(
		'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'connlog worker'"),
	'0',
	'no worker runs on a standby');
($ret, $out, $err) = $standby->psql('postgres', 'SELECT connlog_flush()');
like($err, qr/ERROR:  connlog worker is not running/,
	'connlog_flush on a standby says the worker is not running');
$standby->stop;

# Without shared_preload_libraries the functions say what is missing.
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION connlog');
($ret, $out, $err) = $plain->psql('postgres',
	"SELECT connlog_enqueue(gen_random_uuid(), now(), gen_random_uuid(),
	 gen_random_uuid(), gen_random_uuid(), 'w', 'a', 'ssh', 'connected')");
like(
	$err,
	qr/ERROR:  connlog must be loaded via "shared_preload_libraries"/,
	'enqueue without shared_preload_libraries is refused');
($ret, $out, $err) = $plain->psql('postgres', 'SELECT * FROM connlog_stats');
like(
	$err,
	qr/ERROR:  connlog must be loaded via "shared_preload_libraries"/,
	'connlog_stats without shared_preload_libraries is refused');
$plain->stop;

$node->stop;
done_testing();
