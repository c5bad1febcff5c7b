# Writes that fail or wait: connection_logs locked while producers run,
# a trigger that fails the first N statements (retried; max_retries and
# retry_interval take effect on reload), and triggers that refuse some rows
# (those rows go to connection_logs_rejected, or are dropped when that
# table refuses them too, and every other row is written).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;
use IPC::Run;

my $node = connlog_node('main', q{
connlog.batch_size = 100
connlog.flush_interval = '500ms'
connlog.retry_interval = '100ms'
log_statement = none
max_connections = 40
});
$node->safe_psql('postgres',
	'CREATE EXTENSION connlog;' . $connlog_helpers . q{
CREATE SEQUENCE pairseq START 100001;
});
# the worker has found the extension (and prepared its statements) once a
# flush returns
$node->safe_psql('postgres',
	"SELECT ev(9000000, 'connected'); SELECT connlog_flush()");

# pairs lo..hi enqueued and flushed; returns the counters from before
sub flush_pairs
{
	my ($lo, $hi) = @_;
	my $s0 = stats($node);
	$node->safe_psql('postgres',
		"SELECT pair(n) FROM generate_series($lo, $hi) n; SELECT connlog_flush()");
	return $s0;
}

# ALTER SYSTEM + reload, then wait until a new session sees the values:
# the postmaster has then signalled the worker too.  Then one event and a
# flush: the worker has run its loop, applied the settings and sized its
# next batch by the new batch_size (the one it was filling keeps the old).
my $warmup = 9000000;	# ev(9000000) is the first one, above

sub set_conf
{
	my (%set) = @_;
	reload_conf($node, %set);
	$warmup++;
	$node->safe_psql('postgres',
		"SELECT ev($warmup, 'connected'); SELECT connlog_flush()");
}

###########################################################################
# connection_logs locked for 3 x flush_interval while producers run.
###########################################################################
my $s0 = stats($node);
my $locker = lock_table($node);
my $locker_pid = $locker->query_safe('SELECT pg_backend_pid()');

my $script = $node->basedir . '/003_producer.sql';
append_to_file($script, "SELECT pair(nextval('pairseq'));\n");
my ($out, $err) = ('', '');
# 4 x 500 pairs at 1000 pairs/s: ~2 s of producing, while the lock is held
# and after it is released
my $pgbench = IPC::Run::start(
	[
		'pgbench', '-n', '-c', '4', '-j', '2', '-t', '500', '-R', '1000',
		'-f', $script, '-h', $node->host, '-p', $node->port, 'postgres'
	],
	'>', \$out, '2>', \$err);

ok(worker_waits_for_lock($node),
	'the worker waits for the lock on connection_logs');
$node->poll_query_until(
	'postgres', qq{
SELECT clock_timestamp() - xact_start >=
       3 * current_setting('connlog.flush_interval')::interval
FROM pg_stat_activity WHERE pid = $locker_pid})
  or die 'lock not held long enough';
my $s = stats($node);
ok($s->{pending} > 0 && $s->{written} == $s0->{written},
	"while locked: nothing written, $s->{pending} events pending");
my ($ret, $stdout, $stderr) =
  $node->psql('postgres', "SELECT connlog_flush('200ms')");
like($stderr, qr/ERROR:  connlog_flush timed out/,
	'while locked: connlog_flush times out');
is( $node->safe_psql(
		'postgres',
		"SELECT wait_event_type FROM pg_stat_activity WHERE backend_type = 'connlog worker'"
	),
	'Lock',
	'after 3 x flush_interval the worker still waits, no error, no restart');
$locker->query_safe('COMMIT');

ok($pgbench->finish, 'producers finished without an error')
  or diag "pgbench: $err";
like($out, qr/number of transactions actually processed: 2000\b/,
	'all 2000 producer transactions ran');
$node->safe_psql('postgres', 'SELECT connlog_flush()');
is( moved($node, $s0, qw(enqueued pending rejected dropped write_errors)),
	'enqueued=4000 pending=0 rejected=0 dropped=0 write_errors=0',
	'after the lock: 4000 events enqueued, none pending, no write errors');
$s = stats($node);
is($s->{merged} + $s->{written} - $s0->{merged} - $s0->{written},
	4000, 'every event is written or merged into a written row');
ok(identity_holds(stats($node)), 'accounting identity holds');
is($node->safe_psql('postgres', 'SELECT rows_between(100001, 102000)'),
	'2000', 'one row per connection');
is($node->safe_psql('postgres', 'SELECT good_pairs(100001, 102000)'),
	'2000', 'every row has its connect and disconnect time');

###########################################################################
# A trigger fails the first N statements: retried, all written.
###########################################################################
$node->safe_psql(
	'postgres', q{
CREATE SEQUENCE stmt_seq;
CREATE TABLE fail_budget (n int);
INSERT INTO fail_budget VALUES (0);
}
	  . failing_trigger(
		'fail_first_n',
		each => 'STATEMENT',
		# sequences are not transactional: each failed attempt uses one up
		when => q{pg_catalog.nextval('public.stmt_seq') <=
         (SELECT n FROM public.fail_budget)},
		raise => q{'injected failure % of %',
      pg_catalog.currval('public.stmt_seq'), (SELECT n FROM public.fail_budget)},
		errcode => 'serialization_failure'));
# one flush of 400 events: 200 pairs, one batch of 200 rows
set_conf('connlog.batch_size' => '1000', 'connlog.flush_interval' => '1h',
	'connlog.max_retries' => '3');
$node->safe_psql('postgres',
	"UPDATE fail_budget SET n = 3; SELECT setval('stmt_seq', 1, false)");
$s0 = flush_pairs(1001, 1200);
is( moved(
		$node, $s0,
		qw(enqueued written merged rejected dropped pending batches write_errors retries)
	),
	'enqueued=400 written=200 merged=200 rejected=0 dropped=0 pending=0 batches=1 write_errors=3 retries=3',
	'3 failures, 3 retries of the one batch, then all 400 events written');
is($node->safe_psql('postgres', 'SELECT last_value FROM stmt_seq'),
	'4', 'the upsert ran 4 times');
like(
	$node->safe_psql('postgres', 'SELECT last_error FROM connlog_stats'),
	qr/^injected failure 3 of 3 \(SQLSTATE 40001\)$/,
	'last_error has the message and SQLSTATE of the last failure');
is($node->safe_psql('postgres', 'SELECT good_pairs(1001, 1200)'),
	'200', 'every row written with its connect and disconnect time');
ok(identity_holds(stats($node)), 'accounting identity holds');

# max_retries, reloaded to 1, bounds transient errors (40001) too: the
# first write and its one retry fail, then the batch is split; the split's
# first half fails as well (the third failure) and is halved again, as a
# transient error in a split does not stop it; the three parts are
# written, and no row is rejected, none having failed on its own.
set_conf('connlog.max_retries' => '1');
$node->safe_psql('postgres', "SELECT setval('stmt_seq', 1, false)");
$s0 = flush_pairs(1201, 1400);
is( moved(
		$node, $s0,
		qw(enqueued written merged rejected dropped pending batches write_errors retries)
	),
	'enqueued=400 written=200 merged=200 rejected=0 dropped=0 pending=0 batches=3 write_errors=3 retries=1',
	'max_retries 1 after reload: one retry of the transient error, then a split writes all, nothing rejected'
);
is($node->safe_psql('postgres', 'SELECT good_pairs(1201, 1400)'),
	'200', 'every row written with its connect and disconnect time');
ok(identity_holds(stats($node)), 'accounting identity holds');

# max_retries bounds the retries of a failure that is neither transient
# nor the rows' fault (P0001): with max_retries 3 and the first 3
# statements failing, the batch is retried 3 times, each retry numbered in
# the log, and its third retry writes it whole, nothing split.
set_conf('connlog.max_retries' => '3');
$node->safe_psql(
	'postgres', q{
UPDATE fail_budget SET n = 0;
CREATE SEQUENCE hard_seq;
}
	  . failing_trigger(
		'fail_first_3_hard',
		each => 'STATEMENT',
		when => q{pg_catalog.nextval('public.hard_seq') <= 3},
		raise => q{'injected hard failure'}));
my $retry_log_offset = -s $node->logfile;
$s0 = flush_pairs(3001, 3200);
is(moved($node, $s0, qw(written pending rejected batches write_errors retries)),
	'written=200 pending=0 rejected=0 batches=1 write_errors=3 retries=3',
	'max_retries 3, 3 hard failures: 3 retries, then the batch written whole');
my $retry_log = slurp_file($node->logfile, $retry_log_offset);
is( join(',', $retry_log =~ /DETAIL:  (Retry \d+ of \d+|The batch will be retried)\./g),
	'The batch will be retried,Retry 1 of 3,Retry 2 of 3',
	'each retry is numbered once in the log');
is($node->safe_psql('postgres', 'SELECT good_pairs(3001, 3200)'),
	'200', 'every row written with its connect and disconnect time');
$node->safe_psql('postgres',
	'DROP TRIGGER fail_first_3_hard ON connection_logs');

# retry_interval on reload: at 1h a failed batch waits in the retry queue
# (connlog_flush() does not hurry a retry), until the worker is told to
# exit: then it retries its whole queue at once.
set_conf('connlog.retry_interval' => '1h', 'connlog.max_retries' => '3');
$node->safe_psql('postgres',
	"UPDATE fail_budget SET n = 1; SELECT setval('stmt_seq', 1, false)");
$s0 = stats($node);
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT pair(n) FROM generate_series(1401, 1410) n; SELECT connlog_flush('1s')");
like($stderr, qr/connlog_flush timed out/,
	'retry_interval 1h after reload: the failed batch waits for its retry');
is(moved($node, $s0, qw(pending write_errors retries)),
	'pending=20 write_errors=1 retries=0', 'the batch waits in the retry queue');
terminate_worker($node) or die 'no new worker';
$node->safe_psql('postgres', 'SELECT connlog_flush()');
is( moved($node, $s0, qw(enqueued written merged pending rejected dropped retries)),
	'enqueued=20 written=10 merged=10 pending=0 rejected=0 dropped=0 retries=1',
	'pg_terminate_backend: the worker retries its queue before it exits, all written');
is($node->safe_psql('postgres', 'SELECT good_pairs(1401, 1410)'),
	'10', 'every row written with its connect and disconnect time');

# A batch retried after a later batch was written lands after it
# (doc/connlog.md, "How events become rows"): connection 1501's connect fails and waits in
# the retry queue while its disconnect is written; the retried connect only
# moves connect_time back, the disconnect's id stays.
$node->safe_psql('postgres', "SELECT setval('stmt_seq', 1, false)");
$s0 = stats($node);
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT ev(1501, 'connected'); SELECT connlog_flush('1s')");
like($stderr, qr/connlog_flush timed out/, 'the connect waits for its retry');
# this flush times out too, waiting for the retry, but writes the disconnect
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT ev(1501, 'disconnected'); SELECT connlog_flush('1s')");
$node->poll_query_until('postgres',
	'SELECT count(*) = 1 FROM connection_logs WHERE connection_id = uid(2, 1501)')
  or die 'the disconnect was not written';
is( $node->safe_psql(
		'postgres', q{
SELECT id = uid(4, 1501), connect_time = t0(1501) + interval '1 h'
FROM connection_logs WHERE connection_id = uid(2, 1501)}),
	't|t',
	'the disconnect, written while its connect waits for a retry, is a standalone row'
);
terminate_worker($node) or die 'no new worker';
$node->safe_psql('postgres', 'SELECT connlog_flush()');
is(moved($node, $s0, qw(enqueued written pending write_errors retries)),
	'enqueued=2 written=2 pending=0 write_errors=1 retries=1',
	'the connect is written by its retry');
is( $node->safe_psql(
		'postgres', q{
SELECT id = uid(4, 1501), connect_time = t0(1501),
       disconnect_time = t0(1501) + interval '1 h', disconnect_reason
FROM connection_logs WHERE connection_id = uid(2, 1501)}),
	't|t|t|bye',
	'the retried connect moves connect_time back; the disconnect\'s id stays');
$node->safe_psql('postgres', 'DROP TRIGGER fail_first_n ON connection_logs');

###########################################################################
# Triggers refuse rows matching a pattern: exactly those are rejected.
###########################################################################
$node->safe_psql(
	'postgres',
	failing_trigger(
		'refuse_poison',
		when =>
		  q{NEW.workspace_name LIKE 'poison%' OR NEW.workspace_name LIKE 'toxic%'},
		raise => q{'refusing workspace %', NEW.workspace_name},
		errcode => 'check_violation')
	  # connection_logs_rejected refuses the toxic ones too: they are dropped
	  . failing_trigger(
		'refuse_toxic',
		on => 'connection_logs_rejected',
		when => q{NEW.event->>'workspace_name' LIKE 'toxic%'},
		raise => q{'no room for %', NEW.event->>'workspace_name'}));
set_conf('connlog.max_retries' => '1', 'connlog.retry_interval' => '100ms');
$s0 = stats($node);
my $log_offset = -s $node->logfile;
# pairs 2001..2500: five poisoned pairs, three toxic connects on their own
$node->safe_psql(
	'postgres', q{
SELECT pair(n, CASE WHEN n IN (2007, 2123, 2250, 2251, 2499)
                    THEN 'poison-' || n ELSE 'dev' END)
FROM generate_series(2001, 2500) n;
SELECT ev(n, 'connected', 'toxic-' || n) FROM generate_series(2601, 2603) n;
SELECT connlog_flush();
});
is( moved($node, $s0, qw(enqueued written merged rejected dropped pending)),
	'enqueued=1003 written=495 merged=500 rejected=5 dropped=3 pending=0',
	'495 rows written, 5 rejected (pairs merged), 3 dropped');
ok(identity_holds(stats($node)), 'accounting identity holds');
is($node->safe_psql('postgres', 'SELECT good_pairs(2001, 2500)'),
	'495', 'every other pair written with its connect and disconnect time');
is($node->safe_psql('postgres', 'SELECT rows_between(2001, 2603)'),
	'495', 'no poisoned or toxic row in connection_logs');
is( $node->safe_psql(
		'postgres', q{
SELECT string_agg(event->>'workspace_name', ',' ORDER BY event->>'workspace_name')
FROM connection_logs_rejected}),
	'poison-2007,poison-2123,poison-2250,poison-2251,poison-2499',
	'exactly the poisoned rows are in connection_logs_rejected');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM connection_logs_rejected r,
  LATERAL (SELECT substr(r.event->>'workspace_name', 8)::bigint AS n) p
WHERE r.error = 'refusing workspace ' || (r.event->>'workspace_name')
                || ' (SQLSTATE 23514)'
  AND (r.event->>'id')::uuid = uid(3, p.n)
  AND (r.event->>'connection_id')::uuid = uid(2, p.n)
  AND r.event->>'status' = 'connected'
  AND (r.event->>'event_time')::timestamptz = t0(p.n)
  AND (r.event->>'connect_time')::timestamptz = t0(p.n)
  AND (r.event->>'disconnect_time')::timestamptz = t0(p.n) + interval '1 h'
  AND r.event->>'merged_events' = '2'
  AND r.event->>'disconnect_reason' = 'bye'
  AND r.event->>'ip' = '10.1.2.3'
  AND r.event->>'type' = 'ssh' AND r.event->>'agent_name' = 'main'
  AND (r.event->>'organization_id')::uuid = uid(10, 0)
  AND (r.event->>'workspace_owner_id')::uuid = uid(11, 0)
  AND (r.event->>'workspace_id')::uuid = uid(12, 0)}),
	'5',
	'each rejected row has the error with its SQLSTATE, its connect\'s id, status and time, and the merged span and reason'
);
my $log = slurp_file($node->logfile, $log_offset);
my @dropped = ($log =~
	  /WARNING:  connlog dropped 1 connection log events\n[^\n]*DETAIL:  The upsert failed \(refusing workspace toxic-\d+ \(SQLSTATE 23514\)\) and so did storing it in connection_logs_rejected \(no room for toxic-\d+ \(SQLSTATE P0001\)\)\./g
);
is(scalar(@dropped), 3,
	'the server log gives the reason for each of the 3 dropped events');

# doc/connlog.md's replay of rejected rows, once the trigger is gone
$node->safe_psql('postgres',
	'DROP TRIGGER refuse_poison ON connection_logs; ' . q{
WITH r AS (DELETE FROM connection_logs_rejected RETURNING event)
INSERT INTO connection_logs AS c (id, connect_time, organization_id,
  workspace_owner_id, workspace_id, workspace_name, agent_name, type, ip,
  code, user_agent, user_id, slug_or_port, connection_id, disconnect_time,
  disconnect_reason)
SELECT e.id, e.connect_time, e.organization_id, e.workspace_owner_id,
  e.workspace_id, e.workspace_name, e.agent_name, e.type, e.ip, e.code,
  e.user_agent, e.user_id, e.slug_or_port, e.connection_id,
  e.disconnect_time, e.disconnect_reason
FROM r, jsonb_populate_record(NULL::connlog_batch_row, r.event) e
ON CONFLICT (connection_id, workspace_id, agent_name) DO UPDATE SET
  connect_time = LEAST(c.connect_time, excluded.connect_time),
  disconnect_time = GREATEST(c.disconnect_time, excluded.disconnect_time),
  code = COALESCE(c.code, excluded.code),
  disconnect_reason = COALESCE(c.disconnect_reason, excluded.disconnect_reason);
});
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FROM connection_logs WHERE workspace_name LIKE 'poison-%'}
	),
	'5',
	'replay: the 5 rejected rows are written');
is( $node->safe_psql(
		'postgres',
		'SELECT good_pairs(2001, 2500), count(*) FROM connection_logs_rejected'),
	'500|0',
	'replay: each with its span and reason, and connection_logs_rejected is empty'
);

###########################################################################
# Told to exit while its write waits for a lock: the worker cancels that
# write, tries it once more within shutdown_timeout, leaves what still
# cannot be written in the ring (and logs why), and is gone in time for its
# successor, which writes it.
###########################################################################
set_conf('connlog.shutdown_timeout' => '1s', 'connlog.flush_interval' => '200ms');
$s0 = stats($node);
my $holder = lock_table($node);
$node->safe_psql('postgres',
	'SELECT pair(n) FROM generate_series(400001, 400010) n');
worker_waits_for_lock($node) or die 'the worker does not wait for the lock';
$log_offset = -s $node->logfile;
ok(terminate_worker($node),
	'a worker blocked on a lock exits when told to, and a new one starts');
$holder->query_safe('COMMIT');
$holder->quit;
$node->safe_psql('postgres', 'SELECT connlog_flush()');
is( moved($node, $s0, qw(enqueued written merged dropped pending)),
	'enqueued=20 written=10 merged=10 dropped=0 pending=0',
	'the 10 rows it could not write within shutdown_timeout are written by its successor'
);
ok( $node->log_contains(
		qr/WARNING:  connlog worker is exiting with 20 events not written\n[^\n]*DETAIL:  connlog.shutdown_timeout expired\./,
		$log_offset),
	'the server log says why they were left for the next worker');
ok(!$node->log_contains(qr/connlog dropped/, $log_offset),
	'nothing is logged as dropped');
ok(identity_holds(stats($node)), 'accounting identity holds');

$node->stop;
done_testing();
