# The owner of the table connlog.target_table names writes code that runs inside
# the worker's statements.  Each attack below is created as that owner
# (role app): a trigger that catches every cancel cannot outlive
# pg_terminate_backend, connlog.statement_timeout or a fast shutdown; a
# trigger that turns exit_on_error on and raises for one row costs a
# bounded number of worker restarts and that row alone; a trigger that
# calls connlog_enqueue or connlog_flush fails at once instead of making
# the worker wait for itself.  Nothing accepted is lost, every count is
# exact, and role app gains no privilege.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

my $node = app_table_node(
	'owner_code', qq{
connlog.flush_interval = 100ms
connlog.retry_interval = 100ms
connlog.max_retries = 1000
connlog.shutdown_timeout = 2s
}, allows_streaming => 1);

# The owner's traps, switched on and off through public.trap.  stall()
# sleeps while armed and catches every cancel; sleep() sleeps once,
# without catching anything.
$node->safe_psql(
	'postgres', q{
SET ROLE app;
CREATE TABLE public.trap (armed bool NOT NULL);
INSERT INTO public.trap VALUES (false);
CREATE FUNCTION public.stall() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	LOOP
		BEGIN
			EXIT WHEN NOT (SELECT armed FROM public.trap);
			PERFORM pg_sleep(0.1);
		EXCEPTION WHEN query_canceled THEN NULL;
		END;
	END LOOP;
	RETURN NEW;
END $$;
CREATE FUNCTION public.sleep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF (SELECT armed FROM public.trap) THEN
		PERFORM pg_sleep(3600);
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER stall BEFORE INSERT ON public.connection_logs
	FOR EACH ROW EXECUTE FUNCTION public.stall();
});

sub arm
{
	my ($on) = @_;
	$node->safe_psql('postgres',
		"SET ROLE app; UPDATE public.trap SET armed = $on");
	return;
}

my @counters = qw(enqueued written merged rejected dropped pending);

sub wait_trapped
{
	$node->poll_query_until(
		'postgres', q{
SELECT wait_event = 'PgSleep' FROM pg_stat_activity
WHERE backend_type = 'connlog worker'})
	  or die 'the worker never ran into the trap';
	return;
}

sub no_privilege_gained
{
	my ($what) = @_;
	is( $node->safe_psql(
			'postgres',
			"SELECT rolsuper OR rolcreaterole OR rolreplication OR rolbypassrls FROM pg_roles WHERE rolname = 'app'"
		),
		'f',
		"$what: role app gained no privilege");
	is(counters_identity($node, 'postgres'),
		't',
		"$what: every event is accounted for");
	return;
}

# --- 1. pg_terminate_backend: the worker ends shutdown_timeout after the
# cancel its trigger catches, and its successor writes every event
my $s0 = stats($node);
arm('true');
$node->safe_psql('postgres',
	'SELECT pair(n) FROM generate_series(1, 10) n');
wait_trapped();
my $old_pid = worker_pid($node);
my $offset = -s $node->logfile;
my $t0 = time;
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($old_pid)"),
	't', 'terminate: pg_terminate_backend returns true');
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $old_pid")
  or die 'the worker outlived pg_terminate_backend';
my $took = time - $t0;
cmp_ok($took, '<', 2 + 8,
	'terminate: the worker ended within shutdown_timeout (2 s) and a margin'
);
ok( $node->log_contains(
		qr/FATAL:  terminating background worker "connlog worker" due to administrator command/,
		$offset),
	'terminate: it ended with FATAL');
ok( $node->log_contains(
		qr/WARNING:  connlog worker ended itself: its statement kept running after connlog cancelled it\n[^\n]*DETAIL:  Code of the table the statement wrote to caught the cancel; the worker waited connlog.shutdown_timeout \(2000 ms\)/,
		$offset),
	'terminate: the log says why');
wait_for_worker($node, $old_pid);
wait_trapped();
arm('false');
$node->safe_psql('postgres', 'SELECT connlog_flush()');
is($node->safe_psql('postgres', 'SELECT good_pairs(1, 10), count(*) FROM public.connection_logs'),
	'10|10', 'terminate: the successor writes every pair once');
is( moved($node, $s0, @counters),
	'enqueued=20 written=10 merged=10 rejected=0 dropped=0 pending=0',
	'terminate: every event counted once, none rejected');
ok( !$node->log_contains(qr/previous connlog worker exited/, $offset),
	'terminate: an exit connlog caused puts no row under suspicion');
no_privilege_gained('terminate');

# --- 2. connlog.statement_timeout bounds a statement in normal running:
# one that sleeps is cancelled and retried; one that catches the cancel
# ends the worker shutdown_timeout later
reload_conf($node, 'connlog.statement_timeout' => '1s');
$node->safe_psql(
	'postgres', q{
SET ROLE app;
DROP TRIGGER stall ON public.connection_logs;
CREATE TRIGGER sleep BEFORE INSERT ON public.connection_logs
	FOR EACH ROW EXECUTE FUNCTION public.sleep();
});
$s0 = stats($node);
$old_pid = worker_pid($node);
arm('true');
$node->safe_psql('postgres',
	'SELECT pair(n) FROM generate_series(11, 14) n');
$node->poll_query_until('postgres',
	"SELECT last_error LIKE 'canceling statement due to statement timeout%' FROM connlog_stats"
) or die 'the sleeping statement was never cancelled';
is(worker_pid($node), $old_pid,
	'statement_timeout: a cancelled statement leaves the worker running');
arm('false');
$node->safe_psql('postgres', 'SELECT connlog_flush()');
is($node->safe_psql('postgres', 'SELECT good_pairs(11, 14)'),
	'4', 'statement_timeout: the cancelled batch is written once the trap is off');

$node->safe_psql(
	'postgres', q{
SET ROLE app;
DROP TRIGGER sleep ON public.connection_logs;
CREATE TRIGGER stall BEFORE INSERT ON public.connection_logs
	FOR EACH ROW EXECUTE FUNCTION public.stall();
});
$offset = -s $node->logfile;
arm('true');
$node->safe_psql('postgres',
	'SELECT pair(n) FROM generate_series(15, 18) n');
wait_for_worker($node, $old_pid);
arm('false');
$node->safe_psql('postgres', 'SELECT connlog_flush()');
ok( $node->log_contains(
		qr/WARNING:  connlog worker ended itself: its statement kept running after connlog cancelled it/,
		$offset),
	'statement_timeout: a statement that catches the cancel ends the worker');
ok( $node->log_contains(
		qr/WARNING:  the previous connlog worker exited inside a statement that wrote \d+ connection log rows\n[^\n]*DETAIL:  It exited with: a statement kept running after connlog.statement_timeout cancelled it/,
		$offset),
	'statement_timeout: its successor names the rows it was writing');
is($node->safe_psql('postgres', 'SELECT good_pairs(11, 18)'),
	'8', 'statement_timeout: every pair is written');
is( moved($node, $s0, @counters),
	'enqueued=16 written=8 merged=8 rejected=0 dropped=0 pending=0',
	'statement_timeout: every event counted once, none rejected');
no_privilege_gained('statement_timeout');
$node->safe_psql('postgres',
	'ALTER SYSTEM RESET connlog.statement_timeout; SELECT pg_reload_conf()');
$node->poll_query_until('postgres',
	"SELECT current_setting('connlog.statement_timeout') = '1min'")
  or die 'statement_timeout not reset';

# --- 3. exit_on_error: a trigger that turns it on and raises for one row
# ends the worker each time the row is in the statement; the row ends in
# connection_logs_rejected after about log2(16) + 1 restarts, the other
# rows are written, and no setting of the owner's outlives its statement
$node->safe_psql(
	'postgres', q{
SET ROLE app;
DROP TRIGGER stall ON public.connection_logs;
CREATE TABLE public.seen (setting text, path text);
CREATE FUNCTION public.poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.workspace_name = 'poison' THEN
		PERFORM set_config('exit_on_error', 'on', true);
		RAISE EXCEPTION 'the owner''s trigger ends the worker';
	ELSIF NEW.workspace_name = 'setter' THEN
		PERFORM set_config('exit_on_error', 'on', false);
		PERFORM set_config('search_path', 'public', false);
	END IF;
	INSERT INTO public.seen VALUES (current_setting('exit_on_error'),
		current_setting('search_path'));
	RETURN NEW;
END $$;
CREATE TRIGGER poison BEFORE INSERT ON public.connection_logs
	FOR EACH ROW EXECUTE FUNCTION public.poison();
});

# one batch: the worker writes only when connlog_flush() asks, and asks
# each worker that follows
reload_conf($node, 'connlog.flush_interval' => '1h');
$s0 = stats($node);
$offset = -s $node->logfile;
$node->safe_psql(
	'postgres', q{
SELECT pair(n, CASE n WHEN 108 THEN 'poison' ELSE 'dev' END)
FROM generate_series(101, 116) n;
SELECT connlog_flush('60s');
});
my $deaths = () =
  slurp_file($node->logfile, $offset) =~
  /FATAL:  the owner's trigger ends the worker/g;
cmp_ok($deaths, '>=', 1, 'exit_on_error: the row ended the worker');
cmp_ok($deaths, '<=', 5,
	"exit_on_error: at most log2(16) + 1 restarts ($deaths)");
is( moved($node, $s0, @counters),
	'enqueued=32 written=15 merged=16 rejected=1 dropped=0 pending=0',
	'exit_on_error: the one row rejected, the 15 others written');
is( $node->safe_psql(
		'postgres', q{
SELECT good_pairs(101, 116), count(*) FILTER (WHERE workspace_name = 'poison')
FROM public.connection_logs}),
	'15|0',
	'exit_on_error: every other pair in the table, the row not');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*), string_agg(error, ''), string_agg(event->>'workspace_name', '')
FROM connlog.connection_logs_rejected}),
	"1|connlog worker exited while it wrote this row alone: the owner's trigger ends the worker|poison",
	'exit_on_error: the row is in connection_logs_rejected, the reason names the exit'
);
ok( $node->log_contains(
		qr/WARNING:  the previous connlog worker exited inside a statement that wrote 1 connection log rows\n[^\n]*DETAIL:  It exited with: the owner's trigger ends the worker/,
		$offset),
	'exit_on_error: the last successor says why it rejects the row');

# a row whose trigger sets exit_on_error and search_path for the session,
# then a row in a statement of its own: the second sees the worker's
$node->safe_psql(
	'postgres', q{
TRUNCATE public.seen;
SELECT pair(120, 'setter'); SELECT connlog_flush();
SELECT pair(121); SELECT connlog_flush();
});
is( $node->safe_psql(
		'postgres', 'SELECT setting, path FROM public.seen ORDER BY ctid'),
	"on|public\noff|pg_catalog, pg_temp",
	'exit_on_error: settings the owner\'s code changes end with its statement'
);
is($node->safe_psql('postgres', 'SELECT good_pairs(120, 121)'),
	'2', 'exit_on_error: both rows written');
no_privilege_gained('exit_on_error');
reload_conf($node, 'connlog.flush_interval' => '100ms');

# the same in a step of connlog.retention: one exit, and the successor
# waits a purge_interval before the next step
$node->safe_psql(
	'postgres', q{
INSERT INTO public.connection_logs (id, connect_time, organization_id,
	workspace_owner_id, workspace_id, workspace_name, agent_name, type)
VALUES (uid(9, 1), now() - interval '3000 days', uid(10, 0), uid(11, 0),
	uid(12, 0), 'old', 'main', 'ssh');
SET ROLE app;
CREATE FUNCTION public.no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('exit_on_error', 'on', true);
	RAISE EXCEPTION 'the owner''s trigger ends the purge';
END $$;
CREATE TRIGGER no_delete BEFORE DELETE ON public.connection_logs
	FOR EACH ROW EXECUTE FUNCTION public.no_delete();
});
$offset = -s $node->logfile;
$old_pid = worker_pid($node);
reload_conf($node, 'connlog.purge_interval' => '1h', 'connlog.retention' => '2000d');
wait_for_worker($node, $old_pid);
$node->wait_for_log(
	qr/WARNING:  the previous connlog worker exited inside a step of connlog.retention\n[^\n]*DETAIL:  It exited with: the owner's trigger ends the purge/,
	$offset);
$node->safe_psql('postgres', 'SELECT pair(130); SELECT connlog_flush();');
is($node->safe_psql('postgres', 'SELECT good_pairs(130, 130)'),
	'1', 'exit_on_error in a purge: events are still written');
my $purge_deaths = () =
  slurp_file($node->logfile, $offset) =~
  /FATAL:  the owner's trigger ends the purge/g;
is($purge_deaths, 1, 'exit_on_error in a purge: one exit, no restart loop');
$node->safe_psql('postgres',
	'ALTER SYSTEM RESET connlog.retention; ALTER SYSTEM RESET connlog.purge_interval; SELECT pg_reload_conf()');
$node->safe_psql('postgres',
	"SET ROLE app; DROP TRIGGER no_delete ON public.connection_logs; DELETE FROM public.connection_logs WHERE workspace_name = 'old'");

# --- 4. re-entry: a trigger that calls connlog_enqueue (or connlog_flush)
# fails at once in the worker; the batch waits for a retry, other
# sessions enqueue as before, and once the trigger is gone every event
# is written
$node->safe_psql(
	'postgres', q{
GRANT USAGE ON SCHEMA connlog TO app;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA connlog TO app;
SET ROLE app;
DROP TRIGGER poison ON public.connection_logs;
CREATE FUNCTION public.echo() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.workspace_name = 'flush' THEN
		PERFORM connlog.connlog_flush();
	ELSE
		PERFORM connlog.connlog_enqueue(
			id => gen_random_uuid(), event_time => now(),
			organization_id => NEW.organization_id,
			workspace_owner_id => NEW.workspace_owner_id,
			workspace_id => NEW.workspace_id, workspace_name => 'echo',
			agent_name => 'main', type => 'ssh', status => 'connected');
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER echo BEFORE INSERT ON public.connection_logs
	FOR EACH ROW EXECUTE FUNCTION public.echo();
});
for my $case (['dev', 'connlog_enqueue', 201], ['flush', 'connlog_flush', 211])
{
	my ($ws, $fn, $lo) = @$case;
	my $hi = $lo + 4;
	$s0 = stats($node);
	$offset = -s $node->logfile;
	$node->safe_psql('postgres',
		"SELECT pair(n, '$ws') FROM generate_series($lo, $hi) n");
	$node->poll_query_until('postgres',
		"SELECT last_error = \$\$$fn cannot be called from connlog's own worker (SQLSTATE 55000)\$\$ FROM connlog_stats"
	) or die "the worker never reported the call of $fn";
	ok( $node->log_contains(
			qr/WARNING:  connlog could not write \d+ connection log rows: $fn cannot be called from connlog's own worker \(SQLSTATE 55000\)/,
			$offset),
		"re-entry $fn: the error is in the log");
	my ($ret, $out, $err) = $node->psql('postgres',
		"SELECT pair($hi + 1, 'other')");
	is($ret, 0, "re-entry $fn: another session still enqueues") or diag $err;
	$node->safe_psql('postgres',
		'SET ROLE app; ALTER TABLE public.connection_logs DISABLE TRIGGER echo'
	);
	$node->safe_psql('postgres', 'SELECT connlog_flush()');
	is($node->safe_psql('postgres', "SELECT good_pairs($lo, $hi + 1)"),
		'6', "re-entry $fn: every pair written once the trigger is off");
	is( moved($node, $s0, @counters),
		'enqueued=12 written=6 merged=6 rejected=0 dropped=0 pending=0',
		"re-entry $fn: the trigger enqueued nothing, nothing rejected");
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FROM public.connection_logs WHERE workspace_name = 'echo'"
		),
		'0',
		"re-entry $fn: no event came from the worker itself");
	$node->safe_psql('postgres',
		'SET ROLE app; ALTER TABLE public.connection_logs ENABLE TRIGGER echo');
}
no_privilege_gained('re-entry');

# --- 5. a deferred trigger (a constraint trigger INITIALLY DEFERRED) of
# the owner never runs as the worker: the server refuses to fire it after
# a security-restricted operation queued it, so the events wait (nothing
# rejected) until the trigger is gone
$node->safe_psql(
	'postgres', q{
SET ROLE app;
DROP TRIGGER echo ON public.connection_logs;
CREATE TABLE public.later_saw (who text, escalated bool);
CREATE FUNCTION public.later() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	esc bool := true;
BEGIN
	BEGIN
		EXECUTE 'ALTER ROLE app SUPERUSER';
	EXCEPTION WHEN OTHERS THEN esc := false;
	END;
	INSERT INTO public.later_saw VALUES (current_user, esc);
	RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER later AFTER INSERT ON public.connection_logs
	DEFERRABLE INITIALLY DEFERRED
	FOR EACH ROW EXECUTE FUNCTION public.later();
});
$s0 = stats($node);
$node->safe_psql('postgres', 'SELECT pair(250)');
$node->poll_query_until('postgres',
	"SELECT last_error LIKE 'cannot fire deferred trigger within security-restricted operation%' FROM connlog_stats"
) or die 'the deferred trigger was not refused';
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.later_saw'),
	'0', 'deferred: the owner\'s deferred trigger never ran');
$node->safe_psql('postgres',
	'SET ROLE app; DROP TRIGGER later ON public.connection_logs');
$node->safe_psql('postgres', 'SELECT connlog_flush()');
is($node->safe_psql('postgres', 'SELECT good_pairs(250, 250)'),
	'1', 'deferred: the row is written once the trigger is gone');
is( moved($node, $s0, @counters),
	'enqueued=2 written=1 merged=1 rejected=0 dropped=0 pending=0',
	'deferred: nothing rejected');
no_privilege_gained('deferred');

# --- 6. pg_ctl stop -m fast with the worker in the trap: the stop
# finishes, and with connlog.durability = wal the events are written
# after the restart
$node->safe_psql(
	'postgres', q{
SET ROLE app;
CREATE TRIGGER stall BEFORE INSERT ON public.connection_logs
	FOR EACH ROW EXECUTE FUNCTION public.stall();
});
reload_conf($node, 'connlog.durability' => 'wal');
arm('true');
$node->safe_psql('postgres',
	'SELECT pair(n) FROM generate_series(301, 310) n');
wait_trapped();
$offset = -s $node->logfile;
$t0 = time;
ok($node->stop('fast', fail_ok => 1), 'fast stop: pg_ctl stop -m fast succeeds');
cmp_ok(time - $t0, '<', 2 + 30, 'fast stop: within shutdown_timeout and a margin');
ok( $node->log_contains(
		qr/LOG:  connlog will replay 20 WAL-backed events that were not written yet/,
		$offset),
	'fast stop: the 20 WAL-backed events are left to replay');
$node->start;
wait_trapped();
arm('false');
$node->safe_psql('postgres', 'SELECT connlog_flush()');
is($node->safe_psql('postgres', 'SELECT good_pairs(301, 310)'),
	'10', 'fast stop: every pair written after the restart');
is( $node->safe_psql(
		'postgres',
		'SELECT enqueued, written, merged, rejected, dropped, pending FROM connlog_stats'
	),
	'20|10|10|0|0|0',
	'fast stop: the replayed events counted once');
no_privilege_gained('fast stop');

$node->stop;
done_testing();
