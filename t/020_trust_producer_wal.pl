# What a producer (a role with EXECUTE on connlog_enqueue and nothing
# else) can do to connlog.durability, each attack mounted as that role:
#
#  1. the page-boundary attack, under wal and under flush: it enqueues and
#     pads WAL so that its event's record ends exactly on a WAL page
#     boundary, where the insert position lies past the end of generated
#     WAL.  Asking the WAL writer to flush to that position made it PANIC
#     and the postmaster restart every session; now the server stays up
#     (the same postmaster), nothing PANICs, and every event is written.
#  2. forged records: logical messages with prefix "connlog" in the layout
#     a MAC-keyed connlog replayed, written with pg_logical_emit_message()
#     by the producer and by a role without any privilege: after a crash
#     restart none becomes a row, genuine events are replayed, and one
#     WARNING counts the messages.
#  3. durability is the operator's: a role that may enqueue cannot switch
#     connlog.durability on (SET, ALTER ROLE, ALTER DATABASE as the owner).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

my $enqueue_text = 'connlog_enqueue(uuid, timestamptz, uuid, uuid, uuid, '
  . 'text, text, text, connection_status, uuid, inet, integer, text, uuid, '
  . 'text, text, jsonb)';

my $roles_sql = q{SELECT rolname, rolsuper, rolcreaterole, rolcreatedb,
  rolreplication, rolbypassrls,
  (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid)
FROM pg_roles r WHERE rolname IN ('producer', 'mallory') ORDER BY 1};

# ---- 1. the page-boundary attack ----
for my $mode (qw(wal flush))
{
	# autovacuum off and flush_interval 1h: no other WAL while the worker
	# looks at the insert position; a WAL writer that cycles every 10 ms
	# acts on a bad request at once
	my $node = connlog_node("boundary_$mode", q{
autovacuum = off
wal_writer_delay = 10ms
connlog.batch_size = 100000
connlog.flush_interval = '1h'
}, allows_streaming => 1);
	$node->safe_psql('postgres',
		"CREATE EXTENSION connlog; CREATE ROLE producer LOGIN;
GRANT EXECUTE ON FUNCTION $enqueue_text TO producer;
GRANT EXECUTE ON FUNCTION connlog_flush TO producer;
ALTER ROLE producer SET connlog.durability = $mode;"
		  . $connlog_helpers . $boundary_helper
		  . 'SELECT ev(0); SELECT connlog_flush();');
	my $roles_before = $node->safe_psql('postgres', $roles_sql);
	my $pm_start =
	  $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
	# the first WAL-backed event has the worker make the slot
	$node->safe_psql('postgres', 'SELECT ev(1); SELECT connlog_flush()',
		extra_params => [ '-U', 'producer' ]);

	my $wal_from =
	  $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
	my ($n, $hits) = (1000, 0);
	for my $round (1 .. 5)
	{
		my $r = $node->safe_psql('postgres',
			"SELECT enqueue_at_boundary($n)",
			extra_params => [ '-U', 'producer' ]);
		last if $r eq '';    # could not hit: the asserts below say so
		my ($k, $lsn) = split / /, $r;
		$hits++;
		$n += $k;
		# a reload (which writes no WAL) makes the worker take a turn now,
		# in which it wakes the WAL writer for the events; the WAL writer
		# then flushes to the boundary, and the server is still up
		$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
		$node->poll_query_until('postgres',
			"SELECT pg_current_wal_flush_lsn() >= '$lsn'")
		  or die "WAL not flushed to $lsn";
	}
	is($hits, 5, "$mode: five events ended exactly on a WAL page boundary");
	$node->safe_psql('postgres', 'SELECT connlog_flush()',
		extra_params => [ '-U', 'producer' ]);
	is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'),
		$pm_start, "$mode: the server did not restart");
	ok( !$node->log_contains(
			qr/PANIC|past end of (?:log|generated WAL)|terminating any other active server processes/
		),
		"$mode: no PANIC, no flush request past the end of WAL");
	my $events = $n - 1000;
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FROM connection_logs WHERE connection_id BETWEEN uid(2, 1000) AND uid(2, $n)"
		),
		$events,
		"$mode: all $events events of the attack are written");
	# and ev(0) and ev(1) before
	is(connlog_counts($node), ($events + 2) . "|@{[$events + 2]}|0|0|0|0|t",
		"$mode: every event enqueued is written; the identity holds");
	is($node->safe_psql('postgres', $roles_sql),
		$roles_before, "$mode: the producer gained no role attribute");
	# what pg_walinspect, which runs in the server, shows of the records
	like(
		$node->safe_psql(
			'postgres', qq{CREATE EXTENSION pg_walinspect;
SELECT record_type || ' ' || description FROM pg_get_wal_records_info(
  '$wal_from', pg_current_wal_flush_lsn())
WHERE resource_manager = 'connlog' LIMIT 1}),
		qr/^EVENT epoch \d+ seq \d+; connected$/,
		"$mode: pg_walinspect shows connlog's records");
	$node->stop;
}

# ---- 2. forged records in the layout of logical messages ----
{
	my $node = connlog_node('forged', q{
connlog.batch_size = 100000
connlog.flush_interval = '1h'
log_statement = none
}, allows_streaming => 1);
	$node->safe_psql('postgres',
		"CREATE EXTENSION connlog; CREATE ROLE producer LOGIN;
CREATE ROLE mallory LOGIN;
GRANT EXECUTE ON FUNCTION $enqueue_text TO producer;
ALTER ROLE producer SET connlog.durability = flush;"
		  . $connlog_helpers
		  . 'SELECT ev(0); SELECT connlog_flush();');
	my $roles_before = $node->safe_psql('postgres', $roles_sql);
	my $privs_sql = q{SELECT has_table_privilege(r, 'connection_logs', 'INSERT, SELECT, UPDATE, DELETE'),
  has_table_privilege(r, 'connlog_wal_progress', 'SELECT, UPDATE')
FROM unnest(array['producer', 'mallory']) r};
	my $privs_before = $node->safe_psql('postgres', $privs_sql);
	is($privs_before, "f|f\nf|f", 'neither role may write the tables');

	# genuine events, held in the ring (the worker waits for a flush)
	$node->safe_psql('postgres',
		'SELECT pair(n) FROM generate_series(1, 50) n',
		extra_params => [ '-U', 'producer' ]);
	my $epoch = $node->safe_psql('postgres',
		'SELECT epoch FROM connlog_wal_progress');
	# 2024-01-01 00:00:00+00 in microseconds since 2000-01-01
	my $t = 757382400000000;
	my $emit = sub {
		my ($role, $payload, $transactional) = @_;
		return $node->safe_psql(
			'postgres',
			"SELECT pg_logical_emit_message($transactional, 'connlog', '\\x"
			  . unpack('H*', $payload) . "'::bytea) IS NOT NULL",
			extra_params => [ '-U', $role ]);
	};
	# each role: a made-up epoch, this life's epoch with a sequence number
	# past any written, and a transactional one
	for my $role (qw(producer mallory))
	{
		my $base = $role eq 'producer' ? 900 : 950;
		$emit->($role, legacy_record(n => $base + 1, time => $t, ws => 'x'),
			'false');
		$emit->(
			$role,
			legacy_record(
				n => $base + 2,
				time => $t,
				ws => 'x',
				epoch => $epoch),
			'false');
		$emit->($role, legacy_record(n => $base + 3, time => $t, ws => 'x'),
			'true');
	}
	# more genuine events; flushing their WAL flushes the messages too
	$node->safe_psql('postgres',
		'SELECT pair(n) FROM generate_series(51, 100) n',
		extra_params => [ '-U', 'producer' ]);

	my $offset = crash_restart($node);
	$node->safe_psql('postgres', 'SELECT connlog_flush()');
	is($node->safe_psql('postgres', 'SELECT good_pairs(1, 100)'),
		'100', 'the 200 genuine events were replayed and written');
	is($node->safe_psql('postgres', 'SELECT rows_between(900, 999)'),
		'0', 'no forged message became a row');
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FROM connection_logs WHERE workspace_name = 'x'"),
		'0',
		'no row from a forged message at all');
	ok( $node->log_contains(
			qr/WARNING:  connlog did not write 6 events from logical messages with prefix "connlog" between [0-9A-F]+\/[0-9A-F]+ and [0-9A-F]+\/[0-9A-F]+\n.*DETAIL:  connlog writes only the records of its own WAL resource manager "connlog"/,
			$offset),
		'one WARNING counts the 6 messages and says why none is written');
	ok($node->log_contains(qr/connlog replayed 200 events from WAL/, $offset),
		'the replay counts only the genuine events');
	is(connlog_counts($node), '200|100|100|0|0|0|t',
		'200 events enqueued (replayed), 100 rows; the identity holds');
	is($node->safe_psql('postgres', $roles_sql),
		$roles_before, 'no role gained a role attribute or membership');
	is($node->safe_psql('postgres', $privs_sql),
		$privs_before, 'no role gained a privilege on the tables');
	$node->stop;
}

# ---- 3. durability is the operator's ----
# What WAL connlog keeps is the operator's choice: connlog.durability,
# which makes connlog create the WAL-retaining slot, is settable only by
# superusers (or whom they let, per role or database).  A role that may
# enqueue cannot switch it on, for itself, through ALTER ROLE, or as the
# owner of a database through ALTER DATABASE.
{
	my $node = connlog_node('durability_suset', "wal_level = replica\n");
	$node->safe_psql(
		'postgres', qq{
CREATE EXTENSION connlog;
CREATE ROLE app LOGIN;
CREATE DATABASE appdb OWNER app;
GRANT EXECUTE ON FUNCTION $enqueue_text TO app;
GRANT EXECUTE ON FUNCTION connlog_flush TO app;
} . $connlog_helpers);

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
	is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_replication_slots'),
		'0', 'no slot was created');

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
	is( $node->safe_psql('postgres',
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
