# connlog.target_table: the worker writes into a table the application's own
# migrations created (public.connection_logs, owned by role app, with
# type text and a column of its own), while the extension lives in schema
# connlog.  Events land there, merge, and are purged by retention; the
# worker runs the statements on it as its owner, never with its own
# privileges; each misconfiguration holds the events with a last_error
# that names it, and they are written once it is fixed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

# The extension in its own schema, the application's role owning its
# table; sessions find both through search_path.
my $node = app_table_node(
	'app_table', qq{
connlog.flush_interval = 100ms
connlog.retry_interval = 100ms
connlog.purge_interval = 1s
});

# what the worker reports, and whether an event has been lost or rejected
sub status
{
	return $node->safe_psql('postgres',
		'SELECT worker_state, last_error, rejected, dropped FROM connlog_stats'
	);
}

# --- events land in the application's table, merged
$node->safe_psql('postgres',
	'SELECT pair(1); SELECT connlog_flush(); SELECT ev(2); SELECT connlog_flush(); SELECT ev(2, \'disconnected\'); SELECT connlog_flush();'
);
is( $node->safe_psql(
		'postgres',
		'SELECT good_pairs(1, 2), count(*), min(source), min(type) FROM public.connection_logs'
	),
	'2|2|connlog|ssh',
	'rows land in public.connection_logs, merged, its own column defaulted');
is($node->safe_psql('postgres', 'SELECT count(*) FROM connlog.connection_logs'),
	'0', 'the extension\'s own connection_logs stays empty');

# --- the statements run as the table's owner, in a restricted operation:
# a trigger the owner adds sees role app, and cannot use the worker's
# superuser privileges (ALTER ROLE fails, so does writing connlog's tables)
$node->safe_psql(
	'postgres', q{
SET ROLE app;
CREATE TABLE public.trigger_saw (who text, escalated bool, forged bool);
CREATE FUNCTION public.spy() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	esc bool := true;
	forged bool := true;
BEGIN
	BEGIN
		EXECUTE 'ALTER ROLE app SUPERUSER';
	EXCEPTION WHEN OTHERS THEN esc := false;
	END;
	BEGIN
		INSERT INTO connlog.connection_logs_rejected (error, event)
		VALUES ('forged', '{}');
	EXCEPTION WHEN OTHERS THEN forged := false;
	END;
	INSERT INTO public.trigger_saw VALUES (current_user, esc, forged);
	RETURN NEW;
END $$;
CREATE TRIGGER spy BEFORE INSERT ON public.connection_logs
	FOR EACH ROW EXECUTE FUNCTION public.spy();
});
$node->safe_psql('postgres', 'SELECT pair(3); SELECT connlog_flush();');
is( $node->safe_psql(
		'postgres', 'SELECT who, escalated, forged FROM public.trigger_saw'),
	'app|f|f',
	'the owner\'s trigger runs as app, not as the worker\'s superuser');
is( $node->safe_psql(
		'postgres',
		"SELECT rolsuper FROM pg_roles WHERE rolname = 'app'"),
	'f',
	'role app did not become a superuser');
is( $node->safe_psql(
		'postgres', 'SELECT count(*) FROM connlog.connection_logs_rejected'),
	'0', 'nothing forged in connection_logs_rejected');
$node->safe_psql('postgres',
	'DROP TRIGGER spy ON public.connection_logs; DROP TABLE public.trigger_saw'
);

# --- retention deletes from the application's table
$node->safe_psql(
	'postgres', q{
INSERT INTO public.connection_logs (id, connect_time, organization_id,
	workspace_owner_id, workspace_id, workspace_name, agent_name, type)
SELECT uid(9, n), now() - interval '3000 days', uid(10, 0), uid(11, 0),
	uid(12, 0), 'old', 'main', 'ssh'
FROM generate_series(1, 5) n;
});
# (the helpers' connections are of 2024)
reload_conf($node, 'connlog.retention' => '2000d');
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM public.connection_logs WHERE workspace_name = 'old'"
) or die 'retention did not purge';
is($node->safe_psql('postgres', 'SELECT purged FROM connlog_stats'),
	'5', 'retention purged the application\'s old rows');
is($node->safe_psql('postgres', 'SELECT good_pairs(1, 3)'),
	'3', 'and left the recent ones');
reload_conf($node, 'connlog.retention' => '0');

# --- the query functions read the application's table
$node->safe_psql('postgres',
	'SELECT ev(30); SELECT pair(31, \'other\'); SELECT connlog_flush();');
is( $node->safe_psql(
		'postgres',
		'SELECT array_agg(connection_id) FROM connlog_connections(workspace_id => uid(12, 0))'
	),
	$node->safe_psql(
		'postgres',
		'SELECT array_agg(connection_id ORDER BY connect_time DESC, id) FROM public.connection_logs WHERE workspace_id = uid(12, 0)'
	),
	'connlog_connections lists the application\'s rows, newest first');
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(workspace_name || ':' || (disconnect_time IS NULL), ',') FROM connlog_connections(state => 'ongoing')"
	),
	'dev:true',
	'its filters apply (the one ongoing connection)');
is( $node->safe_psql(
		'postgres',
		"SELECT (SELECT count FROM connlog_connection_count()), (SELECT count FROM connlog_connection_count(state => 'completed', connected_after => t0(3))), (SELECT count(*) FROM connlog_connections(\"limit\" => 2, \"offset\" => 3))"
	),
	'5|2|2',
	'connlog_connection_count counts them, limit and offset page them');
is( $node->safe_psql(
		'postgres',
		"SELECT (SELECT count FROM connlog_connection_count(types => '{ssh,file_transfer}')), (SELECT count FROM connlog_connection_count(types => '{vscode}')), (SELECT count(*) FROM connlog_connections(types => '{ssh}'))"
	),
	'5|0|5',
	'the types filter applies to the application\'s text column');

# a reader: EXECUTE on the query functions, SELECT on both tables (each
# function names the extension's table in the branch it does not run)
$node->safe_psql(
	'postgres', q{
CREATE ROLE reader LOGIN;
GRANT USAGE ON SCHEMA connlog TO reader;
GRANT EXECUTE ON FUNCTION connlog.connlog_connections,
	connlog.connlog_connection_count, connlog.connlog_query_check,
	connlog.connlog_table_query TO reader;
GRANT SELECT ON connlog.connection_logs, public.connection_logs TO reader;
});
is( $node->safe_psql(
		'postgres',
		'SET ROLE reader; SELECT count FROM connlog_connection_count()'),
	'5', 'a reader with those grants counts the application\'s rows');

# --- each misconfiguration: the exact last_error, nothing rejected or
# dropped, and the events written once it is fixed.  $break changes the
# table (as app), $fix repairs it; connection $n's pair is enqueued in
# between.
sub misconfigured
{
	my ($what, $n, $break, $fix, $error) = @_;
	$node->safe_psql('postgres', $break);
	$node->safe_psql('postgres', "SELECT pair($n)");
	$node->poll_query_until('postgres',
		"SELECT last_error LIKE '%' || \$\$$error\$\$ || '%' FROM connlog_stats"
	) or diag status();
	like(status(), qr/^cannot prepare statements\|\Q$error\E.*\|0\|0$/,
		"$what: last_error names it, nothing rejected or dropped");
	is($node->safe_psql('postgres', "SELECT rows_between($n, $n)"),
		'0', "$what: the events wait");
	$node->safe_psql('postgres', $fix . '; SELECT connlog_flush();');
	is($node->safe_psql('postgres', "SELECT good_pairs($n, $n)"),
		'1', "$what: written once fixed");
	return;
}

misconfigured(
	'missing column', 10,
	'ALTER TABLE public.connection_logs DROP COLUMN ip',
	'ALTER TABLE public.connection_logs ADD COLUMN ip inet',
	'table public.connection_logs has no column "ip"');
misconfigured(
	'wrong type', 11,
	'ALTER TABLE public.connection_logs ALTER COLUMN code TYPE boolean USING NULL',
	'ALTER TABLE public.connection_logs ALTER COLUMN code TYPE integer USING NULL',
	'column "code" of table public.connection_logs is of type boolean, which connlog cannot assign its integer values to'
);
misconfigured(
	'a text column of a type that is not spelled as text', 15,
	'ALTER TABLE public.connection_logs ALTER COLUMN type TYPE integer USING 0',
	"ALTER TABLE public.connection_logs ALTER COLUMN type TYPE text USING 'ssh'",
	'column "type" of table public.connection_logs is of type integer, which connlog cannot convert its text values to'
);
misconfigured(
	'no unique index', 12,
	'DROP INDEX public.idx_connection_logs_connection_id_workspace_id_agent_name',
	'CREATE UNIQUE INDEX ON public.connection_logs (agent_name, workspace_id, connection_id)',
	'table public.connection_logs has no unique index on (connection_id, workspace_id, agent_name)'
);
misconfigured(
	'NOT NULL column without a default', 13,
	"ALTER TABLE public.connection_logs ADD COLUMN tenant text NOT NULL DEFAULT 'x';"
	  . 'ALTER TABLE public.connection_logs ALTER COLUMN tenant DROP DEFAULT',
	'ALTER TABLE public.connection_logs DROP COLUMN tenant',
	'column "tenant" of table public.connection_logs is NOT NULL and has no default'
);

# dropped and recreated while the worker runs: the waiting events go into
# the new table
misconfigured(
	'table dropped', 14,
	'DROP TABLE public.connection_logs',
	"SET ROLE app;\n" . app_table_sql() . "RESET ROLE",
	'relation "public.connection_logs" does not exist');
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.connection_logs'),
	'1', 'the recreated table holds only the events that waited');

# --- columns that take connlog's text through their type's input
# function (as role app, the owner, converts it): a domain with a CHECK,
# varchar(n), char(n).  A value the type refuses costs its own row, which
# is rejected with the type's error; the rest of its batch is written.
$node->safe_psql(
	'postgres', q{
SET ROLE app;
CREATE DOMAIN public.agent AS text CHECK (VALUE <> 'forbidden');
ALTER TABLE public.connection_logs ALTER COLUMN agent_name TYPE public.agent;
ALTER TABLE public.connection_logs ALTER COLUMN workspace_name TYPE varchar(5);
ALTER TABLE public.connection_logs ALTER COLUMN disconnect_reason TYPE char(4);
});
$node->safe_psql(
	'postgres', q{
SELECT pair(40);
SELECT connlog_enqueue(id => uid(3, 41), event_time => t0(41),
  organization_id => uid(10, 0), workspace_owner_id => uid(11, 0),
  workspace_id => uid(12, 0), workspace_name => 'dev', agent_name => 'forbidden',
  type => 'ssh', status => 'connected', connection_id => uid(2, 41));
SELECT pair(42, 'toolong');
SELECT pair(43);
SELECT connlog_flush();
});
is( $node->safe_psql(
		'postgres',
		q{SELECT string_agg(error, E'\n' ORDER BY error) FROM connlog.connection_logs_rejected}
	),
	'value for domain public.agent violates check constraint "agent_check" (SQLSTATE 23514)
value too long for type character varying(5) (SQLSTATE 22001)',
	'a domain\'s CHECK and a varchar\'s length each reject their own row');
is( $node->safe_psql(
		'postgres',
		q{SELECT good_pairs(40, 43), min(pg_typeof(agent_name)::text), min(pg_typeof(disconnect_reason)::text) FROM public.connection_logs WHERE connection_id IN (uid(2, 40), uid(2, 43))}
	),
	'2|agent|character',
	'the rest of the batch is written');
$node->safe_psql(
	'postgres', q{
DELETE FROM connlog.connection_logs_rejected;
SET ROLE app;
ALTER TABLE public.connection_logs ALTER COLUMN agent_name TYPE text,
	ALTER COLUMN workspace_name TYPE text,
	ALTER COLUMN disconnect_reason TYPE text;
});

# ALTER SYSTEM SET connlog.target_table, unquoted, and reload
sub set_table
{
	my ($value) = @_;
	$node->safe_psql('postgres',
		"ALTER SYSTEM SET connlog.target_table = '$value'; SELECT pg_reload_conf();"
	);
	$node->poll_query_until('postgres',
		"SELECT current_setting('connlog.target_table') = '$value'")
	  or die 'connlog.target_table not reloaded';
	return;
}

# --- reload: back to the extension's own table at the next batch
set_table('');
$node->safe_psql('postgres', 'SELECT pair(20); SELECT connlog_flush();');
is( $node->safe_psql(
		'postgres',
		'SELECT count(*) FROM connlog.connection_logs WHERE connection_id = uid(2, 20)'
	),
	'1',
	'after a reload to the default, rows go to connlog.connection_logs');

# --- the deprecated name, connlog.table (quoted: TABLE is a reserved
# word): used while connlog.target_table is empty, with a warning, and
# read as the table in use
my $offset = -s $node->logfile;
$node->safe_psql('postgres',
	q{ALTER SYSTEM SET connlog."table" = 'public.connection_logs'; SELECT pg_reload_conf();}
);
$node->poll_query_until('postgres',
	"SELECT current_setting('connlog.table') = 'public.connection_logs'")
  or die 'connlog.table not reloaded';
$node->safe_psql('postgres', 'SELECT pair(21); SELECT connlog_flush();');
is($node->safe_psql('postgres', 'SELECT good_pairs(21, 21)'),
	'1', 'connlog.table alone: rows go to the table it names');
$node->wait_for_log(
	qr/WARNING:  connlog.table is deprecated\n.*DETAIL:  The worker writes into the table connlog.table names, "public.connection_logs".\n.*HINT:  Set connlog.target_table instead, and remove connlog.table./,
	$offset);
ok(1, 'the worker warns that connlog.table is deprecated');
$offset = -s $node->logfile;
$node->safe_psql('postgres', 'SELECT pair(22); SELECT connlog_flush();');
unlike(slurp_file($node->logfile, $offset),
	qr/deprecated/, 'it warns once, not at every write');

# both set, and different: connlog.target_table wins, with a warning
$offset = -s $node->logfile;
$node->safe_psql('postgres',
	q{ALTER SYSTEM SET connlog."table" = 'public.elsewhere'; SELECT pg_reload_conf();}
);
set_table('public.connection_logs');
$node->safe_psql('postgres', 'SELECT pair(23); SELECT connlog_flush();');
is($node->safe_psql('postgres', 'SELECT good_pairs(23, 23)'),
	'1', 'both names set: rows go to the table connlog.target_table names');
is($node->safe_psql('postgres', 'SHOW connlog."table"'),
	'public.connection_logs', 'connlog.table reads as the table in use');
$node->wait_for_log(
	qr/WARNING:  connlog.table is deprecated and ignored\n.*DETAIL:  The worker writes into the table connlog.target_table names, "public.connection_logs", not into "public.elsewhere", which connlog.table names./,
	$offset);
ok(1, 'the worker warns that connlog.table is ignored');
$node->safe_psql('postgres',
	q{ALTER SYSTEM RESET connlog."table"; SELECT pg_reload_conf();});

# a value that is not schema-qualified is refused when it is set
my ($rc, $out, $err) = $node->psql('postgres',
	"ALTER SYSTEM SET connlog.target_table = 'connection_logs'");
like(
	$err,
	qr/invalid value for parameter "connlog.target_table": "connection_logs".*\n.*DETAIL:  The value must be a schema-qualified table name/,
	'an unqualified connlog.target_table is refused');

is(counters_identity($node, 'postgres', qw(rejected dropped)),
	'2|0|t',
	'the accounting identity holds, nothing dropped, only the two rows the types refused rejected');
$node->stop;

# --- a missing privilege of connlog.role on the application's table
my $w = connlog_role_node('app_table_role', 'LOGIN', qq{
connlog.target_table = 'public.connection_logs'
connlog.flush_interval = 100ms
connlog.retry_interval = 100ms
});
$w->safe_psql(
	'postgres', q{
CREATE SCHEMA connlog;
CREATE EXTENSION connlog SCHEMA connlog;
ALTER DATABASE postgres SET search_path = public, connlog;
GRANT USAGE ON SCHEMA connlog TO connlog_writer;
GRANT INSERT ON connlog.connection_logs_rejected TO connlog_writer;
GRANT SELECT, UPDATE ON connlog.connlog_wal_progress TO connlog_writer;
});
$w->safe_psql('postgres',
	app_table_sql()
	  . 'GRANT SELECT, UPDATE ON public.connection_logs TO connlog_writer;'
	  . $connlog_helpers);
$w->safe_psql('postgres', 'SELECT pair(1)');
my $denied =
  'role "connlog_writer" lacks INSERT on table public.connection_logs';
$w->poll_query_until('postgres',
	"SELECT last_error LIKE '%$denied%' FROM connlog_stats")
  or diag $w->safe_psql('postgres', 'SELECT last_error FROM connlog_stats');
is( $w->safe_psql(
		'postgres',
		'SELECT worker_state, rejected, dropped, pending > 0 FROM connlog_stats'
	),
	'missing privileges|0|0|t',
	'missing INSERT: the worker waits, nothing rejected or dropped');
$w->safe_psql('postgres',
	'GRANT INSERT ON public.connection_logs TO connlog_writer; SELECT connlog_flush();'
);
is($w->safe_psql('postgres', 'SELECT good_pairs(1, 1)'),
	'1', 'missing INSERT: written once granted');
$w->stop;

done_testing();
