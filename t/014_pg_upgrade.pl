# pg_upgrade of a cluster with connlog, 15 -> 15 with the same binaries,
# in copy mode, as PostgreSQL's own src/bin/pg_upgrade/t/002_pg_upgrade.pl
# runs it.
#
# 1. From a cluster holding rows, rejected rows and 100 WAL-backed events
#    (connlog.durability = flush) that its worker could not write before
#    it stopped (shutdown_timeout = 0): pg_upgrade runs with no connlog
#    worker in either binary-upgrade server; rows, rejected rows, the
#    extension's version and the connlog settings survive; the new
#    cluster's worker says exactly how many events are lost (their WAL is
#    gone with the old cluster), writes new events, and says nothing again
#    after a restart.
# 2. From that cluster, once it has written everything: a clean upgrade
#    logs no connlog warning at all.
use strict;
use warnings;
use Cwd;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

# The worker writes only when asked (connlog_flush), and not at all once
# told to stop: what it holds then stays unwritten.
my $conf = q{
wal_level = replica
connlog.batch_size = 100000
connlog.flush_interval = '1h'
connlog.shutdown_timeout = 0
};

my $old = connlog_node('old', $conf);
$old->safe_psql(
	'postgres', 'CREATE EXTENSION connlog;' . $connlog_helpers . q{
ALTER DATABASE postgres SET connlog.durability = 'flush';
CREATE ROLE auditor;
ALTER ROLE auditor SET connlog.overflow = 'error';
ALTER TABLE connection_logs
  ADD CONSTRAINT no_poison CHECK (workspace_name NOT LIKE 'poison%');
});
# the worker looks for the extension at start (flush_interval is 1h)
$old->restart;

# pairs 1..100 written, of which 3 poisoned: 97 rows and 3 rejected rows
$old->safe_psql(
	'postgres', q{
SELECT pair(n, CASE WHEN n IN (7, 50, 93) THEN 'poison-' || n ELSE 'dev' END)
FROM generate_series(1, 100) n;
SELECT connlog_flush();
ALTER TABLE connection_logs DROP CONSTRAINT no_poison;
});
my $rows_sql = q{
SELECT (SELECT count(*) FROM connection_logs) || ','
    || (SELECT string_agg(event->>'workspace_name', ','
                          ORDER BY event->>'workspace_name')
        FROM connection_logs_rejected)};
is($old->safe_psql('postgres', $rows_sql),
	'97,poison-50,poison-7,poison-93',
	'old cluster: 97 rows and 3 rejected rows');

# pairs 1001..1050 enqueued in flush mode, and not written at shutdown
$old->safe_psql('postgres',
	'SELECT pair(n) FROM generate_series(1001, 1050) n');
is($old->safe_psql('postgres', 'SELECT pending FROM connlog_stats'),
	'100', 'old cluster: 100 WAL-backed events pending');
$old->stop;
like(
	slurp_file($old->logfile),
	qr/LOG:  connlog will replay 100 WAL-backed events that were not written yet\n(?:[^\n]*\n)?[^\n]*HINT:  pg_upgrade does not keep WAL/,
	'old cluster: the shutdown says 100 WAL-backed events are left, and that pg_upgrade loses them'
);

# Run pg_upgrade from a directory the postgres OS user can write: it
# writes its logs there.  The new cluster's postgresql.conf is the old
# one's connlog configuration; ALTER DATABASE/ROLE settings come with
# the dump.
sub upgrade
{
	my ($from, $name) = @_;
	my $to = PostgreSQL::Test::Cluster->new($name);
	$to->init;
	$to->append_conf('postgresql.conf',
		"shared_preload_libraries = 'connlog'\n"
		  . "connlog.database = 'postgres'\n"
		  . $conf);
	my $bindir = $from->config_data('--bindir');
	my $cwd = getcwd();
	chdir ${PostgreSQL::Test::Utils::tmp_check};
	command_ok(
		[
			'pg_upgrade', '--no-sync',
			'-d', $from->data_dir,
			'-D', $to->data_dir,
			'-b', $bindir,
			'-B', $bindir,
			'-s', $to->host,
			'-p', $from->port,
			'-P', $to->port
		],
		"pg_upgrade to $name");
	chdir $cwd;
	return $to;
}

my $new = upgrade($old, 'new');
$new->start;
$new->wait_for_log(
	qr/WARNING:  connlog lost 100 WAL-backed events that were not written when its worker last exited\n[^\n]*DETAIL:  connlog_wal_progress says 100 WAL-backed events were not written yet, in WAL from [0-9A-F]+\/[0-9A-F]+ on; that WAL is not in this cluster up to [0-9A-F]+\/[0-9A-F]+, and 0 of the events were read back\./
);
pass('new cluster: its worker reports the 100 lost events exactly');
unlike(
	slurp_file($new->logfile),
	qr/connlog cannot replay/,
	'new cluster: no message about bytes of WAL');

is($new->safe_psql('postgres', $rows_sql),
	'97,poison-50,poison-7,poison-93',
	'new cluster: the rows and the rejected rows are there');
is( $new->safe_psql(
		'postgres', q{
SELECT extversion FROM pg_extension WHERE extname = 'connlog';
SHOW connlog.durability;
SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting
WHERE setrole = 'auditor'::regrole}),
	"1.3\nflush\nconnlog.overflow=error",
	'new cluster: the extension version and the connlog settings survive');

# the new cluster's worker writes new events, and the lost ones are not there
$new->safe_psql('postgres',
	'SELECT pair(n) FROM generate_series(2001, 2010) n; SELECT connlog_flush()');
is( $new->safe_psql(
		'postgres',
		'SELECT good_pairs(2001, 2010), rows_between(1001, 1050)'),
	'10|0',
	'new cluster: new events are written');

# the warning is not repeated: the worker stored its own progress
my $offset = -s $new->logfile;
$new->restart;
$new->safe_psql('postgres',
	'SELECT pair(2011); SELECT connlog_flush()');
is($new->safe_psql('postgres', 'SELECT good_pairs(2011, 2011)'),
	'1', 'new cluster after a restart: events are written');
unlike(
	substr(slurp_file($new->logfile), $offset),
	qr/WARNING:[^\n]*connlog/,
	'new cluster after a restart: no connlog warning');
$new->stop;

# a clean upgrade: everything was written before the stop
my $clean = upgrade($new, 'clean');
$clean->start;
$clean->safe_psql('postgres',
	'SELECT pair(3001); SELECT connlog_flush()');
is( $clean->safe_psql(
		'postgres',
		q{SELECT good_pairs(3001, 3001), (SELECT count(*) FROM connection_logs)}
	),
	'1|109',
	'clean upgrade: the rows are there and new events are written');
$clean->stop;
my $log = slurp_file($clean->logfile);
unlike($log, qr/WARNING:[^\n]*connlog/, 'clean upgrade: no connlog warning');
like(
	$log,
	qr/LOG:  connlog has no WAL from [0-9A-F]+\/[0-9A-F]+ to [0-9A-F]+\/[0-9A-F]+, where connlog_wal_progress points, and no event was left unwritten there/,
	'clean upgrade: the worker notes the old WAL is gone, with nothing lost');

done_testing();
