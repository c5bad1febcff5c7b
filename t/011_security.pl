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
  uuid, text, text, jsonb) TO app;
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
