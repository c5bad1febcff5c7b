# The standby keeper (standby.c) when connlog.database does not exist on
# the standby: one failed connection, then it waits connected to no
# database (connect.c) and logs why once; when the database is created on
# the primary and replayed, it connects and keeps slot "connlog".  A
# SIGTERM ends the wait, and the next keeper waits without a new attempt;
# a promotion ends it for good.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

my $primary = connlog_node('primary', q{
connlog.database = 'audit'
connlog.flush_interval = '100ms'
}, allows_streaming => 1);
$primary->backup('bk');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bk', has_streaming => 1);
$standby->start;

my $fatal = qr/FATAL:  database "audit" does not exist/;
ok( $standby->wait_for_log(
		qr/LOG:  connlog standby keeper is waiting: database "audit" does not exist/
	),
	'the keeper says once what it waits for');
is( $standby->safe_psql(
		'postgres', q{
SELECT count(*) FROM pg_stat_activity
WHERE backend_type = 'connlog standby keeper' AND datname IS NULL}),
	'1',
	'the waiting keeper is connected to no database');
my $fatals = () = slurp_file($standby->logfile) =~ /$fatal/g;
ok($fatals >= 1 && $fatals <= 2,
	"the keeper failed to connect once or twice before it waited ($fatals)");

# SIGTERM ends the wait; its successor waits too, without connecting
my $offset = -s $standby->logfile;
$standby->safe_psql('postgres', q{
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE backend_type = 'connlog standby keeper'});
ok( $standby->wait_for_log(
		qr/LOG:  background worker "connlog standby keeper" \(PID \d+\) exited with exit code 1/,
		$offset),
	'SIGTERM ends the waiting keeper');
ok( $standby->wait_for_log(
		qr/LOG:  connlog standby keeper is waiting: database "audit" does not exist/,
		$offset),
	'the next keeper waits as well');

# the database and the extension come from the primary; an event written
# in wal mode gives connlog_wal_progress a done_lsn to keep WAL from
$primary->safe_psql('postgres', 'CREATE DATABASE audit');
$primary->safe_psql('audit', 'CREATE EXTENSION connlog;' . $connlog_helpers);
$primary->safe_psql('audit',
	"SET connlog.durability = wal; SELECT pair(1); SELECT connlog_flush()");
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
my $done = $primary->safe_psql('audit',
	'SELECT done_lsn FROM connlog_wal_progress');
ok( $standby->poll_query_until(
		'postgres',
		"SELECT restart_lsn = '$done' FROM pg_replication_slots WHERE slot_name = 'connlog'"
	),
	"once the database exists the keeper holds slot \"connlog\" at $done");
ok( $standby->log_contains(
		qr/LOG:  connlog standby keeper restarting to connect to database "audit"/
	),
	'the waiting keeper restarted to connect');
ok( $standby->log_contains(
		qr/LOG:  connlog standby keeper started for database "audit"/),
	'the keeper connected');
my $log = slurp_file($standby->logfile);
is(scalar(() = $log =~ /$fatal/g),
	$fatals, 'no failed connection after the keeper started waiting');
is(scalar(() = $log =~ /LOG:  connlog standby keeper is waiting: /g),
	2, 'the wait was logged once by each of the two waiting keepers');

# a role missing on a standby: its keeper waits for it until the standby
# is promoted, then exits (code 0: not restarted)
my $standby2 = PostgreSQL::Test::Cluster->new('standby2');
$standby2->init_from_backup($primary, 'bk', has_streaming => 1);
$standby2->append_conf('postgresql.conf', "connlog.role = 'no_such_role'");
$standby2->start;
ok( $standby2->wait_for_log(
		qr/LOG:  connlog standby keeper is waiting: role "no_such_role" does not exist/
	),
	'a keeper whose role is missing waits for it');
$offset = -s $standby2->logfile;
$standby2->promote;
ok( $standby2->wait_for_log(
		qr/LOG:  connlog standby keeper exits: the server was promoted/,
		$offset),
	'promoted, the waiting keeper exits');
ok( $standby2->poll_query_until(
		'postgres', q{
SELECT count(*) = 0 FROM pg_stat_activity
WHERE backend_type = 'connlog standby keeper'}),
	'... and is gone');

$standby2->stop;
$standby->stop;
$primary->stop;
done_testing();
