# 32 concurrent producers (pgbench) enqueue four events for each of 8000
# connections (two connects, two disconnects, in varying order, from
# different sessions) while the worker writes small batches out of a small
# ring that wraps many times and fills up.  Pairs of connections share a
# connection_id and differ in agent_name, so only the whole conflict key
# tells them apart.  Every row must span the earliest connect and the
# latest disconnect, and the counters must add up exactly.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;
use IPC::Run;

my $nconn = 8000;
my $nevents = 4 * $nconn;
my $clients = 32;

my $node = connlog_node('main', qq{
connlog.ring_size = '256kB'
connlog.batch_size = 100
connlog.flush_interval = '20ms'
connlog.enqueue_timeout = '60s'
log_statement = none
max_connections = 50
});
$node->safe_psql(
	'postgres', qq{
CREATE EXTENSION connlog;
-- uid(k, n): a uuid that spells kind k and number n
CREATE FUNCTION uid(k int, n bigint) RETURNS uuid IMMUTABLE LANGUAGE sql AS
\$\$ SELECT (lpad(k::text, 8, '0') || '-0000-0000-0000-' || lpad(n::text, 12, '0'))::uuid \$\$;
-- connection c starts at t0(c)
CREATE FUNCTION t0(c bigint) RETURNS timestamptz IMMUTABLE LANGUAGE sql AS
\$\$ SELECT timestamptz '2024-01-01 00:00:00+00' + c * interval '1 min' \$\$;
-- Event e of connection c: 0 connects at t0, 1 connects again 1 s later,
-- 2 disconnects at t0 + 10 s, 3 disconnects at t0 + 11 s with a code and
-- a reason.  Connections 2m and 2m + 1 share connection_id m; agent_name
-- tells them apart.
CREATE FUNCTION cev(c bigint, e int) RETURNS void LANGUAGE sql AS \$\$
  SELECT connlog_enqueue(
    id => uid(3, c * 4 + e),
    event_time => t0(c) + (ARRAY[0, 1, 10, 11])[e + 1] * interval '1 s',
    organization_id => uid(10, 0), workspace_owner_id => uid(11, 0),
    workspace_id => uid(12, 0), workspace_name => 'dev',
    agent_name => CASE c % 2 WHEN 0 THEN 'main' ELSE 'side' END,
    type => 'ssh',
    status => CASE WHEN e < 2 THEN 'connected'
                   ELSE 'disconnected' END::connection_status,
    connection_id => uid(2, c / 2), ip => '10.1.2.3',
    code => CASE e WHEN 3 THEN 7 END,
    disconnect_reason => CASE e WHEN 3 THEN 'bye' END)
\$\$;
-- Slot k (1 .. 4n) is one event.  The first half of the slots holds the
-- first n/2 connections, each one's four events in consecutive slots (in
-- an order that depends on c, disconnects sometimes first): they meet in
-- one batch.  The second half holds the others, their events n/2 slots
-- apart: they meet only in the table, through the upsert.
CREATE FUNCTION slot(k bigint) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE
  n CONSTANT bigint := $nconn;
  j bigint := k - 1;
  c bigint;
  e int;
BEGIN
  IF j < 2 * n THEN
    c := j / 4;
    e := (j + c) % 4;
  ELSE
    j := j - 2 * n;
    c := n / 2 + j % (n / 2);
    e := (j / (n / 2) + c) % 4;
  END IF;
  PERFORM cev(c, e);
END \$\$;
CREATE SEQUENCE slots;
});

my $script = $node->basedir . '/006_producer.sql';
append_to_file($script, "SELECT slot(nextval('slots'));\n");
my ($out, $err) = ('', '');
my $pgbench = IPC::Run::start(
	[
		'pgbench', '-n', '-c', $clients, '-j', '4', '-t',
		$nevents / $clients,
		'-f', $script, '-h', $node->host, '-p', $node->port, 'postgres'
	],
	'>', \$out, '2>', \$err);

# While the producers run, the counters never go wrong: nothing is counted
# as accounted for before it was enqueued.
my ($samples, $bad) = (0, 0);
while ($pgbench->pumpable)
{
	my ($enqueued, $pending, $dropped, $rejected) = split /\|/,
	  $node->safe_psql('postgres',
		'SELECT enqueued, pending, dropped, rejected FROM connlog_stats');
	$samples++;
	$bad++
	  unless $pending >= 0
	  && $pending <= $enqueued
	  && $enqueued <= $nevents
	  && $dropped == 0
	  && $rejected == 0;
	$pgbench->pump_nb;
}
ok($pgbench->finish, "$clients producers finished without an error")
  or diag "pgbench: $err";
like($out, qr/number of transactions actually processed: $nevents\b/,
	"$nevents events enqueued");
note "$samples samples of connlog_stats while the producers ran";
is($bad, 0, 'while producing: 0 <= pending <= enqueued, nothing dropped');

$node->safe_psql('postgres', 'SELECT connlog_flush()');
my ($enqueued, $merged, $written, $rejected, $dropped, $pending, $batches,
	$write_errors, $ring_used)
  = split /\|/,
  $node->safe_psql('postgres',
	'SELECT enqueued, merged, written, rejected, dropped, pending, batches, write_errors, ring_used_bytes FROM connlog_stats'
  );
note "merged $merged, written $written in $batches batches";
is( "$enqueued $pending $rejected $dropped $write_errors $ring_used",
	"$nevents 0 0 0 0 0",
	"$nevents enqueued; none pending, rejected or dropped; no write errors; the ring is empty"
);
is($merged + $written, $nevents,
	'accounting identity: enqueued = merged + written (+ 0 + 0 + 0)');
cmp_ok($merged, '>', 0, 'some events were merged within a batch');
cmp_ok($written, '>', $nconn,
	'some connections were merged by the upsert, across batches');

is($node->safe_psql('postgres', 'SELECT count(*) FROM connection_logs'),
	$nconn, "$nconn rows: one per connection");
is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) FROM generate_series(0, $nconn - 1) c
JOIN connection_logs l
  ON l.connection_id = uid(2, c / 2)
 AND l.agent_name = CASE c % 2 WHEN 0 THEN 'main' ELSE 'side' END
WHERE l.connect_time = t0(c)
  AND l.disconnect_time = t0(c) + interval '11 s'
  AND l.code = 7 AND l.disconnect_reason = 'bye'}),
	$nconn,
	'every row has the earliest connect, the latest disconnect, its code and reason'
);

# "written" counts rows the upsert wrote: each inserted a row or updated
# one.  The worker reports its table statistics when it exits.
terminate_worker($node) or die 'no new worker';
is( $node->safe_psql(
		'postgres',
		"SELECT n_tup_ins || ' ' || n_tup_ins + n_tup_upd FROM pg_stat_user_tables WHERE relname = 'connection_logs'"
	),
	"$nconn $written",
	"the upserts inserted $nconn rows and inserted or updated $written");

$node->stop;
done_testing();
