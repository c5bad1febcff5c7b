# coder's own database: connection_logs as coder's migrations make it
# (type of the enum connection_type, ip nullable, foreign keys with ON
# DELETE CASCADE to organizations, users and workspaces), owned by role
# coder in public; the extension in schema connlog, writing there through
# connlog.target_table as connlog.role connlog_writer.  Events merge into
# coder's rows; a label the enum lacks and a deleted workspace cost only
# their own rows, which are rejected with the reason and written after
# the fix by the documented replay; coder's own batch upsert runs against
# the same connection ids while connlog writes, and both writers' merges
# agree; coder's read queries filter on its enum; and a database updated
# from 1.2 writes there too, with the members of a fresh 1.3.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

my $node = coder_node(
	'coder', q{
connlog.flush_interval = 100ms
connlog.retry_interval = 100ms
});

# A connect or disconnect event of connection n of type $type in
# workspace $ws (uid(12, 0) unless given), of the helpers' shape, with
# $extra (a JSON object's text) if given.
sub event_sql
{
	my ($n, $status, $type, $ws, $extra) = @_;
	$ws //= 'uid(12, 0)';
	my $disc = $status eq 'disconnected';
	return sprintf(
		q{SELECT connlog_enqueue(id => uid(%d, %d), event_time => t0(%d)%s,
  organization_id => uid(10, 0), workspace_owner_id => uid(11, 0),
  workspace_id => %s, workspace_name => 'dev', agent_name => 'main',
  type => '%s', status => '%s', connection_id => uid(2, %d)%s%s);},
		$disc ? 4 : 3, $n, $n, $disc ? " + interval '1 h'" : '',
		$ws, $type, $status, $n,
		$disc ? ", disconnect_reason => 'bye'" : '',
		defined $extra ? ", extra => '$extra'" : '');
}

# --- connect/disconnect merges into rows of coder's enum type
$node->safe_psql('postgres',
	q{SELECT pair(1); SELECT connlog_flush(); SELECT ev(2); SELECT connlog_flush();
	  SELECT ev(2, 'disconnected'); SELECT connlog_flush();});
is( $node->safe_psql(
		'postgres',
		'SELECT good_pairs(1, 2), count(*), min(pg_typeof(type)::text), min(type::text), min(host(ip)) FROM public.connection_logs'
	),
	'2|2|connection_type|ssh|10.1.2.3',
	'connect and disconnect merge into coder\'s rows, type of its enum');
is($node->safe_psql('postgres', 'SELECT count(*) FROM connlog.connection_logs'),
	'0', 'the extension\'s own connection_logs stays empty');

# --- web events (no connection_id, NULL ip) and a tunnel (NULL ip)
$node->safe_psql(
	'postgres', q{
SELECT connlog_enqueue(id => uid(5, 1), event_time => t0(100),
  organization_id => uid(10, 0), workspace_owner_id => uid(11, 0),
  workspace_id => uid(12, 0), workspace_name => 'dev', agent_name => 'main',
  type => 'workspace_app', status => 'connected', code => 200,
  user_agent => 'Mozilla/5.0', user_id => uid(11, 0),
  slug_or_port => 'code-server');
SELECT connlog_enqueue(id => uid(5, 2), event_time => t0(101),
  organization_id => uid(10, 0), workspace_owner_id => uid(11, 0),
  workspace_id => uid(12, 0), workspace_name => 'dev', agent_name => 'main',
  type => 'port_forwarding', status => 'connected', code => 502,
  ip => '10.0.0.9', user_agent => 'curl/8.5.0', user_id => uid(11, 0),
  slug_or_port => '8080');
SELECT connlog_enqueue(id => uid(5, 3), event_time => t0(102),
  organization_id => uid(10, 0), workspace_owner_id => uid(11, 0),
  workspace_id => uid(12, 0), workspace_name => 'dev', agent_name => 'main',
  type => 'tunnel', status => 'connected', connection_id => uid(6, 3));
SELECT connlog_enqueue(id => uid(5, 4), event_time => t0(102) + interval '5 min',
  organization_id => uid(10, 0), workspace_owner_id => uid(11, 0),
  workspace_id => uid(12, 0), workspace_name => 'dev', agent_name => 'main',
  type => 'tunnel', status => 'disconnected', connection_id => uid(6, 3),
  code => 0, disconnect_reason => 'closed');
SELECT connlog_flush();
});
is( $node->safe_psql(
		'postgres', q{
SELECT string_agg(concat_ws(',', type, coalesce(host(ip), 'null'), code,
         connection_id IS NULL, slug_or_port, disconnect_time - connect_time,
         disconnect_reason), ' ' ORDER BY type)
FROM public.connection_logs WHERE type <> 'ssh'}),
	'workspace_app,null,200,t,code-server port_forwarding,10.0.0.9,502,t,8080 tunnel,null,0,f,00:05:00,closed',
	'web events, and a tunnel merged, with NULL ips');

# --- a label the enum lacks: only its own row is rejected, with the
# input function's error; written after ALTER TYPE ... ADD VALUE by the
# documented replay
$node->safe_psql('postgres',
	'SELECT pair(3);'
	  . event_sql(10, 'connected', 'file_transfer')
	  . 'SELECT pair(4); SELECT connlog_flush();');
is( $node->safe_psql(
		'postgres',
		q{SELECT error, event->>'type', event->>'connection_id' = uid(2, 10)::text FROM connlog.connection_logs_rejected}
	),
	'invalid input value for enum public.connection_type: "file_transfer" (SQLSTATE 22P02)|file_transfer|t',
	'a label the enum lacks: its row is rejected with the reason');
is($node->safe_psql('postgres', 'SELECT good_pairs(3, 4)'),
	'2', 'and the rest of its batch is written');
is(counters_identity($node, 'postgres', qw(rejected dropped pending)),
	'1|0|0|t', 'every event accounted for, one rejected');

# the replay doc/connlog.md gives for coder's table
my $replay = q{
WITH r AS (DELETE FROM connlog.connection_logs_rejected
           WHERE error LIKE 'invalid input value for enum public.connection_type:%'
           RETURNING event)
INSERT INTO public.connection_logs AS c (id, connect_time, organization_id,
  workspace_owner_id, workspace_id, workspace_name, agent_name, type, ip,
  code, user_agent, user_id, slug_or_port, connection_id, disconnect_time,
  disconnect_reason)
SELECT e.id, e.connect_time, e.organization_id, e.workspace_owner_id,
  e.workspace_id, e.workspace_name, e.agent_name, e.type, e.ip, e.code,
  e.user_agent, e.user_id, e.slug_or_port, e.connection_id,
  e.disconnect_time, e.disconnect_reason
FROM r, jsonb_populate_record(NULL::public.connection_logs, r.event) e
ON CONFLICT (connection_id, workspace_id, agent_name) DO UPDATE SET
  connect_time = LEAST(c.connect_time, excluded.connect_time),
  disconnect_time = GREATEST(c.disconnect_time, excluded.disconnect_time),
  code = COALESCE(c.code, excluded.code),
  disconnect_reason = COALESCE(c.disconnect_reason, excluded.disconnect_reason);
};
$node->safe_psql('postgres',
	"SET ROLE coder; ALTER TYPE connection_type ADD VALUE 'file_transfer';");
$node->safe_psql('postgres', $replay);
is( $node->safe_psql(
		'postgres',
		q{SELECT type, connect_time = t0(10), (SELECT count(*) FROM connlog.connection_logs_rejected) FROM public.connection_logs WHERE connection_id = uid(2, 10)}
	),
	'file_transfer|t|0',
	'after ADD VALUE, the replay writes it');
$node->safe_psql('postgres',
	event_sql(11, 'connected', 'file_transfer') . 'SELECT connlog_flush();');
is( $node->safe_psql(
		'postgres',
		'SELECT count(*) FROM public.connection_logs WHERE connection_id = uid(2, 11)'
	),
	'1',
	'and the worker writes the new label from then on');

# --- a workspace coder deleted: the foreign key refuses its row alone
$node->safe_psql(
	'postgres', q{
SET ROLE coder;
INSERT INTO workspaces (id, created_at, updated_at, owner_id,
	organization_id, template_id, name)
VALUES (uid(14, 0), now(), now(), uid(11, 0), uid(10, 0), uid(13, 0), 'gone');
DELETE FROM workspaces WHERE id = uid(14, 0);
});
$node->safe_psql('postgres',
	'SELECT pair(5);'
	  . event_sql(12, 'connected', 'ssh', 'uid(14, 0)')
	  . 'SELECT pair(6); SELECT connlog_flush();');
is( $node->safe_psql(
		'postgres',
		q{SELECT error, event->>'workspace_id' = uid(14, 0)::text FROM connlog.connection_logs_rejected}
	),
	'insert or update on table "connection_logs" violates foreign key constraint "connection_logs_workspace_id_fkey" (SQLSTATE 23503)|t',
	'a deleted workspace: its row is rejected with the foreign key\'s reason'
);
is($node->safe_psql('postgres', 'SELECT good_pairs(5, 6)'),
	'2', 'and the rest of its batch is written');
$node->safe_psql('postgres', 'DELETE FROM connlog.connection_logs_rejected');

# --- coder's read queries: GetConnectionLogsOffset's joins, its type
# filter as the enum, and its status filter
my $read = q{
PREPARE logs(text, text) AS
SELECT count(*) FROM connection_logs
JOIN users AS workspace_owner ON
	connection_logs.workspace_owner_id = workspace_owner.id
LEFT JOIN users ON connection_logs.user_id = users.id
JOIN organizations ON connection_logs.organization_id = organizations.id
WHERE CASE WHEN $1 != '' THEN type = $1::connection_type ELSE true END
	AND CASE WHEN $2 != '' THEN
		(($2 = 'ongoing' AND disconnect_time IS NULL) OR
		 ($2 = 'completed' AND disconnect_time IS NOT NULL)) AND
		"type" NOT IN ('workspace_app', 'port_forwarding', 'tunnel')
	ELSE true END;
};
is( $node->safe_psql(
		'postgres', $read . q{
EXECUTE logs('ssh', '');
EXECUTE logs('tunnel', '');
EXECUTE logs('workspace_app', '');
EXECUTE logs('file_transfer', '');
EXECUTE logs('', 'ongoing');
EXECUTE logs('', 'completed');
EXECUTE logs('', '');
}),
	"6\n1\n1\n2\n2\n6\n11",
	'coder\'s read queries: the type filter as its enum, the status filter');

# --- coder's own batch upsert against the same connection ids while
# connlog writes them: four clients, as coderd replicas, each upserting
# the connections of its own agents (75 of them, in a random order, as
# coder's batcher orders its map) again and again, and connlog all 300.
# coder's rows carry a later connect (or its unknown-time mark) and the
# same disconnect; every row must end with connlog's connect time, the one
# disconnect, and its reason.
my $before = $node->safe_psql('postgres',
	'SELECT rejected, dropped FROM connlog_stats');
my $log_offset = -s $node->logfile;
my $arrays = q{
SELECT array_agg(uid(8, n) ORDER BY r) AS id,
  array_agg(CASE WHEN k THEN t0(n) + interval '10 s'
            ELSE '0001-01-01 00:00:00Z' END ORDER BY r) AS connect_time,
  array_agg(uid(10, 0) ORDER BY r) AS organization_id,
  array_agg(uid(11, 0) ORDER BY r) AS workspace_owner_id,
  array_agg(uid(12, 0) ORDER BY r) AS workspace_id,
  array_agg('dev'::text ORDER BY r) AS workspace_name,
  array_agg('main'::text ORDER BY r) AS agent_name,
  array_agg('ssh'::connection_type ORDER BY r) AS type,
  array_agg(0 ORDER BY r) AS code,
  array_agg(false ORDER BY r) AS code_valid,
  array_agg('10.9.9.9'::inet ORDER BY r) AS ip,
  array_agg(''::text ORDER BY r) AS user_agent,
  array_agg('00000000-0000-0000-0000-000000000000'::uuid ORDER BY r) AS user_id,
  array_agg(''::text ORDER BY r) AS slug_or_port,
  array_agg(uid(2, n) ORDER BY r) AS connection_id,
  array_agg(CASE WHEN k THEN '' ELSE 'bye' END ORDER BY r) AS disconnect_reason,
  array_agg(CASE WHEN k THEN '0001-01-01 00:00:00Z'
            ELSE t0(n) + interval '1 h' END ORDER BY r) AS disconnect_time
FROM (SELECT n, random() AS r, random() < 0.5 AS k
      FROM generate_series(:lo, :lo + 74) n) s};
my $script = $node->basedir . '/coder_batch.sql';
# coder's statement unnests its seventeen arrays in its SELECT list
my $unnest = join(",\n",
	map { "unnest(a.$_) AS $_" }
	  qw(id connect_time organization_id workspace_owner_id workspace_id
	  workspace_name agent_name type code code_valid ip user_agent user_id
	  slug_or_port connection_id disconnect_reason disconnect_time));
append_to_file($script,
	"\\set lo 1001 + 75 * :client_id\n"
	  . coder_batch_upsert_sql("SELECT $unnest FROM ($arrays) a")
	  . ";\n");
my ($pgb_out, $pgb_err) = ('', '');
my $pgbench = IPC::Run::start(
	[
		'pgbench', '-n', '-c', '4', '-t', '40', '--max-tries=20',
		'-f', $script, '-h', $node->host, '-p', $node->port, 'postgres'
	],
	'>', \$pgb_out, '2>', \$pgb_err);
for (my $lo = 1001; $lo <= 1300; $lo += 20)
{
	my $hi = $lo + 19;
	$node->safe_psql('postgres',
		"SELECT pair(n) FROM generate_series($lo, $hi) n; SELECT connlog_flush();"
	);
}
$pgbench->finish;
is($pgbench->result(0), 0, 'coder\'s batch upserts ran')
  or diag $pgb_out . $pgb_err;
like($pgb_out, qr/number of failed transactions: 0 /,
	'none of coder\'s batch upserts failed for good');
is($node->safe_psql('postgres', 'SELECT good_pairs(1001, 1300)'),
	'300',
	'every row: connlog\'s connect time, the disconnect and its reason');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FROM public.connection_logs WHERE connect_time = '0001-01-01 00:00:00Z'}
	),
	'0',
	'no row keeps coder\'s mark of an unknown connect time');
is( counters_identity($node, 'postgres', qw(rejected dropped pending)),
	"$before|0|t",
	'connlog: every event accounted for, none rejected or dropped meanwhile');
# the worker's failed writes meanwhile: deadlocks with coder's statements
# only, which it retried, and far fewer than its statements
my @failed = slurp_file($node->logfile, $log_offset) =~
  /WARNING:  connlog could not write \d+ connection log rows: (.*)/g;
my ($retried) = $pgb_out =~ /number of transactions retried: (\d+)/;
note 'connlog\'s deadlocks: ' . scalar(@failed)
  . ", coder's statements retried: " . ($retried // '?');
is(join(',', grep { !/^deadlock detected \(SQLSTATE 40P01\)$/ } @failed),
	'', 'the worker\'s only failed writes were deadlocks');
cmp_ok(scalar(@failed), '<', 15, 'no deadlock storm');

# --- coder's cascading delete while connlog writes into the workspace:
# what was written goes with the workspace, what comes after is refused
# by the foreign key, and every event is accounted for
$node->safe_psql(
	'postgres', q{
SET ROLE coder;
INSERT INTO workspaces (id, created_at, updated_at, owner_id,
	organization_id, template_id, name)
VALUES (uid(15, 0), now(), now(), uid(11, 0), uid(10, 0), uid(13, 0), 'tmp');
});
$node->safe_psql('postgres',
	join('', map { event_sql($_, 'connected', 'ssh', 'uid(15, 0)') } 2001 .. 2010)
	  . 'SELECT connlog_flush();');
is( $node->safe_psql(
		'postgres',
		'SELECT count(*) FROM public.connection_logs WHERE workspace_id = uid(15, 0)'
	),
	'10',
	'the workspace\'s rows are written');
$node->safe_psql('postgres',
	'SET ROLE coder; DELETE FROM workspaces WHERE id = uid(15, 0);');
$node->safe_psql('postgres',
	join('', map { event_sql($_, 'disconnected', 'ssh', 'uid(15, 0)') } 2001 .. 2010)
	  . 'SELECT pair(2011); SELECT connlog_flush();');
is( $node->safe_psql(
		'postgres',
		q{SELECT (SELECT count(*) FROM public.connection_logs WHERE workspace_id = uid(15, 0)),
		         (SELECT count(*) FROM connlog.connection_logs_rejected WHERE error LIKE '%"connection_logs_workspace_id_fkey"%'),
		         good_pairs(2011, 2011)}
	),
	'0|10|1',
	'after the cascade: its later events rejected by the foreign key, others written'
);
is(counters_identity($node, 'postgres', 'dropped'),
	'0|t',
	'every event accounted for, nothing dropped');
$node->safe_psql('postgres', 'DELETE FROM connlog.connection_logs_rejected');

# --- an application column, added as a coder migration adds one (a
# nullable column, by its owner), filled through extra as role coder.
# Rows with extra are written by a statement of their own, which converts
# the enum column as the plain one does: connect and disconnect merge in
# one batch and across two, where a NULL is filled and a value kept; a
# label the enum lacks costs its own row, rejected with its extra; rows
# without extra leave the column alone.
my $rejected = $node->safe_psql('postgres', 'SELECT rejected FROM connlog_stats');
$node->safe_psql('postgres',
	'SET ROLE coder; ALTER TABLE connection_logs ADD COLUMN client_session_id text;'
);
$node->safe_psql(
	'postgres',
	'SET ROLE coder;'
	  . event_sql(3001, 'connected', 'vscode', undef, '{"client_session_id": "cs-1"}')
	  . event_sql(3001, 'disconnected', 'vscode')
	  . event_sql(3002, 'connected', 'jetbrains', undef, '{"client_session_id": "cs-2"}')
	  . event_sql(3003, 'connected', 'ssh')
	  . event_sql(3004, 'connected', 'vpn', undef, '{"client_session_id": "cs-4"}')
	  . 'SELECT pair(3005); SELECT connlog_flush();');
$node->safe_psql(
	'postgres',
	'SET ROLE coder;'
	  . event_sql(3002, 'disconnected', 'jetbrains', undef, '{"client_session_id": "other"}')
	  . event_sql(3003, 'disconnected', 'ssh', undef, '{"client_session_id": "cs-3"}')
	  . 'SELECT connlog_flush();');
is( $node->safe_psql(
		'postgres', q{
SELECT string_agg(concat_ws(',', right(connection_id::text, 4), type,
         client_session_id, disconnect_time - connect_time, disconnect_reason),
       ' ' ORDER BY connection_id)
FROM public.connection_logs WHERE connection_id IN
  (uid(2, 3001), uid(2, 3002), uid(2, 3003), uid(2, 3004), uid(2, 3005))}),
	'3001,vscode,cs-1,01:00:00,bye 3002,jetbrains,cs-2,01:00:00,bye '
	  . '3003,ssh,cs-3,01:00:00,bye 3005,ssh,01:00:00,bye',
	'client_session_id through extra: merged, kept, filled; the enum converted alongside'
);
is( $node->safe_psql(
		'postgres',
		q{SELECT error, event->>'connection_id' = uid(2, 3004)::text, event->'extra' FROM connlog.connection_logs_rejected}
	),
	'invalid input value for enum public.connection_type: "vpn" (SQLSTATE 22P02)|t|{"client_session_id": "cs-4"}',
	'a label the enum lacks in a row with extra: that row alone, with its extra'
);
my ($rc, $out, $err) = $node->psql('postgres',
	'SET ROLE coder;'
	  . event_sql(3006, 'connected', 'ssh', undef, '{"client_session": "x"}'));
like(
	$err,
	qr/ERROR:  key "client_session" of argument "extra" of connlog_enqueue names no column of table public\.connection_logs/,
	'a key naming no column of coder\'s table is refused at enqueue');

# --- connlog_enqueue_batch as role coder, with the seventeen arrays its
# batcher gives BatchUpsertConnectionLogs (Go's zero values included): a
# connect and disconnect merged by the batcher, a standalone disconnect
# (connect_time = disconnect_time), a web event.  With one bad element
# (an empty type) the call is refused, naming it, and enqueues nothing.
sub batch_sql
{
	my ($type2) = @_;
	return qq{SET ROLE coder;
SELECT connlog_enqueue_batch(
  ARRAY[uid(3, 4001), uid(4, 4002), uid(5, 4003)],
  ARRAY[t0(4001), t0(4002) + interval '1 h', t0(4003)],
  ARRAY[uid(10, 0), uid(10, 0), uid(10, 0)],
  ARRAY[uid(11, 0), uid(11, 0), uid(11, 0)],
  ARRAY[uid(12, 0), uid(12, 0), uid(12, 0)],
  ARRAY['dev', 'dev', 'dev'], ARRAY['main', 'main', 'main'],
  ARRAY['ssh', '$type2', 'workspace_app'],
  ARRAY[0, 0, 200], ARRAY[false, false, true],
  ARRAY['10.1.2.3'::inet, NULL, NULL],
  ARRAY['', '', 'Mozilla/5.0'],
  ARRAY['00000000-0000-0000-0000-000000000000'::uuid,
        '00000000-0000-0000-0000-000000000000', uid(11, 0)],
  ARRAY['', '', 'code-server'],
  ARRAY[uid(2, 4001), uid(2, 4002), '00000000-0000-0000-0000-000000000000'],
  ARRAY['bye', 'lost', ''],
  ARRAY[t0(4001) + interval '1 h', t0(4002) + interval '1 h',
        '0001-01-01 00:00:00Z'::timestamptz]);};
}
my $enqueued = $node->safe_psql('postgres',
	'SELECT enqueued FROM connlog_stats');
($rc, $out, $err) = $node->psql('postgres', batch_sql(''));
like(
	$err,
	qr/ERROR:  argument "type" of connlog_enqueue_batch must not be empty\n.*CONTEXT:  element 2 of the arrays of connlog_enqueue_batch/s,
	'a bad element refuses the whole call, naming the element');
is($node->safe_psql('postgres', 'SELECT enqueued FROM connlog_stats'),
	$enqueued, 'and nothing of it is enqueued');
is($node->safe_psql('postgres', batch_sql('tunnel')),
	'4', 'coder\'s arrays: four events enqueued');
$node->safe_psql('postgres', 'SELECT connlog_flush();');
is( $node->safe_psql(
		'postgres', q{
SELECT string_agg(concat_ws(',', type, coalesce(host(ip), 'null'), code,
         connection_id IS NULL, slug_or_port, disconnect_time - connect_time,
         disconnect_reason), ' ' ORDER BY type::text)
FROM public.connection_logs WHERE id IN (uid(3, 4001), uid(4, 4002), uid(5, 4003))}),
	'ssh,10.1.2.3,f,01:00:00,bye tunnel,null,f,00:00:00,lost workspace_app,null,200,t,code-server',
	'and written into coder\'s rows, the enum converted, zero values NULL');
is( counters_identity(
		$node, 'postgres', "rejected - $rejected", 'dropped', 'pending'),
	'1|0|0|t',
	'every event accounted for; only the label the enum lacks rejected');
$node->stop;

# --- the update from 1.2: the worker writes into coder's table at 1.2
# and after ALTER EXTENSION connlog UPDATE, whose members then equal a
# fresh 1.3's
my $old = coder_node(
	'coder_12', q{
connlog.flush_interval = 100ms
}, version => '1.2');
$old->safe_psql('postgres',
	'SELECT pair(1);' . event_sql(2, 'connected', 'tunnel') . 'SELECT connlog_flush();');
is( $old->safe_psql(
		'postgres',
		q{SELECT extversion, good_pairs(1, 1), (SELECT type FROM public.connection_logs WHERE connection_id = uid(2, 2)) FROM pg_extension WHERE extname = 'connlog'}
	),
	'1.2|1|tunnel',
	'at 1.2, the worker writes into coder\'s table');
$old->safe_psql('postgres', 'ALTER EXTENSION connlog UPDATE');
$old->safe_psql('postgres', 'SELECT pair(3); SELECT connlog_flush();');
is( $old->safe_psql(
		'postgres',
		q{SELECT extversion, good_pairs(1, 3), (SELECT rejected FROM connlog_stats) FROM pg_extension WHERE extname = 'connlog'}
	),
	'1.3|2|0',
	'updated to 1.3, it goes on writing there');
$old->safe_psql('postgres', 'CREATE DATABASE fresh');
$old->safe_psql('fresh',
	'CREATE SCHEMA connlog; CREATE EXTENSION connlog SCHEMA connlog; ALTER DATABASE fresh SET search_path = public, connlog;'
);
is(extension_members($old, 'postgres'),
	extension_members($old, 'fresh'),
	'the updated extension has the members of a fresh 1.3');
$old->stop;

done_testing();
