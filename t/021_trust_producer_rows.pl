# A producer's poison rows (a role with EXECUTE on connlog_enqueue only
# can enqueue events the upsert refuses: a web event whose id exists, a
# workspace a trigger of the table refuses with a data error) cost a split
# of their batch, never retries, never a hold of other events; a worker
# that exits holds nothing back from its successor; nothing is counted
# twice.  The owner of an application's table is
# t/026_trust_owner_rows.pl.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

# ---- poison rows, restarts and accounting ----
{
	# Poison rows cost a split, not retries; a worker that exits holds
	# nothing back from its successor; nothing is counted twice.
	my $node = connlog_role_node('integrity', 'LOGIN', q{
connlog.batch_size = 100
connlog.flush_interval = '200ms'
connlog.max_retries = 3
connlog.retry_interval = '1h'
max_prepared_transactions = 2
wal_level = replica
max_replication_slots = 2
log_statement = none
});
	$node->safe_psql('postgres',
		"CREATE EXTENSION connlog; $connlog_helpers $writer_grants" . q{
CREATE FUNCTION web(n bigint) RETURNS void LANGUAGE sql AS $$
  SELECT connlog_enqueue(
    id => uid(5, n), event_time => t0(n), organization_id => uid(10, 0),
    workspace_owner_id => uid(11, 0), workspace_id => uid(12, 0),
    workspace_name => 'dev', agent_name => 'main', type => 'workspace_app',
    status => 'connected')
$$;
SELECT web(n) FROM generate_series(1, 10) n;
SELECT connlog_flush();
});
	my @names = qw(enqueued written merged rejected dropped pending retries);

	# 1. Ten web events whose id exists (23505), one every 50 pairs: each
	# is rejected by splitting its batch at once.  With retry_interval 1h a
	# batch sent to the retry queue would make connlog_flush() time out.
	my $s0 = stats($node);
	my $log_offset = -s $node->logfile;
	my ($ret, $out, $err) = $node->psql(
		'postgres', q{
SELECT pair(n), (SELECT web(n / 50 - 20) WHERE n % 50 = 0)
FROM generate_series(1001, 1500) n;
SELECT connlog_flush('20s');
});
	is($ret, 0, 'poison: connlog_flush returns, no batch waits for a retry')
	  or diag $err;
	# a pair split over two batches is two writes of its row: written and
	# merged vary, their sum does not
	my $s = stats($node);
	is( join(' ',
			(map { "$_=" . ($s->{$_} - $s0->{$_}) }
				  qw(enqueued rejected dropped pending retries)),
			'written+merged='
			  . ($s->{written} + $s->{merged} - $s0->{written} - $s0->{merged})),
		'enqueued=1010 rejected=10 dropped=0 pending=0 retries=0 written+merged=1000',
		'poison: 10 rejected without a retry, the 1000 other events written');
	is( $node->safe_psql(
			'postgres', q{
SELECT good_pairs(1001, 1500), count(*), count(*) FILTER (
  WHERE error LIKE '%(SQLSTATE 23505)'
    AND (event->>'id')::uuid BETWEEN uid(5, 1) AND uid(5, 10))
FROM connection_logs_rejected}),
		'500|10|10',
		'poison: every pair written, exactly the 10 duplicates rejected');
	ok( !$node->log_contains(qr/will be retried|Retry \d+ of/, $log_offset),
		'poison: no batch was queued for a retry');
	is( $node->safe_psql('postgres', 'SELECT worker_state FROM connlog_stats'),
		'idle', 'poison: worker_state is idle, not "retry queue full"');

	# 2. A privilege revoked, events enqueued, the worker terminated: the
	# events it held are not dropped, its successor writes them once the
	# privilege is back, and the log gives the real reason.
	$node->safe_psql('postgres',
		'REVOKE INSERT ON connection_logs FROM connlog_writer');
	$s0 = stats($node);
	$node->safe_psql('postgres',
		'SELECT pair(n) FROM generate_series(2001, 2015) n');
	$node->poll_query_until('postgres',
		"SELECT worker_state = 'missing privileges' FROM connlog_stats")
	  or die 'the worker never noticed the missing privilege';
	$log_offset = -s $node->logfile;
	terminate_worker($node) or die 'no new worker';
	$node->safe_psql('postgres',
		'GRANT INSERT ON connection_logs TO connlog_writer');
	$node->safe_psql('postgres', 'SELECT connlog_flush()');
	is( moved($node, $s0, @names),
		'enqueued=30 written=15 merged=15 rejected=0 dropped=0 pending=0 retries=0',
		'privilege: the 30 events the worker held are written by its successor');
	is($node->safe_psql('postgres', 'SELECT good_pairs(2001, 2015)'),
		'15', 'privilege: each pair written with its span');
	ok( $node->log_contains(
			qr/WARNING:  connlog worker is exiting with 30 events not written\n[^\n]*DETAIL:  connlog.role lacks a privilege that connlog's statements need\./,
			$log_offset),
		'privilege: the exiting worker names the missing privilege');
	ok( !$node->log_contains(qr/connlog dropped|as dropped|not installed/,
			$log_offset),
		'privilege: nothing is logged as dropped, nor the extension as missing');

	# 3. shutdown_timeout = 0 with connection_logs locked (by a prepared
	# transaction, which outlives the restart): the stopping worker leaves
	# the events to WAL, and the next life writes each once and counts
	# each once.
	reload_conf($node, 'connlog.shutdown_timeout' => '0');
	my $lo = 3001;
	for my $mode (qw(wal flush))
	{
		my $hi = $lo + 49;
		$node->safe_psql('postgres',
			"BEGIN; LOCK TABLE connection_logs IN ACCESS EXCLUSIVE MODE; PREPARE TRANSACTION 'lock'"
		);
		$node->safe_psql('postgres',
			"SET connlog.durability = $mode; SELECT pair(n) FROM generate_series($lo, $hi) n"
		);
		worker_waits_for_lock($node)
	  or die 'the worker does not wait for the lock';
		$log_offset = -s $node->logfile;
		$node->restart;
		$node->safe_psql('postgres', "COMMIT PREPARED 'lock'");
		$node->safe_psql('postgres', 'SELECT connlog_flush()');
		is( $node->safe_psql(
				'postgres',
				'SELECT enqueued, written, merged, rejected, dropped, pending FROM connlog_stats'
			),
			'100|50|50|0|0|0',
			"$mode: the next life replays the 100 events and counts each once");
		is( $node->safe_psql(
				'postgres',
				"SELECT good_pairs($lo, $hi), rows_between($lo, $hi)"),
			'50|50',
			"$mode: each pair written once");
		ok( $node->log_contains(
				qr/WARNING:  connlog worker is exiting with 100 events not written\n[^\n]*DETAIL:  connlog.shutdown_timeout expired\./,
				$log_offset),
			"$mode: the stopping worker says why it leaves them");
		ok( $node->log_contains(
				qr/LOG:  connlog will replay 100 WAL-backed events that were not written yet/,
				$log_offset),
			"$mode: the postmaster says they will be replayed");
		ok( $node->log_contains(
				qr/LOG:  connlog replayed 100 events from WAL/, $log_offset),
			"$mode: the next worker replays them");
		ok(!$node->log_contains(qr/connlog (?:dropped|lost)/, $log_offset),
			"$mode: nothing is logged as dropped or lost");
		$lo += 100;
	}

	# 4. Told to exit in the middle of a split, with part of the batch
	# written and its rejected row waiting for a lock: the successor writes
	# the batch again, and no event is counted twice.
	my $rejected0 = $node->safe_psql('postgres',
		'SELECT count(*) FROM connection_logs_rejected');
	$node->safe_psql(
		'postgres',
		failing_trigger(
			'refuse_poison',
			when => q{NEW.workspace_name = 'poison'},
			raise => q{'refusing a poisoned workspace'},
			errcode => 'check_violation'));
	# the trigger makes the worker prepare its statements again, which
	# reads every member: let it do so before the rejected table is locked
	$node->safe_psql('postgres', 'SELECT pair(5000); SELECT connlog_flush()');
	$node->safe_psql(
		'postgres', q{
BEGIN;
LOCK TABLE connection_logs_rejected IN ACCESS EXCLUSIVE MODE;
PREPARE TRANSACTION 'rejected';
});
	$s0 = stats($node);
	$node->safe_psql('postgres',
		"SELECT pair(n, CASE n WHEN 5020 THEN 'poison' ELSE 'dev' END) FROM generate_series(5001, 5020) n"
	);
	worker_waits_for_lock($node)
	  or die 'the worker does not wait for the lock';
	ok( $node->safe_psql('postgres', 'SELECT rows_between(5001, 5019)') > 0,
		'split: part of the batch is written when the worker is told to exit'
	);
	$log_offset = -s $node->logfile;
	terminate_worker($node) or die 'no new worker';
	$node->safe_psql('postgres', "COMMIT PREPARED 'rejected'");
	$node->safe_psql('postgres', 'SELECT connlog_flush()');
	$s = stats($node);
	is( join(' ',
			(map { "$_=" . ($s->{$_} - $s0->{$_}) }
				  qw(enqueued dropped pending)),
			'outcomes='
			  . ($s->{written} + $s->{merged} + $s->{rejected} -
				  $s0->{written} - $s0->{merged} - $s0->{rejected})),
		'enqueued=40 dropped=0 pending=0 outcomes=40',
		'split: each of the 40 events has one outcome, counted once');
	is( $node->safe_psql(
			'postgres', qq{
SELECT good_pairs(5001, 5019), rows_between(5001, 5020),
       count(*) - $rejected0,
       count(DISTINCT event->>'id') FILTER (WHERE event->>'workspace_name' = 'poison')
FROM connection_logs_rejected}),
		($s->{rejected} - $s0->{rejected}) == 1 ? '19|19|1|1' : '19|19|2|2',
		'split: the 19 good pairs written once, the poisoned one rejected once'
	);
	ok( $node->log_contains(
			qr/WARNING:  connlog worker is exiting with \d+ events not written\n[^\n]*DETAIL:  connlog.shutdown_timeout expired\./,
			$log_offset),
		'split: the exiting worker says why it leaves the batch');

	# 5. Read back from WAL after a crash, a web event whose row is there
	# already (the same id, time and workspace) is skipped, while another
	# event that reuses an existing id is rejected, as it would have been
	# the first time.
	$node->safe_psql('postgres', 'DROP TRIGGER refuse_poison ON connection_logs');
	$node->safe_psql(
		'postgres', q{
BEGIN;
LOCK TABLE connection_logs IN ACCESS EXCLUSIVE MODE;
PREPARE TRANSACTION 'webreplay';
});
	$node->safe_psql(
		'postgres', q{
SET connlog.durability = flush;
SELECT web(3);
SELECT connlog_enqueue(
  id => uid(5, 4), event_time => t0(9999), organization_id => uid(10, 0),
  workspace_owner_id => uid(11, 0), workspace_id => uid(12, 0),
  workspace_name => 'reused', agent_name => 'main', type => 'workspace_app',
  status => 'connected');
});
	$node->stop('immediate');
	$node->start;
	$node->safe_psql('postgres', "COMMIT PREPARED 'webreplay'");
	$node->safe_psql('postgres', 'SELECT connlog_flush()');
	is( $node->safe_psql(
			'postgres',
			'SELECT enqueued, written, rejected, dropped, pending FROM connlog_stats'),
		'2|1|1|0|0',
		'replay: the two web events read back from WAL have one outcome each');
	is( $node->safe_psql(
			'postgres', q{
SELECT (SELECT count(*) FROM connection_logs WHERE id IN (uid(5, 3), uid(5, 4))),
       (SELECT count(*) FROM connection_logs WHERE workspace_name = 'reused'),
       (SELECT count(*) FROM connection_logs_rejected
        WHERE event->>'workspace_name' = 'reused' AND error LIKE '%(SQLSTATE 23505)')}),
		'2|0|1',
		'replay: the event already written is skipped, the one reusing an id is rejected');

	# 6. A producer (EXECUTE on connlog_enqueue only) enqueues, alone in
	# its batch, a web event whose id exists.  That error is the row's own
	# (23505): it needs no evidence that the table takes other rows, so the
	# row is rejected at once, with no retry (retry_interval is 1 h) and no
	# batch held.
	$node->safe_psql(
		'postgres', q{
CREATE ROLE producer LOGIN;
GRANT EXECUTE ON FUNCTION connlog_enqueue(uuid, timestamptz, uuid, uuid,
	uuid, text, text, text, connection_status, uuid, inet, integer, text,
	uuid, text, text, jsonb) TO producer;
});
	$s0 = stats($node);
	$log_offset = -s $node->logfile;
	$node->safe_psql(
		'postgres', q{
SET ROLE producer;
SELECT connlog_enqueue(
  id => uid(5, 5), event_time => t0(8888), organization_id => uid(10, 0),
  workspace_owner_id => uid(11, 0), workspace_id => uid(12, 0),
  workspace_name => 'alone', agent_name => 'main', type => 'workspace_app',
  status => 'connected');
});
	($ret, $out, $err) =
	  $node->psql('postgres', "SELECT connlog_flush('20s')");
	is($ret, 0, 'alone: connlog_flush returns') or diag $err;
	is( moved($node, $s0, @names),
		'enqueued=1 written=0 merged=0 rejected=1 dropped=0 pending=0 retries=0',
		'alone: the lone poison row is rejected at once, without a retry');
	is( $node->safe_psql(
			'postgres', q{
SELECT (SELECT count(*) FROM connection_logs WHERE workspace_name = 'alone'),
       (SELECT count(*) FROM connection_logs_rejected
        WHERE event->>'workspace_name' = 'alone' AND error LIKE '%(SQLSTATE 23505)'),
       (SELECT rolsuper FROM pg_roles WHERE rolname = 'producer'),
       has_table_privilege('producer', 'connection_logs', 'INSERT')}),
		'0|1|f|f',
		'alone: no row, one rejected row, and the producer gained nothing');
	ok( !$node->log_contains(
			qr/will be retried|Retry \d+ of|connlog is holding rows/, $log_offset),
		'alone: no retry, nothing held');

	$node->stop;
}

done_testing();
