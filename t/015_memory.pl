# The worker's memory stays flat: with connlog.log_events = on, 400 000
# events go through every path a batch can take (writes that fail and are
# retried, poison rows split out into connection_logs_rejected, retention
# purges, WAL-backed events and their progress, reloads that resize the
# batches), and the worker's anonymous RSS after the last 300 000 is within
# a few MB of what it was after the first 100 000.  A bound on growth, not
# a timing: a leak of even 20 bytes an event would exceed it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

# RssAnon may grow this much (kB) between the two measurements
my $slack_kb = 4096;
# and the bytes in use in its TopMemoryContext
my $slack_used = 16384;

my $node = connlog_node('memory', q{
connlog.log_events = on
connlog.durability = wal
connlog.batch_size = 2000
connlog.flush_interval = '100ms'
connlog.max_retries = 100
connlog.retry_interval = '10ms'
connlog.retention = '1d'
connlog.purge_interval = '1s'
connlog.purge_batch_size = 5000
log_statement = none
}, allows_streaming => 1);
$node->safe_psql('postgres',
	'CREATE EXTENSION connlog;' . $connlog_helpers . q{
-- a web event with a recent time, so that retention keeps its row: enqueued
-- again, it is a poison row (its id exists)
CREATE FUNCTION web(n bigint) RETURNS void LANGUAGE sql AS $$
  SELECT connlog_enqueue(
    id => uid(5, n), event_time => pg_catalog.now(),
    organization_id => uid(10, 0), workspace_owner_id => uid(11, 0),
    workspace_id => uid(12, 0), workspace_name => 'dev',
    agent_name => 'main', type => 'workspace_app', status => 'connected')
$$;
-- every other one of the next fail_budget statements on connection_logs
-- fails with an error that may be temporary: batches are retried, and
-- splits stop half way and go on at the next retry.  No batch fails
-- max_retries times, so none is split for it.
CREATE SEQUENCE stmt_seq;
CREATE TABLE fail_budget (n bigint);
INSERT INTO fail_budget VALUES (0);
}
	  . failing_trigger(
		'fail_some',
		each => 'STATEMENT',
		when => q{(SELECT s <= (SELECT n FROM public.fail_budget) AND s % 2 = 0
         FROM pg_catalog.nextval('public.stmt_seq') s)},
		raise => q{'injected failure'},
		errcode => 'serialization_failure')
	  . q{
SELECT web(n) FROM generate_series(1, 100) n;
SELECT connlog_flush();
});

my $pid = worker_pid($node);
ok($pid =~ /^\d+$/, 'the worker runs');

sub rss_anon_kb
{
	my $status = slurp_file("/proc/$pid/status");
	$status =~ /^RssAnon:\s+(\d+) kB/m
	  or die "no RssAnon in /proc/$pid/status";
	return $1;
}

# The bytes in use in the worker's TopMemoryContext itself, as
# pg_log_backend_memory_contexts() reports them in the server log: what is
# allocated there is never freed by a context reset.  (The other contexts
# vary with the moment: the report may come in the middle of a statement.)
sub top_context_used
{
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres',
		"SELECT pg_log_backend_memory_contexts($pid)");
	$node->wait_for_log(qr/\[$pid\] LOG:  Grand total: /, $offset);
	my $log = slurp_file($node->logfile, $offset);
	# the top level is numbered 1 from PostgreSQL 18, 0 before
	my $top = $node->pg_version >= 18 ? 1 : 0;
	$log =~
	  /\[$pid\] LOG:  level: $top; TopMemoryContext: \d+ total in \d+ blocks; \d+ free \(\d+ chunks\); (\d+) used/
	  or die "no TopMemoryContext line in the log";
	return $1;
}

# One cycle: 50 000 events (25 000 pairs) through every path, each part
# flushed.  The settings change every cycle and come back every third.
my @batch_sizes = (2000, 500, 5000);
my $next_pair = 1;
my $next_poison = 1;

sub cycle
{
	my ($k) = @_;
	reload_conf($node,
		'connlog.batch_size' => $batch_sizes[ $k % 3 ],
		'connlog.flush_interval' => (100 + 50 * ($k % 3)) . 'ms');
	my $pairs = sub {
		my ($n, $extra) = @_;
		my ($lo, $hi) = ($next_pair, $next_pair + $n - 1);
		$next_pair += $n;
		$node->safe_psql('postgres',
			"SELECT pair(n) FROM generate_series($lo, $hi) n; $extra"
			  . 'SELECT connlog_flush()');
	};
	my $fail = sub {
		$node->safe_psql('postgres',
			"SELECT setval('stmt_seq', 1, false); UPDATE fail_budget SET n = 60");
	};
	$pairs->(10000, '');
	# 30 failed statements: retries
	$fail->();
	$pairs->(5000, '');
	# five poison rows among the pairs, each split out and rejected, while
	# statements fail
	my $p = $next_poison;
	$next_poison += 5;
	$fail->();
	$pairs->(5000,
		'SELECT web(n) FROM generate_series(' . $p . ', ' . ($p + 4) . ') n; ');
	$pairs->(5000, '');
}

cycle($_) for 1 .. 2;
my $rss_100k = rss_anon_kb();
my $used_100k = top_context_used();
cycle($_) for 3 .. 8;
my $rss_400k = rss_anon_kb();
my $used_400k = top_context_used();

is(worker_pid($node), $pid, 'the same worker wrote all events');
my $s = stats($node);
is($s->{enqueued}, 100 + 8 * 50005, 'every event was enqueued');
ok(identity_holds($s),
	'enqueued = merged + written + rejected + dropped + pending');
is("$s->{rejected} $s->{dropped} $s->{pending}",
	'40 0 0', 'exactly the 40 poison rows rejected, none dropped or pending');
ok($s->{retries} > 0, 'failed batches were retried');
is($node->safe_psql('postgres', 'SELECT count(*) FROM connection_logs_rejected'),
	'40', 'connection_logs_rejected holds the 40 poison rows');
ok($node->safe_psql('postgres', 'SELECT purged > 0 FROM connlog_stats') eq 't',
	'retention purged rows meanwhile');
ok($node->log_contains('LOG:  connection_log \{"id":"00000003-'),
	'log_events wrote the events to the server log');

note("worker's TopMemoryContext: $used_100k bytes used after 100 000 events, "
	  . "$used_400k after 400 000");
cmp_ok($used_400k - $used_100k, '<=', $slack_used,
	"the worker's TopMemoryContext grew by at most $slack_used bytes over the last 300 000 events"
);
note("worker RssAnon: $rss_100k kB after 100 000 events, "
	  . "$rss_400k kB after 400 000");
cmp_ok($rss_400k - $rss_100k, '<=', $slack_kb,
	"the worker's anonymous RSS grew by at most $slack_kb kB over the last 300 000 events"
);

$node->stop;
done_testing();
