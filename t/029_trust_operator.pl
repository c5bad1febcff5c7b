# An operator's routine actions with connlog.durability = wal and flush:
# none may crash the server or lose an accepted event.
#
#  1. per mode, on a server archiving with a short archive_timeout: events
#     then pg_switch_wal() (the insert position is then the next
#     segment's first page header, past the end of generated WAL), the
#     segment switches of archive_timeout, pg_basebackup (which switches
#     segments at its end) while events are pending, and pg_ctl stop -m
#     fast with events pending: the same postmaster throughout, no request
#     to flush past the end of WAL, every event written (those pending at
#     the stop by the next start).
#  2. removing connlog as doc/connlog.md, "Removing connlog", says: the
#     server starts without the library and runs; the slot is dropped.
#     (t/010_durability.pl tests the unsafe order: a crash, then the
#     library removed: recovery stops at connlog's first record.)
#  3. no worker: with max_worker_processes too low for connlog's worker,
#     the log says so at startup and connlog_enqueue refuses every event
#     at once instead of filling a ring nobody drains.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

my $bad_wal =
  qr/PANIC|past end of (?:log|generated WAL)|terminating any other active server processes/;

# ---- 1. switches, archiving, base backups and fast stops ----
for my $mode (qw(wal flush))
{
	my $node = connlog_node("operator_$mode", q{
archive_mode = on
archive_command = 'true'
archive_timeout = 1s
wal_writer_delay = 10ms
connlog.batch_size = 100000
connlog.flush_interval = '1h'
}, allows_streaming => 1);
	$node->safe_psql('postgres',
		'CREATE EXTENSION connlog;'
		  . $connlog_helpers
		  . 'SELECT ev(0); SELECT connlog_flush();'
		  . "ALTER SYSTEM SET connlog.durability = $mode; SELECT pg_reload_conf();");
	$node->poll_query_until('postgres',
		"SELECT current_setting('connlog.durability') = '$mode'")
	  or die 'not reloaded';
	my $pm_start =
	  $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');

	# a. one event, then a segment switch; a reload makes the worker look
	# at once, while the insert position is still the new segment's header
	for my $n (1 .. 3)
	{
		my $end = $node->safe_psql('postgres',
			"SELECT ev($n); SELECT pg_switch_wal(); SELECT pg_reload_conf();"
			  . 'SELECT pg_current_wal_insert_lsn()');
		$end = (split /\n/, $end)[-1];
		$node->poll_query_until('postgres',
			"SELECT pg_current_wal_flush_lsn() >= '$end'::pg_lsn - 40")
		  or die 'WAL not flushed';
	}
	$node->safe_psql('postgres', 'SELECT connlog_flush()');
	is($node->safe_psql('postgres', 'SELECT rows_between(1, 3)'),
		'3', "$mode: the events before each pg_switch_wal() are written");

	# b. archive_timeout switches a segment holding only connlog records
	my $archived = $node->safe_psql('postgres',
		'SELECT archived_count FROM pg_stat_archiver');
	$node->safe_psql('postgres',
		'SELECT pair(n) FROM generate_series(101, 110) n');
	$node->poll_query_until('postgres',
		"SELECT archived_count > $archived FROM pg_stat_archiver")
	  or die 'archive_timeout switched no segment';
	$node->safe_psql('postgres', 'SELECT connlog_flush()');
	is($node->safe_psql('postgres', 'SELECT good_pairs(101, 110)'),
		'10', "$mode: the events archive_timeout switched out are written");

	# c. a base backup while events are pending
	$node->safe_psql('postgres',
		'SELECT pair(n) FROM generate_series(201, 250) n');
	$node->backup("bk_$mode");
	is($node->safe_psql('postgres', 'SELECT pending FROM connlog_stats'),
		'100', "$mode: 100 events pending through the base backup");
	$node->safe_psql('postgres', 'SELECT connlog_flush()');
	is($node->safe_psql('postgres', 'SELECT good_pairs(201, 250)'),
		'50', "$mode: the events pending during the backup are written");

	is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'),
		$pm_start, "$mode: the server never restarted");
	ok(!$node->log_contains($bad_wal),
		"$mode: no PANIC, no flush request past the end of WAL");

	# d. pg_ctl stop -m fast with events pending: the stopping worker
	# writes them (shutdown_timeout), or the next one replays them
	$node->safe_psql('postgres',
		'SELECT pair(n) FROM generate_series(301, 400) n');
	$node->stop('fast');
	$node->start;
	wait_for_worker($node);
	$node->safe_psql('postgres', 'SELECT connlog_flush()');
	is($node->safe_psql('postgres', 'SELECT good_pairs(301, 400)'),
		'100', "$mode: the 200 events pending at the fast stop are written");
	is($node->safe_psql('postgres', 'SELECT dropped FROM connlog_stats'),
		'0', "$mode: nothing dropped");
	ok(!$node->log_contains(qr/connlog (?:lost|dropped)|$bad_wal/),
		"$mode: nothing logged as lost, no bad WAL request");
	$node->stop;
}

# ---- 2. removing connlog, in doc/connlog.md's order ----
{
	my $node = connlog_node('removal', q{
connlog.batch_size = 100000
connlog.flush_interval = '1h'
}, allows_streaming => 1);
	$node->safe_psql('postgres',
		'CREATE EXTENSION connlog;'
		  . $connlog_helpers
		  . 'SELECT ev(0); SELECT connlog_flush();'
		  . 'ALTER SYSTEM SET connlog.durability = flush; SELECT pg_reload_conf();');
	$node->poll_query_until('postgres',
		"SELECT current_setting('connlog.durability') = 'flush'")
	  or die 'not reloaded';
	$node->safe_psql('postgres',
		'SELECT pair(n) FROM generate_series(1, 100) n');

	# 1. no new WAL-backed event; 2. write what is pending; 3. a checkpoint
	# after the last record; 4. a clean stop
	$node->safe_psql('postgres',
		'ALTER SYSTEM SET connlog.durability = memory; SELECT pg_reload_conf()'
	);
	$node->poll_query_until('postgres',
		"SELECT current_setting('connlog.durability') = 'memory'")
	  or die 'not reloaded';
	$node->safe_psql('postgres', 'SELECT connlog_flush(); CHECKPOINT');
	is($node->safe_psql('postgres', 'SELECT good_pairs(1, 100)'),
		'100', 'removal: every event written before the library goes');
	$node->stop;
	# 5. the library out of shared_preload_libraries
	$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "''");
	$node->start;
	is($node->safe_psql('postgres', 'SELECT count(*) FROM connection_logs'),
		'101', 'removal: the server starts without the library and runs');
	# 6. drop the slot, which would keep WAL forever
	$node->safe_psql('postgres', "SELECT pg_drop_replication_slot('connlog')");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_replication_slots'),
		'0', 'removal: the slot is dropped');
	# a crash now replays nothing of connlog's
	$node->safe_psql('postgres', 'CREATE TABLE after_removal AS SELECT 1 AS x');
	$node->stop('immediate');
	$node->start;
	is($node->safe_psql('postgres', 'SELECT x FROM after_removal'),
		'1', 'removal: crash recovery without the library succeeds');
	ok(!$node->log_contains(qr/resource manager with ID \d+ not registered/),
		'removal: recovery met no connlog record');
	$node->stop;
}

# ---- 3. no worker ----
{
	my $node = connlog_node('noworker', "max_worker_processes = 0\n");
	like(
		slurp_file($node->logfile),
		qr/WARNING:  connlog could not register its background worker/,
		'an unregistered worker is logged at startup');
	$node->safe_psql('postgres',
		'CREATE EXTENSION connlog; ' . $connlog_helpers);
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

done_testing();
