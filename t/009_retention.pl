# connlog.retention: the worker deletes rows whose connect_time is older
# than the retention, purge_batch_size rows per transaction, every
# purge_interval, counting them in connlog_stats.purged; events keep being
# written meanwhile.  Without DELETE privilege it warns once and goes on
# writing events.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

my $node = connlog_node('main', q{
connlog.flush_interval = '100ms'
connlog.purge_interval = '1s'
connlog.purge_batch_size = 7
log_min_messages = debug1
log_statement = none
});
# fresh(n): connection n of the last hour (the helpers' events are dated
# 2024, which any retention would delete), through the worker
my $fresh = q{
CREATE FUNCTION fresh(n bigint) RETURNS void LANGUAGE sql AS $$
  SELECT connlog_enqueue(id => uid(7 + s, n),
    event_time => now() - CASE s WHEN 0 THEN interval '1 h' ELSE interval '0' END,
    organization_id => uid(10, 0), workspace_owner_id => uid(11, 0),
    workspace_id => uid(12, 0), workspace_name => 'new', agent_name => 'main',
    type => 'ssh', status => CASE s WHEN 0 THEN 'connected'
                                    ELSE 'disconnected' END::connection_status,
    connection_id => uid(2, n))
  FROM generate_series(0, 1) s
$$;
};
$node->safe_psql('postgres', "CREATE EXTENSION connlog; $connlog_helpers $fresh");

# 50 rows 10 days old, 5 rows 5 days old, written directly; 20 new
# connections through the worker
$node->safe_psql(
	'postgres', q{
INSERT INTO connection_logs (id, connect_time, organization_id,
  workspace_owner_id, workspace_id, workspace_name, agent_name, type,
  connection_id)
SELECT uid(5, n), now() - CASE WHEN n <= 50 THEN interval '10 days'
                               ELSE interval '5 days' END - n * interval '1 s',
       uid(10, 0), uid(11, 0), uid(12, 0), 'old', 'main', 'ssh', uid(6, n)
FROM generate_series(1, 55) n;
SELECT fresh(n) FROM generate_series(1, 20) n;
SELECT connlog_flush();
});
is($node->safe_psql('postgres', 'SELECT (SELECT count(*) FROM connection_logs), purged FROM connlog_stats'),
	'75|0', 'retention 0 (the default): nothing is deleted');

reload_conf($node, 'connlog.retention' => '7d');
$node->poll_query_until('postgres', 'SELECT purged = 50 FROM connlog_stats')
  or die 'the worker did not purge 50 rows';
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FILTER (WHERE workspace_name = 'old'), count(*) FROM connection_logs"
	),
	'5|25',
	'retention 7d: the 50 rows older than 7 days are gone, the rest stay');
is($node->safe_psql('postgres', 'SELECT purged FROM connlog_stats'),
	'50', 'purged counts them');
$node->wait_for_log(qr/LOG:  connlog deleted 50 rows of connection_logs older than connlog.retention/);
is(count_lines($node, qr/DEBUG:  connlog purge step deleted 7 rows/),
	7, 'in transactions of purge_batch_size (7) rows');
is(count_lines($node, qr/DEBUG:  connlog purge step deleted 1 rows/),
	1, 'and a last step with the remaining row');
is(count_lines($node, qr/LOG:  connlog deleted \d+ rows/),
	1, 'one log line for the run');

# events are written between and after purge runs
$node->safe_psql('postgres',
	'SELECT fresh(n) FROM generate_series(21, 40) n; SELECT connlog_flush()');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM connection_logs WHERE workspace_name = 'new' "
		  . "AND disconnect_time - connect_time = interval '1 h'"),
	'40',
	'events are written while retention runs, one merged row each');

# a shorter retention on reload: the 5-day-old rows go at the next run
reload_conf($node, 'connlog.retention' => '3d');
$node->poll_query_until('postgres', 'SELECT purged = 55 FROM connlog_stats')
  or die 'the worker did not purge the 5 rows';
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM connection_logs WHERE workspace_name = 'old'"),
	'0', 'retention 3d: the 5-day-old rows are gone too');
is(counters_identity($node, 'postgres', qw(dropped rejected pending)),
	'0|0|0|t', 'no event was lost');
$node->stop;

###########################################################################
# connlog.role without DELETE: one warning, events still written.
###########################################################################
$node = connlog_role_node('nodelete', 'LOGIN', q{
connlog.flush_interval = '100ms'
connlog.retention = '1d'
connlog.purge_interval = '1s'
log_min_messages = debug1
log_statement = none
});
$node->safe_psql('postgres', "CREATE EXTENSION connlog; $connlog_helpers $fresh");
$node->safe_psql('postgres', $writer_grants);
$node->wait_for_log(
	qr/WARNING:  connlog could not delete rows past connlog.retention: permission denied for table connection_logs/
);
$node->safe_psql('postgres',
	'SELECT fresh(n) FROM generate_series(1, 10) n; SELECT connlog_flush()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM connection_logs'),
	'10', 'without DELETE: events are still written');
# three purge runs (purge_interval 1 s) fail the same way
$node->wait_for_log(
	qr/(?:DEBUG:  connlog purge step failed: permission denied for table connection_logs.*?){3}/s
);
is( count_lines(
		$node,
		qr/WARNING:  connlog could not delete rows past connlog.retention/),
	1,
	'without DELETE: warned once');
$node->safe_psql('postgres', 'GRANT DELETE ON connection_logs TO connlog_writer');
$node->safe_psql('postgres', q{
INSERT INTO connection_logs (id, connect_time, organization_id,
  workspace_owner_id, workspace_id, workspace_name, agent_name, type)
VALUES (uid(5, 1), now() - interval '2 days', uid(10, 0), uid(11, 0),
        uid(12, 0), 'old', 'main', 'ssh')});
$node->poll_query_until('postgres', 'SELECT purged = 1 FROM connlog_stats')
  or die 'DELETE granted: the old row was not purged';
is($node->safe_psql('postgres', 'SELECT count(*) FROM connection_logs'),
	'10', 'DELETE granted: the next run deletes the old row, and only it');
$node->stop;

done_testing();
