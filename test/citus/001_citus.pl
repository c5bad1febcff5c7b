# connlog on every node of a Citus cluster (a coordinator and two worker
# nodes on loopback), writing into one distributed table: public
# .connection_logs, distributed by workspace_id, owned by role app (not a
# superuser), whose statements reach the worker nodes over connections
# Citus opens as app.  test/suites/60-citus.sh builds and installs Citus
# and runs this file; without Citus it is skipped.
#
# Each part checks exact rows and, on every node, the accounting identity:
# enqueues on the coordinator, on a worker node, on both at once with the
# connects on one and the disconnects on the other; the successor of a
# terminated connlog worker writing what it held again (the statement for
# rows that may have been written); connlog.durability = wal and a crash
# of the enqueuing node; a worker node down for longer than max_retries
# retries, then back; a worker node restarted, so the connections Citus
# cached to it are dead; the owner refused on one worker node (42501
# there): held, reported with the node, never rejected, no flapping;
# the coordinator stopped while a worker node enqueues; the worker's
# cached connections to the worker nodes, and an operator's
# citus.max_cached_conns_per_worker winning; retention on the distributed
# table.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FindBin;
use lib "$FindBin::RealBin/../../t";
use ConnlogTest;

my $pkglibdir = `pg_config --pkglibdir`;
chomp $pkglibdir;
plan skip_all => "Citus is not installed in $pkglibdir"
  unless -e "$pkglibdir/citus.so";

# Three nodes, each with Citus first in shared_preload_libraries, connlog
# writing into the distributed table.  Citus connects to 127.0.0.1 with
# the nodes' ports (trust there, as initdb -A trust sets it).  Batches are
# written every 100 ms; a batch held for a node waits 100 ms between
# retries, so a node down for a second outlasts max_retries (3) many
# times over.  Citus opens its connections for a statement at once (no
# slow start), so that the number the worker keeps is that of its session's
# citus.max_cached_conns_per_worker, which connlog sets and this file does
# not.
sub citus_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf(
		'postgresql.conf', qq{
listen_addresses = '127.0.0.1'
shared_preload_libraries = 'citus,connlog'
max_prepared_transactions = 50
wal_level = replica
max_wal_senders = 4
max_replication_slots = 4
connlog.database = 'postgres'
connlog.target_table = 'public.connection_logs'
connlog.flush_interval = 100ms
connlog.retry_interval = 100ms
connlog.batch_size = 10000
citus.executor_slow_start_interval = 0

});
	$node->start;
	$node->safe_psql('postgres', q{
CREATE EXTENSION citus;
-- sessions find the helpers and the extension's objects
SET citus.enable_ddl_propagation = off;
ALTER DATABASE postgres SET search_path = public, connlog;
});
	return $node;
}

my $coord = citus_node('coordinator');
my $w1 = citus_node('worker1');
my $w2 = citus_node('worker2');
my @nodes = ($coord, $w1, $w2);
my %name = ($coord => 'coordinator', $w1 => 'worker1', $w2 => 'worker2');

$coord->safe_psql(
	'postgres', sprintf(
		q{
SELECT citus_set_coordinator_host('127.0.0.1', %d);
SELECT citus_add_node('127.0.0.1', %d);
SELECT citus_add_node('127.0.0.1', %d);
CREATE ROLE app LOGIN;
CREATE SCHEMA connlog;
CREATE EXTENSION connlog SCHEMA connlog;
CREATE TABLE public.connection_logs (
	id uuid NOT NULL,
	connect_time timestamptz NOT NULL,
	organization_id uuid NOT NULL,
	workspace_owner_id uuid NOT NULL,
	workspace_id uuid NOT NULL,
	workspace_name text NOT NULL,
	agent_name text NOT NULL,
	type text NOT NULL,
	ip inet,
	code integer,
	user_agent text,
	user_id uuid,
	slug_or_port text,
	connection_id uuid,
	disconnect_time timestamptz,
	disconnect_reason text,
	PRIMARY KEY (id, workspace_id),
	UNIQUE (connection_id, workspace_id, agent_name)
);
CREATE INDEX ON public.connection_logs (connect_time DESC);
ALTER TABLE public.connection_logs OWNER TO app;
SELECT create_distributed_table('public.connection_logs', 'workspace_id');
-- connection n: uid(2, n), workspace n %% 64, connects at t0(n), leaves an
-- hour later; web event n: uid(5, n), no connection_id.  The checks are
-- PL/pgSQL: Citus does not plan a SQL function's parameters.
CREATE FUNCTION uid(k int, n bigint) RETURNS uuid IMMUTABLE LANGUAGE sql AS
$$ SELECT (lpad(k::text, 8, '0') || '-0000-0000-0000-' || lpad(n::text, 12, '0'))::uuid $$;
CREATE FUNCTION t0(n bigint) RETURNS timestamptz IMMUTABLE LANGUAGE sql AS
$$ SELECT timestamptz '2024-01-01 00:00:00+00' + n * interval '1 s' $$;
CREATE FUNCTION cev(n bigint, st text) RETURNS void LANGUAGE sql AS $$
  SELECT connlog.connlog_enqueue(
    id => uid(CASE st WHEN 'connected' THEN 3 ELSE 4 END, n),
    event_time => t0(n) + CASE st WHEN 'connected' THEN interval '0'
                                  ELSE interval '1 h' END,
    organization_id => uid(10, 0), workspace_owner_id => uid(11, 0),
    workspace_id => uid(12, n %% 64), workspace_name => 'dev',
    agent_name => 'main', type => 'ssh',
    status => st::connlog.connection_status,
    connection_id => uid(2, n), ip => '10.1.2.3',
    disconnect_reason => CASE st WHEN 'disconnected' THEN 'bye' END)
$$;
CREATE FUNCTION web(n bigint) RETURNS void LANGUAGE sql AS $$
  SELECT connlog.connlog_enqueue(
    id => uid(5, n), event_time => t0(n),
    organization_id => uid(10, 0), workspace_owner_id => uid(11, 0),
    workspace_id => uid(12, n %% 64), workspace_name => 'dev',
    agent_name => 'main', type => 'workspace_app', status => 'connected',
    slug_or_port => 'code-server')
$$;
-- connections lo..hi whose row, in its workspace, spans exactly connect
-- to disconnect (n is the last 12 digits of the connection_id)
CREATE FUNCTION good(lo bigint, hi bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  RETURN (SELECT count(*) FROM public.connection_logs l
  WHERE l.connection_id BETWEEN uid(2, lo) AND uid(2, hi)
    AND l.workspace_id = uid(12, right(l.connection_id::text, 12)::bigint %% 64)
    AND l.connect_time = t0(right(l.connection_id::text, 12)::bigint)
    AND l.disconnect_time = l.connect_time + interval '1 h'
    AND l.disconnect_reason = 'bye');
END
$$;
CREATE FUNCTION rows_between(k int, lo bigint, hi bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
  RETURN (SELECT count(*) FROM public.connection_logs
  WHERE coalesce(connection_id, id) BETWEEN uid(k, lo) AND uid(k, hi));
END
$$;
}, $coord->port, $w1->port, $w2->port));

is( $w1->safe_psql(
		'postgres',
		q{SELECT extnamespace::regnamespace FROM pg_extension WHERE extname = 'connlog'}
	),
	'connlog',
	'CREATE EXTENSION on the coordinator reaches the worker nodes');

# the accounting identity, and no event rejected or dropped, on every node
sub identity_everywhere
{
	my ($what) = @_;
	for my $node (@nodes)
	{
		$node->safe_psql('postgres', 'SELECT connlog_flush()');
		my ($enq, $written, $merged, $rej, $drop, $pending, $ok) =
		  split /\|/, connlog_counts($node);
		is("$ok $rej $drop $pending", 't 0 0 0',
			"$what: $name{$node}: identity holds ($enq enqueued), nothing rejected, dropped or pending"
		);
	}
	return;
}

sub q_all
{
	my ($node, $sql) = @_;
	return $node->safe_psql('postgres', $sql);
}

# wait until the coordinator's worker has retried a held batch n more times
sub wait_retries
{
	my ($n) = @_;
	my $base = q_all($coord, 'SELECT retries FROM connlog_stats');
	$coord->poll_query_until('postgres',
		"SELECT retries >= $base + $n FROM connlog_stats")
	  or die 'the batch was not retried';
	return;
}

###########################################################################
# Enqueue on the coordinator, then on a worker node
###########################################################################
q_all($coord, q{
SELECT count(cev(n, 'connected')) FROM generate_series(1, 2000) n;
SELECT count(cev(n, 'disconnected')) FROM generate_series(1, 2000) n;
SELECT count(web(n)) FROM generate_series(1, 300) n;
SELECT connlog_flush();
});
is(q_all($coord, 'SELECT good(1, 2000), rows_between(5, 1, 300)'),
	'2000|300', 'coordinator: 2000 connections merged, 300 web events');
is(q_all($coord, 'SELECT count(DISTINCT nodeport) FROM citus_shards'),
	'2', 'the rows are spread over both worker nodes');

# The coordinator's connlog worker keeps its connections to a worker node
# open between batches.  Citus names each connection by the global pid of
# the backend that opened it (node id * 10^10 + pid); with Citus's default
# of one cached connection per node only one would be left.
sub kept_connections
{
	my $pid = worker_pid($coord);
	return q_all(
		$w1, qq{SELECT count(*) FROM pg_stat_activity
  WHERE application_name LIKE 'citus_internal gpid=%'
    AND split_part(application_name, '=', 2)::bigint % 10000000000 = $pid});
}
my $kept = kept_connections();
cmp_ok($kept, '>', 1,
	"the coordinator's worker keeps more than one connection to a worker node ($kept)"
);

q_all($w1, q{
SELECT count(cev(n, 'connected')) FROM generate_series(2001, 4000) n;
SELECT count(cev(n, 'disconnected')) FROM generate_series(2001, 4000) n;
SELECT count(web(n)) FROM generate_series(301, 600) n;
SELECT connlog_flush();
});
is(q_all($coord, 'SELECT good(2001, 4000), rows_between(5, 301, 600)'),
	'2000|300', 'worker node: 2000 connections merged, 300 web events');
identity_everywhere('enqueue on one node');

###########################################################################
# Both at once: each connection connects on one node and disconnects on
# the other, both nodes enqueueing at the same time
###########################################################################
my @psql = ('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', 'postgres');
my @runs;
for my $run ([ $coord, 'connected', 4001 ], [ $w1, 'disconnected', 4001 ],
	[ $w1, 'connected', 14001 ], [ $coord, 'disconnected', 14001 ])
{
	my ($node, $status, $lo) = @$run;
	my $hi = $lo + 9999;
	push @runs,
	  IPC::Run::start(
		[
			@psql, '-h', $node->host, '-p', $node->port, '-c',
			"SELECT count(cev(n, '$status')) FROM generate_series($lo, $hi) n"
		],
		'>', \my $out, '2>', \my $err);
}
ok($_->finish, 'concurrent enqueue finished') for @runs;
$_->safe_psql('postgres', 'SELECT connlog_flush()') for @nodes;
is(q_all($coord, 'SELECT good(4001, 24000), rows_between(2, 4001, 24000)'),
	'20000|20000',
	'both at once: 20000 connections, each connect and disconnect from different nodes, merged exactly'
);
identity_everywhere('both at once');

###########################################################################
# A worker node down for longer than max_retries retries, then back: the
# batches wait for it; none is split, no row rejected
###########################################################################
$w2->stop('fast');
q_all($coord,
	'SELECT count(cev(n, \'connected\')) FROM generate_series(24001, 25000) n'
);
wait_retries(10);
like(
	q_all($coord, 'SELECT last_error FROM connlog_stats'),
	qr/\(SQLSTATE (08006|XX000)\)/,
	'worker node down: last_error says why');
is(q_all($coord, 'SELECT rejected, pending > 0 FROM connlog_stats'),
	'0|t', 'worker node down: events wait, none rejected');
$w2->start;
q_all($coord,
	'SELECT count(cev(n, \'disconnected\')) FROM generate_series(24001, 25000) n'
);
identity_everywhere('worker node down and back');
is(q_all($coord, 'SELECT good(24001, 25000)'),
	'1000', 'worker node back: 1000 connections merged');

###########################################################################
# A worker node restarted: the connections Citus cached to it are dead, and
# the next write fails on one; nothing is rejected
###########################################################################
for my $round (1 .. 3)
{
	my $lo = 25000 + $round * 1000 - 999;
	my $hi = 25000 + $round * 1000;
	q_all($coord,
		"SELECT count(cev(n, 'connected')) FROM generate_series($lo, $hi) n; SELECT connlog_flush()"
	);
	$w2->restart;
	q_all($coord,
		"SELECT count(cev(n, 'disconnected')) FROM generate_series($lo, $hi) n; SELECT connlog_flush()"
	);
	is(q_all($coord, "SELECT good($lo, $hi)"),
		'1000', "worker node restarted ($round): 1000 connections merged");
}
identity_everywhere('worker node restarted');

###########################################################################
# Replay after a connlog worker restart: the coordinator's worker holds
# events it cannot write (worker2 down), is terminated and exits at once
# (shutdown_timeout 0); its successor writes them with the statement for
# rows that may have been written, which Citus must plan
###########################################################################
reload_conf($coord, 'connlog.shutdown_timeout' => '0');
$w2->stop('fast');
q_all($coord, q{
SELECT count(cev(n, 'connected')) FROM generate_series(30001, 30500) n;
SELECT count(web(n)) FROM generate_series(601, 800) n;
});
wait_retries(1);
terminate_worker($coord) or die 'no new worker';
$w2->start;
q_all($coord,
	"SELECT count(cev(n, 'disconnected')) FROM generate_series(30001, 30500) n"
);
identity_everywhere('replay after a connlog worker restart');
is(q_all($coord, 'SELECT good(30001, 30500), rows_between(5, 601, 800)'),
	'500|200',
	'replay after a connlog worker restart: 500 connections, 200 web events');
reload_conf($coord, 'connlog.shutdown_timeout' => '10s');

###########################################################################
# connlog.durability = wal on worker1, and a crash of worker1 with events
# in its ring (worker2 is down, so they wait): they are read back from
# WAL and written once
###########################################################################
$w1->append_conf('postgresql.conf', "connlog.durability = wal\n");
$w1->restart;
wait_for_worker($w1);
$w2->stop('fast');
q_all($w1, q{
SELECT count(cev(n, 'connected')) FROM generate_series(40001, 41000) n;
SELECT count(web(n)) FROM generate_series(1001, 1200) n;
});
# the crash loses none of them: wait until their WAL is written out
my $lsn = q_all($w1, 'SELECT pg_current_wal_insert_lsn()');
$w1->poll_query_until('postgres',
	"SELECT pg_current_wal_flush_lsn() >= '$lsn'")
  or die 'WAL not flushed';
crash_restart($w1);
$w2->start;
q_all($w1,
	"SELECT count(cev(n, 'disconnected')) FROM generate_series(40001, 41000) n"
);
identity_everywhere('wal durability and a crash');
is(q_all($coord, 'SELECT good(40001, 41000), rows_between(5, 1001, 1200)'),
	'1000|200',
	'wal, crash of the enqueuing node: 1000 connections, 200 web events, each once');
like(
	slurp_file($w1->logfile),
	qr/connlog replayed [1-9][0-9]* events from WAL/,
	'wal: the events were read back from WAL');

###########################################################################
# The owner of the table refused on one worker node (no USAGE on schema
# public there, which this node's privilege check cannot see): the
# batches are held with the node's error, the worker's state does not
# flip, no row is rejected; once granted, everything is written
###########################################################################
q_all($w2, q{
SET citus.enable_ddl_propagation = off;
REVOKE USAGE ON SCHEMA public FROM PUBLIC;
});
my $log_offset = -s $coord->logfile;
q_all($coord,
	"SELECT count(cev(n, 'connected')) FROM generate_series(50001, 51000) n"
);
# (the first retries may meet connections Citus cached to the nodes
# restarted above, each dead, each failing once)
my $w2port = $w2->port;
my $refused =
  "permission denied for schema public (SQLSTATE 42501, on node 127.0.0.1:$w2port)";
ok( $coord->poll_query_until(
		'postgres', "SELECT last_error = '$refused' FROM connlog_stats"),
	'owner refused on a worker node: last_error names the privilege and the node'
);
is( q_all(
		$coord,
		"SELECT rejected, pending > 0, worker_state <> 'missing privileges' FROM connlog_stats"
	),
	'0|t|t',
	'owner refused on a worker node: held, nothing rejected, no missing privilege');
q_all($w2, q{
SET citus.enable_ddl_propagation = off;
GRANT USAGE ON SCHEMA public TO PUBLIC;
});
q_all($coord,
	"SELECT count(cev(n, 'disconnected')) FROM generate_series(50001, 51000) n"
);
identity_everywhere('owner refused on a worker node');
is(q_all($coord, 'SELECT good(50001, 51000)'),
	'1000', 'owner granted again: 1000 connections merged');
my $log = substr(slurp_file($coord->logfile), $log_offset);
unlike($log, qr/writing resumes|cannot write with the privileges/,
	'owner refused on a worker node: no state flips');
like($log, qr/A node of the Citus cluster failed or refused the statement/,
	'owner refused on a worker node: the log says a node refused');

###########################################################################
# The coordinator down: the worker nodes hold Citus's metadata, so a
# worker node's connlog goes on writing what is enqueued there
###########################################################################
$coord->stop('fast');
q_all($w1, q{
SELECT count(cev(n, 'connected')) FROM generate_series(70001, 71000) n;
SELECT count(cev(n, 'disconnected')) FROM generate_series(70001, 71000) n;
SELECT connlog_flush();
});
is(q_all($w1, 'SELECT good(70001, 71000)'),
	'1000', 'coordinator down: a worker node writes what is enqueued on it');
$coord->start;
identity_everywhere('coordinator down and back');

###########################################################################
# An operator's citus.max_cached_conns_per_worker wins over connlog's
###########################################################################
reload_conf($coord, 'citus.max_cached_conns_per_worker' => '1');
terminate_worker($coord) or die 'no new worker';
q_all($coord, q{
SELECT count(cev(n, 'connected')) FROM generate_series(60001, 61000) n;
SELECT connlog_flush();
});
is(kept_connections(), '1',
	'citus.max_cached_conns_per_worker set by the operator: one connection kept'
);
$coord->safe_psql('postgres',
	'ALTER SYSTEM RESET citus.max_cached_conns_per_worker; SELECT pg_reload_conf()'
);

###########################################################################
# Retention on the distributed table: every row from 2024 is older than
# 100 days, the young ones stay; purged counts exactly
###########################################################################
q_all($coord, q{
SELECT count(connlog_enqueue(id => uid(6, n), event_time => now(),
	organization_id => uid(10, 0), workspace_owner_id => uid(11, 0),
	workspace_id => uid(12, n % 64), workspace_name => 'young',
	agent_name => 'main', type => 'workspace_app', status => 'connected'))
FROM generate_series(1, 100) n;
SELECT connlog_flush();
});
my $old = q_all($coord,
	"SELECT count(*) FROM public.connection_logs WHERE workspace_name <> 'young'"
);
reload_conf(
	$coord,
	'connlog.purge_batch_size' => '1000',
	'connlog.purge_interval' => '1s',
	'connlog.retention' => '100d');
$coord->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM public.connection_logs WHERE workspace_name <> 'young'"
) or die 'retention did not purge';
reload_conf($coord, 'connlog.retention' => '0');
is(q_all($coord, 'SELECT purged FROM connlog_stats'),
	$old, "retention: purged counts the $old old rows");
is(q_all($coord, 'SELECT count(*) FROM public.connection_logs'),
	'100', 'retention: the 100 young rows stay');
identity_everywhere('retention');

$_->stop for @nodes;
done_testing();
