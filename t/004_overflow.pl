# A full ring (connlog.ring_size at its 64kB minimum, the worker held back
# by a lock on connection_logs) under each connlog.overflow: "wait" waits
# enqueue_timeout and then raises an ERROR, or succeeds if space comes free
# in time; "error" raises at once; "drop" counts exactly the refused events
# as dropped.  Every event a caller was told was accepted is written.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

my $node = connlog_node('main', q{
connlog.ring_size = '64kB'
connlog.flush_interval = '100ms'
log_statement = none
});
$node->safe_psql('postgres',
	'CREATE EXTENSION connlog;' . $connlog_helpers . q{
-- Enqueue events first, first + 1, ... until one is refused: how many
-- were accepted, how long the refused call took, and its error.
CREATE FUNCTION fill(first bigint, OUT accepted bigint, OUT waited_ms float8,
                     OUT err text, OUT detail text)
LANGUAGE plpgsql AS $$
DECLARE t timestamptz;
BEGIN
  accepted := 0;
  WHILE accepted < 100000 LOOP
    t := clock_timestamp();
    BEGIN
      PERFORM ev(first + accepted);
    EXCEPTION WHEN insufficient_resources THEN
      waited_ms := extract(epoch FROM clock_timestamp() - t) * 1000;
      GET STACKED DIAGNOSTICS err = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
      RETURN;
    END;
    accepted := accepted + 1;
  END LOOP;
END $$;
-- the worker has found the extension once a flush returns
SELECT ev(9000000);
SELECT connlog_flush();
});

sub fill
{
	my ($first, $settings) = @_;
	my %r;
	@r{qw(accepted waited_ms err detail)} = split /\|/,
	  $node->safe_psql('postgres', "$settings SELECT * FROM fill($first)");
	return \%r;
}

is(stats($node)->{ring_size_bytes}, 65536, 'the ring is 64kB');

# Hold the worker back: it takes event 1 and waits for the lock.
my $locker = lock_table($node);
$node->safe_psql('postgres', 'SELECT ev(1)');
ok(worker_waits_for_lock($node),
	'the worker took an event and waits for the lock');
my $s0 = stats($node);

# overflow = wait
my $r = fill(2, "SET connlog.enqueue_timeout = '500ms';");
my $accepted = $r->{accepted};
note "the 64kB ring took $accepted events";
ok($accepted > 100, "wait: $accepted events accepted before the ring was full");
is($r->{err}, 'connlog ring is full', 'wait: then the ERROR');
is( $r->{detail},
	"The connlog worker's write is waiting for a relation lock. No space came free within connlog.enqueue_timeout (500 ms).",
	'wait: the ERROR says the worker waits for a lock, and names enqueue_timeout');
cmp_ok($r->{waited_ms}, '>=', 500,
	"wait: the refused call waited enqueue_timeout ($r->{waited_ms} ms)");
my $s = stats($node);
cmp_ok($s->{ring_size_bytes} - $s->{ring_used_bytes},
	'<', 200, 'the ring is full to within one event');
is($s->{enqueued} - $s0->{enqueued},
	$accepted, 'only the accepted events count as enqueued');

# overflow = error: no wait, though enqueue_timeout is a minute
$r = fill(100001,
	"SET connlog.overflow = 'error'; SET connlog.enqueue_timeout = '60s';");
is($r->{accepted}, 0, 'error: the first event is refused');
is($r->{err}, 'connlog ring is full', 'error: with the ERROR');
is( $r->{detail},
	"The connlog worker's write is waiting for a relation lock. connlog.overflow is \"error\".",
	'error: the ERROR says why and names connlog.overflow');
cmp_ok($r->{waited_ms}, '<', 30000,
	"error: at once, not after enqueue_timeout ($r->{waited_ms} ms)");

# overflow = drop: no error, and each refused event counts as dropped
$s0 = stats($node);
$node->safe_psql('postgres',
	"SET connlog.overflow = 'drop'; SELECT ev(n) FROM generate_series(200001, 200050) n"
);
$s = stats($node);
is( join(' ',
		map { "$_=" . ($s->{$_} - $s0->{$_}) } qw(enqueued dropped pending)),
	'enqueued=50 dropped=50 pending=0',
	'drop: 50 events refused without an error, counted as dropped');

# overflow = wait with room coming free in time: the call succeeds
my $waiter = $node->background_psql('postgres');
my $waiter_pid = $waiter->query_safe('SELECT pg_backend_pid()');
$waiter->query_until(qr/waiting/, q{
SET connlog.enqueue_timeout = '60s';
\echo waiting
SELECT ev(300001);
});
ok( $node->poll_query_until(
		'postgres', qq{
SELECT state = 'active' AND wait_event_type = 'Extension'
FROM pg_stat_activity WHERE pid = $waiter_pid}),
	'wait: a producer waits for room in the ring');
$locker->query_safe('COMMIT');
$locker->quit;
$waiter->query_safe('SELECT 1');
pass('wait: the waiting producer succeeds once the worker drains the ring');
$waiter->quit;

$node->safe_psql('postgres', 'SELECT connlog_flush()');
my $last = 1 + $accepted;
is($node->safe_psql('postgres', "SELECT rows_between(1, $last)"),
	$last, "all $last events accepted while the ring was full are written");
is( $node->safe_psql(
		'postgres',
		"SELECT rows_between($last + 1, 299999)"),
	'0', 'no refused or dropped event is written');
is($node->safe_psql('postgres', 'SELECT rows_between(300001, 300001)'),
	'1', 'the event that waited for room is written');
$s = stats($node);
my $enqueued = 1 + $last + 50 + 1;
is( join(' ', map { "$_=$s->{$_}" } qw(enqueued written merged rejected dropped pending)),
	"enqueued=$enqueued written=" . ($last + 2) . " merged=0 rejected=0 dropped=50 pending=0",
	'every event is written, or dropped by overflow = drop');
ok(identity_holds($s), 'accounting identity holds');
is($node->safe_psql('postgres', 'SELECT count(*) FROM connection_logs'),
	$last + 2, 'connection_logs has exactly those rows');

# Writes that keep failing fill the retry queue; the worker then stops
# draining, and a full ring says so.
$node->safe_psql('postgres',
	failing_trigger('refuse', raise => q{'refused by a test trigger'}));
reload_conf($node,
	'connlog.retry_queue_size' => '1',
	'connlog.max_retries' => '1000',
	'connlog.retry_interval' => '1h');
$node->safe_psql('postgres', 'SELECT ev(400001)');
ok( $node->poll_query_until(
		'postgres',
		"SELECT worker_state = 'retry queue full' FROM connlog_stats"),
	'failing writes: the retry queue fills');
$r = fill(400002, "SET connlog.overflow = 'error';");
ok($r->{accepted} > 100, 'failing writes: the ring fills');
is( $r->{detail},
	'Writes keep failing and the worker\'s retry queue is full (connlog.retry_queue_size batches); the last error was: refused by a test trigger (SQLSTATE P0001). connlog.overflow is "error".',
	'ring full: the error says writes keep failing');
$node->safe_psql('postgres', 'DROP TRIGGER refuse ON connection_logs');
reload_conf($node, 'connlog.retry_interval' => '10ms');
$node->safe_psql('postgres', 'SELECT connlog_flush()');
is( $node->safe_psql(
		'postgres',
		'SELECT rows_between(400001, 400001 + ' . $r->{accepted} . ')'),
	1 + $r->{accepted},
	'trigger gone: every event held back is written');
is( counters_identity(
		$node, 'postgres', qw(dropped rejected pending worker_state)),
	'50|0|0|idle|t',
	'nothing more dropped or rejected; accounting identity holds');

$node->stop;
done_testing();
