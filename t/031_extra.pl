# extra on an application's table: connlog_enqueue's extra fills the
# table's own columns beyond connlog's sixteen, by name, through each
# column type's input function (text, varchar(n), the owner's enum), as
# the table's owner.  Keys are refused at enqueue once the worker has
# published the table's columns; a value its type refuses, or a key whose
# column was dropped since, costs only its own event, which is isolated
# with the reason and replays once fixed.  Merging keeps the first
# non-NULL value of each key, in a batch and across batches; a column
# the event does not name keeps its default.  connlog_enqueue_batch
# writes coder's arrays there too.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

# a batch is exactly what is enqueued between two connlog_flush() calls
my $node = app_table_node('extra', "connlog.flush_interval = 1h\n");
$node->safe_psql(
	'postgres', q{
SET ROLE app;
CREATE TYPE public.app_kind AS ENUM ('a', 'b');
ALTER TABLE public.connection_logs
  ADD COLUMN client_session_id text,
  ADD COLUMN short varchar(4),
  ADD COLUMN kind public.app_kind,
  ADD COLUMN created text DEFAULT 'dflt';
RESET ROLE;
CREATE FUNCTION xev(n bigint, st connection_status, extra jsonb)
RETURNS void LANGUAGE sql AS $$
  SELECT connlog_enqueue(
    id => uid(CASE st WHEN 'connected' THEN 3 ELSE 4 END, n),
    event_time => t0(n) + CASE st WHEN 'connected' THEN interval '0'
                                  ELSE interval '1 h' END,
    organization_id => uid(10, 0), workspace_owner_id => uid(11, 0),
    workspace_id => uid(12, 0), workspace_name => 'dev',
    agent_name => 'main', type => 'ssh', status => st,
    connection_id => uid(2, n), extra => extra)
$$;
SELECT connlog_flush();
});

sub row
{
	my ($n) = @_;
	return $node->safe_psql('postgres',
		"SELECT client_session_id, short, kind, created, source "
		  . "FROM public.connection_logs WHERE connection_id = uid(2, $n)");
}

sub counts
{
	return $node->safe_psql('postgres',
		'SELECT written, rejected, dropped, pending FROM connlog_stats');
}

# --- merged in one batch: first non-NULL per key; defaults kept
$node->safe_psql(
	'postgres', q{
SELECT xev(1, 'connected', '{"client_session_id": "s1", "short": "abc"}');
SELECT xev(1, 'disconnected', '{"client_session_id": "s2", "kind": "b"}');
SELECT xev(2, 'connected', NULL);
SELECT connlog_flush();
});
is(row(1), 's1|abc|b|dflt|connlog',
	'connect and disconnect merge per key; the column not named keeps its default');
is(row(2), '|||dflt|connlog', 'an event without extra leaves the columns alone');

# --- across batches: an existing non-NULL value is kept, a NULL one filled
$node->safe_psql(
	'postgres', q{
SELECT xev(2, 'disconnected', '{"client_session_id": "late", "short": 12}');
SELECT xev(1, 'disconnected', '{"client_session_id": "s3"}');
SELECT connlog_flush();
});
is(row(1), 's1|abc|b|dflt|connlog', 'a later batch keeps the non-NULL value');
is(row(2), 'late|12||dflt|connlog',
	'a later batch fills NULL columns; a number gives its text');
is(counts(), '4|0|0|0', 'every row written, none rejected');

# --- refused at enqueue: no such column, a column connlog writes itself
my ($rc, $out, $err) = $node->psql('postgres',
	q{SELECT xev(3, 'connected', '{"nope": 1}')});
like(
	$err,
	qr/ERROR:  key "nope" of argument "extra" of connlog_enqueue names no column of table public\.connection_logs/,
	'a key that names no column of the table is refused at enqueue');
($rc, $out, $err) = $node->psql('postgres',
	q{SELECT xev(3, 'connected', '{"code": 1}')});
like($err, qr/names a column of connlog's own/,
	'a key naming one of connlog\'s columns is refused');

# a column added since the worker published is found in the catalog
$node->safe_psql('postgres',
	q{ALTER TABLE public.connection_logs ADD COLUMN late text;
SELECT xev(3, 'connected', '{"late": "x"}'); SELECT connlog_flush();});
is( $node->safe_psql('postgres',
		'SELECT late FROM public.connection_logs WHERE connection_id = uid(2, 3)'),
	'x',
	'a column added after the worker prepared its statements takes its key');

# --- values the column types refuse, and a key whose column was dropped
# between enqueue and write: each isolated with its reason, the rest of
# the batch written
$node->safe_psql(
	'postgres', q{
SELECT xev(4, 'connected', '{"short": "too long"}');
SELECT xev(5, 'connected', '{"kind": "c"}');
SELECT xev(6, 'connected', '{"late": "y"}');
SELECT xev(7, 'connected', '{"client_session_id": "ok"}');
ALTER TABLE public.connection_logs DROP COLUMN late;
SELECT connlog_flush();
});
is(row(7), 'ok|||dflt|connlog', 'the good row of the batch is written');
is( $node->safe_psql(
		'postgres', q{
SELECT event->>'connection_id' = uid(2, n)::text, error, event->'extra'
FROM connlog.connection_logs_rejected,
     (VALUES (4), (5), (6)) v(n)
WHERE event->>'connection_id' = uid(2, n)::text ORDER BY n}),
	qq{t|value too long for type character varying(4) (SQLSTATE 22001)|{"short": "too long"}\n}
	  . qq{t|invalid input value for enum public.app_kind: \"c\" (SQLSTATE 22P02)|{"kind": "c"}\n}
	  . qq{t|table public.connection_logs has no column "late" that connlog can write (SQLSTATE 22023)|{"late": "y"}},
	'each refused event is isolated with its reason and its extra');
is(counts(), '6|3|0|0', 'three rejected, nothing dropped or pending');

# after the type learns the label, the documented replay writes it
$node->safe_psql(
	'postgres', q{
ALTER TYPE public.app_kind ADD VALUE 'c';
SELECT connlog_enqueue(
  id => (event->>'id')::uuid, event_time => (event->>'event_time')::timestamptz,
  organization_id => (event->>'organization_id')::uuid,
  workspace_owner_id => (event->>'workspace_owner_id')::uuid,
  workspace_id => (event->>'workspace_id')::uuid,
  workspace_name => event->>'workspace_name', agent_name => event->>'agent_name',
  type => event->>'type', status => (event->>'status')::connection_status,
  connection_id => (event->>'connection_id')::uuid, extra => event->'extra')
FROM connlog.connection_logs_rejected WHERE event->'extra' ? 'kind';
SELECT connlog_flush();
});
is(row(5), '||c|dflt|connlog', 'the replayed event is written after ADD VALUE');

# --- coder's batch statement writes into the application's table
is( $node->safe_psql(
		'postgres', q{
SELECT connlog_enqueue_batch(
  ARRAY[uid(3, 8), uid(3, 9)], ARRAY[t0(8), t0(9)],
  ARRAY[uid(10, 0), uid(10, 0)], ARRAY[uid(11, 0), uid(11, 0)],
  ARRAY[uid(12, 0), uid(12, 0)], ARRAY['dev', 'dev'], ARRAY['main', 'main'],
  ARRAY['ssh', 'tunnel'], ARRAY[0, 0], ARRAY[true, false],
  ARRAY[NULL::inet, '10.0.0.9'], ARRAY['', ''], ARRAY[NULL::uuid, NULL],
  ARRAY['', ''], ARRAY[uid(2, 8), uid(2, 9)], ARRAY['bye', ''],
  ARRAY[t0(8) + interval '1 h', '0001-01-01 00:00:00+00']);
SELECT connlog_flush();
SELECT type, code, disconnect_time - connect_time, ip
FROM public.connection_logs WHERE connection_id IN (uid(2, 8), uid(2, 9))
ORDER BY connection_id}),
	"3\n\nssh|0|01:00:00|\ntunnel|||10.0.0.9",
	'connlog_enqueue_batch: a merged pair and a tunnel connect, NULL ip kept');
is(counts(), '9|3|0|0', 'the accounting adds up');

$node->stop;
done_testing();
