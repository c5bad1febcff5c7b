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



# ---- the worker's session settings, catalog lookups and look-alikes ----
# (section: worker-session)



# ---- the query functions and look-alike operators; CREATE EXTENSION ----
# (section: sql)



# ---- poison rows, restarts and accounting ----
# (section: integrity)



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
GRANT EXECUTE ON FUNCTION connlog_enqueue TO app;
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
