# Security and integrity (issue 14): each attack is mounted as the role
# that could mount it, and each block asserts that the attack fails, that
# no role gained a privilege, and that no forged row exists.  Each block
# starts its own node and stops it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

# ---- forged WAL records (pg_logical_emit_message) and replay checks ----
# (section: wal)
#
# A role with no connlog privilege writes records in connlog's layout with
# pg_logical_emit_message() (executable by PUBLIC), without the key: after
# a restart none becomes a row.  Then the test, which can read the key
# file as the owner of the data directory, writes records with a valid
# MAC whose events connlog_enqueue refuses (event_time = infinity, a
# workspace_name that is not valid UTF-8): not written either.  One valid
# record with a valid MAC shows the MAC computed here is right.  Genuine
# events enqueued before the restart are replayed and written.
{
	use Digest::SHA qw(hmac_sha256);

	my $node = connlog_node('wal', q{
connlog.batch_size = 100000
connlog.flush_interval = '1h'
log_statement = none
}, allows_streaming => 1);
	$node->safe_psql('postgres', q{CREATE EXTENSION connlog;
CREATE ROLE mallory LOGIN;} . $connlog_helpers
		  . 'SELECT ev(0); SELECT connlog_flush();');
	my $roles_sql = q{SELECT rolname, rolsuper, rolcreaterole, rolcreatedb,
  rolreplication, rolbypassrls,
  (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid)
FROM pg_roles r WHERE rolname = 'mallory'};
	my $privs_sql = q{SELECT has_table_privilege('mallory', 'connection_logs', 'INSERT, SELECT, UPDATE, DELETE'),
  has_table_privilege('mallory', 'connlog_wal_progress', 'SELECT, UPDATE'),
  has_function_privilege('mallory', 'connlog_enqueue(uuid, timestamptz, uuid, uuid, uuid, text, text, connection_type, connection_status, uuid, inet, integer, text, uuid, text, text)', 'EXECUTE')};
	my $roles_before = $node->safe_psql('postgres', $roles_sql);
	is( $node->safe_psql('postgres', $privs_sql),
		'f|f|f', 'wal: mallory has no privilege on connlog');

	# genuine events, held in the ring (the worker waits for a flush); the
	# first makes the worker create the slot and store its progress
	$node->safe_psql('postgres',
		'SET connlog.durability = flush; SELECT pair(n) FROM generate_series(1, 50) n'
	);
	ok(-f $node->data_dir . '/connlog_wal.key',
		'wal: the postmaster created the key file');

	# A record: epoch, seq, MAC (16 bytes), then the ring record (batch.h),
	# in host byte order.  flags 0x01: a connection_id; type ssh, connected.
	sub wal_record
	{
		my (%e) = @_;
		my $uuid = sub { pack('H32', sprintf('%08d000000000000%012d', @_)) };
		my $rec = pack('q', $e{time})
		  . $uuid->(3, $e{n}) . $uuid->(10, 0) . $uuid->(11, 0)
		  . $uuid->(12, 0)
		  . pack('CCCCCSS', 1, 0, 0, 0, 0, length($e{ws}), 4)
		  . $uuid->(2, $e{n})
		  . $e{ws} . 'main';
		$rec = pack('L', 4 + length($rec)) . $rec;
		my $head = pack('QQ', 7, $e{n});
		my $mac =
		  defined $e{key}
		  ? substr(hmac_sha256($head . $rec, $e{key}), 0, 16)
		  : $e{mac};
		return $head . $mac . $rec;
	}
	# 2024-01-01 00:00:00+00 in microseconds since 2000-01-01
	my $t = 757382400000000;
	my $infinity = 9223372036854775807;
	my $emit = sub {
		my ($payload) = @_;
		return $node->safe_psql(
			'postgres',
			"SELECT pg_logical_emit_message(false, 'connlog', '\\x"
			  . unpack('H*', $payload) . "'::bytea) IS NOT NULL",
			extra_params => [ '-U', 'mallory' ]);
	};

	# without the key: no MAC, a zero MAC, and the layout before the MAC
	my $forged = wal_record(n => 901, time => $t, ws => 'x', mac => "\0" x 16);
	$emit->($forged);
	$emit->(wal_record(n => 902, time => $infinity, ws => 'x', mac => "\0" x 16));
	$emit->(pack('QQ', 7, 903) . substr($forged, 32));

	# with the key read from the data directory
	my $key = slurp_file($node->data_dir . '/connlog_wal.key');
	is(length($key), 32, 'wal: the key file holds 32 bytes');
	$emit->(wal_record(n => 904, time => $infinity, ws => 'x', key => $key));
	$emit->(wal_record(n => 905, time => $t, ws => "\xff\xfe", key => $key));
	$emit->(wal_record(n => 906, time => $t, ws => 'ok', key => $key));

	# more genuine events; flushing their WAL flushes the records above too
	$node->safe_psql('postgres',
		'SET connlog.durability = flush; SELECT pair(n) FROM generate_series(51, 100) n'
	);

	my $offset = -s $node->logfile;
	$node->stop('immediate');
	$node->start;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'connlog worker'"
	) or die 'no worker after the restart';
	$node->safe_psql('postgres', 'SELECT connlog_flush()');

	is($node->safe_psql('postgres', 'SELECT good_pairs(1, 100)'),
		'100', 'wal: the 200 genuine events were replayed and written');
	is($node->safe_psql('postgres', 'SELECT rows_between(901, 905)'),
		'0', 'wal: no forged record became a row');
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FROM connection_logs WHERE connect_time = 'infinity' OR workspace_name = 'x'"
		),
		'0',
		'wal: no row with connect_time = infinity, none from a forged record');
	is( $node->safe_psql(
			'postgres',
			"SELECT workspace_name || ' ' || connect_time FROM connection_logs WHERE connection_id = uid(2, 906)"
		),
		'ok 2024-01-01 00:00:00+00',
		'wal: a valid event under a valid MAC is written (the test computes the MAC right)');
	ok( $node->log_contains(
			qr/WARNING:  connlog ignored 5 WAL records with prefix "connlog" between [0-9A-F]+\/[0-9A-F]+ and [0-9A-F]+\/[0-9A-F]+\n.*DETAIL:  3 records have no valid MAC; 2 have a valid MAC but hold an event connlog_enqueue refuses \(the first: event_time is not a finite timestamp\)\./,
			$offset),
		'wal: one WARNING counts the records without a valid MAC and the refused events');
	ok($node->log_contains(qr/connlog replayed 201 events from WAL/, $offset),
		'wal: the replay counts only the genuine events and the valid one');
	my $s = $node->query_hash('postgres',
		'SELECT __COLUMNS__ FROM connlog_stats',
		qw(enqueued written merged dropped rejected pending));
	is_deeply(
		[ @$s{qw(enqueued dropped rejected pending)} ],
		[ 201, 0, 0, 0 ],
		'wal: enqueued counts 201 events, none dropped, rejected or pending');
	is($s->{written} + $s->{merged}, 201, 'wal: all 201 written or merged');

	is($node->safe_psql('postgres', $roles_sql),
		$roles_before, 'wal: mallory gained no role attribute or membership');
	is($node->safe_psql('postgres', $privs_sql),
		'f|f|f', 'wal: mallory gained no privilege on connlog');

	# the key goes with the data directory, so a standby can verify
	$node->backup('wal_bk');
	is(slurp_file($node->backup_dir . '/wal_bk/connlog_wal.key'),
		$key, 'wal: pg_basebackup copies the key file');

	# A changed key: records written under the old one are not verifiable,
	# so they are counted and logged, never written.
	$node->safe_psql('postgres',
		'SET connlog.durability = flush; SELECT pair(n) FROM generate_series(201, 210) n'
	);
	unlink($node->data_dir . '/connlog_wal.key') or die "unlink: $!";
	$offset = -s $node->logfile;
	$node->stop('immediate');
	$node->start;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'connlog worker'"
	) or die 'no worker after the restart';
	$node->safe_psql('postgres', 'SELECT connlog_flush()');
	isnt(slurp_file($node->data_dir . '/connlog_wal.key'),
		$key, 'wal: a deleted key file is made again, with a new key');
	ok( $node->log_contains(
			qr/WARNING:  connlog ignored 20 WAL records with prefix "connlog" .*\n.*DETAIL:  20 records have no valid MAC\./,
			$offset),
		'wal: the 20 events written under the old key are counted and logged');
	is($node->safe_psql('postgres', 'SELECT rows_between(201, 210)'),
		'0', 'wal: ... and not written');
	is($node->safe_psql('postgres', 'SELECT enqueued FROM connlog_stats'),
		'0', 'wal: ... nor counted as enqueued');

	# A key file that cannot be read is left alone, and wal and flush are
	# refused until it is fixed.
	chmod(0000, $node->data_dir . '/connlog_wal.key') or die "chmod: $!";
	$offset = -s $node->logfile;
	$node->restart;
	ok( $node->log_contains(
			qr/WARNING:  could not open file "connlog_wal.key": Permission denied/,
			$offset),
		'wal: an unreadable key file is reported at start');
	my ($ret, $stdout, $stderr) = $node->psql('postgres',
		'SET connlog.durability = wal; SELECT ev(300)');
	like(
		$stderr,
		qr/ERROR:  connlog has no key for its WAL records/,
		'wal: without a key, connlog.durability = wal is refused');
	chmod(0600, $node->data_dir . '/connlog_wal.key') or die "chmod: $!";
	$node->stop;
}



# ---- poison rows, restarts and accounting ----
# (section: integrity)
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
	my $moved = sub {
		my ($s0) = @_;
		my $s = $node->query_hash('postgres',
			'SELECT __COLUMNS__ FROM connlog_stats', @names);
		return join(' ', map { "$_=" . ($s->{$_} - $s0->{$_}) } @names);
	};
	my $stats = sub {
		return $node->query_hash('postgres',
			'SELECT __COLUMNS__ FROM connlog_stats', @names);
	};
	my $wait_for_lock = sub {
		$node->poll_query_until(
			'postgres', q{
SELECT wait_event_type = 'Lock' FROM pg_stat_activity
WHERE backend_type = 'connlog worker'})
		  or die 'the worker does not wait for the lock';
	};
	# pg_terminate_backend on the worker; returns the log offset from before
	my $terminate_worker = sub {
		my $old_pid =
		  $node->safe_psql('postgres', 'SELECT worker_pid FROM connlog_stats');
		my $offset = -s $node->logfile;
		$node->safe_psql('postgres', "SELECT pg_terminate_backend($old_pid)");
		$node->poll_query_until('postgres',
			"SELECT worker_pid NOT IN (0, $old_pid) FROM connlog_stats")
		  or die 'no new worker';
		return $offset;
	};

	# 1. Ten web events whose id exists (23505), one every 50 pairs: each
	# is rejected by splitting its batch at once.  With retry_interval 1h a
	# batch sent to the retry queue would make connlog_flush() time out.
	my $s0 = $stats->();
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
	my $s = $stats->();
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
	$s0 = $stats->();
	$node->safe_psql('postgres',
		'SELECT pair(n) FROM generate_series(2001, 2015) n');
	$node->poll_query_until('postgres',
		"SELECT worker_state = 'missing privileges' FROM connlog_stats")
	  or die 'the worker never noticed the missing privilege';
	$log_offset = $terminate_worker->();
	$node->safe_psql('postgres',
		'GRANT INSERT ON connection_logs TO connlog_writer');
	$node->safe_psql('postgres', 'SELECT connlog_flush()');
	is( $moved->($s0),
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
		$wait_for_lock->();
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
		'postgres', q{
CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.workspace_name = 'poison' THEN
    RAISE EXCEPTION 'refusing a poisoned workspace' USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse_poison BEFORE INSERT ON connection_logs
  FOR EACH ROW EXECUTE FUNCTION refuse_poison();
});
	# the trigger makes the worker prepare its statements again, which
	# reads every member: let it do so before the rejected table is locked
	$node->safe_psql('postgres', 'SELECT pair(5000); SELECT connlog_flush()');
	$node->safe_psql(
		'postgres', q{
BEGIN;
LOCK TABLE connection_logs_rejected IN ACCESS EXCLUSIVE MODE;
PREPARE TRANSACTION 'rejected';
});
	$s0 = $stats->();
	$node->safe_psql('postgres',
		"SELECT pair(n, CASE n WHEN 5020 THEN 'poison' ELSE 'dev' END) FROM generate_series(5001, 5020) n"
	);
	$wait_for_lock->();
	ok( $node->safe_psql('postgres', 'SELECT rows_between(5001, 5019)') > 0,
		'split: part of the batch is written when the worker is told to exit'
	);
	$log_offset = $terminate_worker->();
	$node->safe_psql('postgres', "COMMIT PREPARED 'rejected'");
	$node->safe_psql('postgres', 'SELECT connlog_flush()');
	$s = $stats->();
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

	$node->stop;
}




# ---- no worker; who decides what WAL is kept ----
# (section: registration)

# No worker: with max_worker_processes too low for connlog's worker, the
# log says so at startup and connlog_enqueue refuses every event at once
# instead of filling a ring nobody drains.
{
	my $node = connlog_node('noworker', "max_worker_processes = 0\n");
	like(
		slurp_file($node->logfile),
		qr/WARNING:  connlog could not register its background worker/,
		'an unregistered worker is logged at startup');
	$node->safe_psql('postgres',
		'CREATE EXTENSION connlog; ' . $ConnlogTest::connlog_helpers);
	my ($ret, $out, $err) = $node->psql('postgres', 'SELECT ev(1)');
	isnt($ret, 0, 'enqueue without a registered worker fails');
	like($err, qr/ERROR:  connlog worker is not registered/,
		'its error says the worker is not registered');
	like($err, qr/HINT:  Raise max_worker_processes \(now 0\)/,
		'its hint names max_worker_processes');
	($ret, $out, $err) = $node->psql('postgres', 'SELECT connlog_flush()');
	like($err, qr/ERROR:  connlog worker is not registered/,
		'connlog_flush says the same');
	is($node->safe_psql('postgres', 'SELECT enqueued, pending FROM connlog_stats'),
		'0|0', 'nothing was accepted');
	$node->stop;
	unlike(slurp_file($node->logfile), qr/connlog lost/,
		'shutdown loses nothing');
}

# What WAL connlog keeps is the operator's choice: connlog.durability,
# which makes connlog create the WAL-retaining slot, is settable only by
# superusers (or whom they let, per role or database).  A role that may
# enqueue cannot switch it on, for itself, through ALTER ROLE, or as the
# owner of a database through ALTER DATABASE.
{
	my $node = connlog_node('durability_suset', "wal_level = replica\n");
	$node->safe_psql(
		'postgres', q{
CREATE EXTENSION connlog;
CREATE ROLE app LOGIN;
CREATE DATABASE appdb OWNER app;
GRANT EXECUTE ON FUNCTION connlog_enqueue(uuid, timestamptz, uuid, uuid,
  uuid, text, text, text, connection_status, uuid, inet, integer, text,
  uuid, text, text) TO app;
GRANT EXECUTE ON FUNCTION connlog_flush TO app;
} . $ConnlogTest::connlog_helpers);

	for my $sql ('SET connlog.durability = wal',
		"SELECT set_config('connlog.durability', 'flush', false)",
		'ALTER ROLE app SET connlog.durability = wal',
		'ALTER DATABASE appdb SET connlog.durability = wal')
	{
		my ($ret, $out, $err) =
		  $node->psql('postgres', $sql, extra_params => [ '-U', 'app' ]);
		like(
			$err,
			qr/ERROR:  permission denied to set parameter "connlog.durability"/,
			"a role with EXECUTE cannot run: $sql");
	}
	is( $node->safe_psql(
			'postgres', 'SHOW connlog.durability',
			extra_params => [ '-U', 'app' ]),
		'memory',
		'its sessions stay in memory mode');
	$node->safe_psql('postgres', 'SELECT ev(1); SELECT connlog_flush()',
		extra_params => [ '-U', 'app' ]);
	is( $node->safe_psql(
			'postgres',
			'SELECT count(*) FROM pg_replication_slots'),
		'0',
		'no slot was created');

	# the operator chooses it for the role
	$node->safe_psql('postgres',
		'ALTER ROLE app SET connlog.durability = flush');
	is( $node->safe_psql(
			'postgres', 'SHOW connlog.durability',
			extra_params => [ '-U', 'app' ]),
		'flush',
		'a superuser sets it per role');
	$node->safe_psql('postgres', 'SELECT ev(2); SELECT connlog_flush()',
		extra_params => [ '-U', 'app' ]);
	is( $node->safe_psql(
			'postgres',
			q{SELECT slot_name FROM pg_replication_slots}),
		'connlog',
		"the operator's setting creates the slot");
	is( $node->safe_psql(
			'postgres',
			'SELECT count(*) FROM connection_logs WHERE connection_id IN (uid(2, 1), uid(2, 2))'
		),
		'2',
		'both events are written');
	is( $node->safe_psql(
			'postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = 'app'"),
		'f',
		'app gained no privilege');
	$node->stop;
}



done_testing();
