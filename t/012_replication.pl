# connlog.durability = flush with a synchronous standby: an enqueue waits
# for the standby as a commit in its session would (synchronous_commit
# remote_write, on, remote_apply), not at all with local or off; the wait
# ends when the standby comes back, or when it is canceled, with a WARNING
# that the event is kept locally; either way the event is written.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

my $primary = connlog_node('primary', q{
log_statement = none
}, allows_streaming => 1);
$primary->safe_psql('postgres',
	'CREATE EXTENSION connlog; CREATE EXTENSION pg_walinspect;'
	  . $connlog_helpers);
# the enqueues below run as an ordinary role, in flush mode by ALTER ROLE
$primary->safe_psql(
	'postgres', q{
CREATE ROLE producer LOGIN;
GRANT EXECUTE ON FUNCTION connlog_enqueue(uuid, timestamptz, uuid, uuid,
  uuid, text, text, text, connection_status, uuid, inet, integer, text,
  uuid, text, text, jsonb) TO producer;
GRANT EXECUTE ON FUNCTION uid(int, bigint), t0(bigint),
  ev(bigint, connection_status, text) TO producer;
ALTER ROLE producer SET connlog.durability = flush;
});

$primary->backup('bk');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bk', has_streaming => 1);
$standby->start;
reload_conf($primary, synchronous_standby_names => '*');
$primary->poll_query_until('postgres',
	"SELECT sync_state = 'sync' FROM pg_stat_replication")
  or die 'the standby did not become synchronous';

# the end of the last connlog WAL record written since $from
sub last_record_end
{
	my ($from) = @_;
	return $primary->safe_psql(
		'postgres', qq{
SELECT max(end_lsn) FROM pg_get_wal_records_info('$from', pg_current_wal_flush_lsn())
WHERE resource_manager = 'connlog'});
}

# a background session of role producer that has started to enqueue event
# n and waits for the synchronous standby
sub waiting_producer
{
	my ($n) = @_;
	my $session = $primary->background_psql('postgres',
		extra_params => [ '-U', 'producer' ]);
	my $pid = $session->query_safe('SELECT pg_backend_pid()');
	$session->query_until(qr/enqueuing/, qq{
\\set SHOW_CONTEXT always
\\echo enqueuing
SELECT ev($n);
});
	ok( $primary->poll_query_until(
			'postgres', qq{
SELECT state = 'active' AND wait_event = 'SyncRep'
FROM pg_stat_activity WHERE pid = $pid}),
		"event $n: with the standby down, the enqueue waits for it (SyncRep)");
	return ($session, $pid);
}

###########################################################################
# (a) The standby running: an enqueue returns once its record is on the
#     standby, as far as synchronous_commit asks.
###########################################################################
my %seen = (
	remote_write => 'pg_last_wal_receive_lsn()',    # received at least
	on => 'pg_last_wal_receive_lsn()',              # flushed
	remote_apply => 'pg_last_wal_replay_lsn()');
my $n = 0;
for my $level (qw(remote_write on remote_apply))
{
	$n++;
	my $from = $primary->safe_psql('postgres',
		'SELECT pg_current_wal_insert_lsn()');
	$primary->safe_psql('postgres',
		"SET synchronous_commit = $level; SELECT ev($n)",
		extra_params => [ '-U', 'producer' ]);
	my $end = last_record_end($from);
	isnt($end, '', "$level: the enqueue wrote a WAL record");
	# remote_write promises the record reached the standby, not that it is
	# flushed there, which is all the standby shows: poll for that one
	my $query = "SELECT $seen{$level} >= '$end'";
	if ($level eq 'remote_write')
	{
		ok($standby->poll_query_until('postgres', $query),
			"$level: the standby receives the record");
	}
	else
	{
		is($standby->safe_psql('postgres', $query),
			't', "$level: the record is on the standby when the enqueue returns");
	}
}

###########################################################################
# (b) The standby stopped: the enqueue waits until it is back.
###########################################################################
$standby->stop;
my ($session, $pid) = waiting_producer(11);
$standby->start;
$session->query_safe('SELECT 1');
pass('event 11: the enqueue returns once the standby is back');
$session->quit;

###########################################################################
# (c) The standby stopped again: a canceled wait leaves the event kept
#     locally, with a WARNING that says so.
###########################################################################
$standby->stop;
($session, $pid) = waiting_producer(12);
$primary->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
$session->query('SELECT 1');
like(
	$session->{stderr},
	qr/WARNING:  connlog event is kept locally but might not have been replicated to the synchronous standby\n.*DETAIL:  The wait for synchronous replication of its WAL record, which ends at [0-9A-F]+\/[0-9A-F]+, was canceled; the event will be written\./s,
	'event 12: a canceled wait warns that the event is kept locally');
like(
	$session->{stderr},
	qr/CONTEXT:  waiting for the synchronous standby to confirm the WAL record of a connlog event/,
	"event 12: the server's own WARNING says which wait it canceled");
$session->quit;

# A terminated waiter: its session ends, the event is kept all the same;
# connlog's WARNING goes to the server log only, since the server's own
# stopped output to the client.
my $offset = -s $primary->logfile;
($session, $pid) = waiting_producer(13);
$primary->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$primary->wait_for_log(
	qr/WARNING:  connlog event is kept locally but might not have been replicated to the synchronous standby/,
	$offset);
ok( $primary->poll_query_until(
		'postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
	'event 13: a terminated waiter logs the WARNING and its session ends');
$session->{run}->finish;    # psql exits when its connection is lost
like(
	$session->{stderr},
	qr/WARNING:  canceling the wait for synchronous replication and terminating connection due to administrator command/,
	"event 13: the terminated waiter's client gets the server's WARNING");

###########################################################################
# (d) synchronous_commit = local or off: no wait, the standby still down.
###########################################################################
for my $level (qw(local off))
{
	$n++;
	$primary->safe_psql('postgres',
		"SET synchronous_commit = $level; SELECT ev($n)",
		extra_params => [ '-U', 'producer' ]);
	pass("$level: the enqueue returns with the standby down");
}

# the worker's own commits wait for the standby too
$standby->start;
$primary->safe_psql('postgres', 'SELECT connlog_flush()');
is($primary->safe_psql('postgres', "SELECT rows_between(1, $n)"),
	$n, 'every event enqueued in (a) and (d) is written');
is($primary->safe_psql('postgres', 'SELECT rows_between(11, 13)'),
	'3',
	'the events that waited, and those whose wait was canceled or whose session was terminated, are written'
);

$primary->stop;
$standby->stop;
done_testing();
