# The owner of a database, who is no superuser, mounts each attack as
# itself: a function of hers that runs at all logs "evil ran as ..." and
# tries to make her a superuser (t/ConnlogTest.pm).  Her settings for the
# database and for every role in it (ALTER DATABASE/ROLE ... SET:
# search_path, read-only, timeouts, role, exit_on_error, ...) and her
# look-alikes do not reach the worker, which writes, rejects and purges
# as configured; renaming the extension's schema and putting a look-alike
# table under the old name does not redirect it.  On PostgreSQL 15 she
# owns schema public: her objects there under the names the updates
# create do not block ALTER EXTENSION connlog UPDATE, never become
# members, and none of their code runs.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

{
	# app, owned by dbowner, who is no superuser, exists before connlog
	my $node = PostgreSQL::Test::Cluster->new('session');
	$node->init;
	$node->start;
	$node->safe_psql('postgres',
		'CREATE ROLE dbowner LOGIN; CREATE DATABASE app OWNER dbowner');
	$node->append_conf(
		'postgresql.conf', q{
shared_preload_libraries = 'connlog'
connlog.database = 'app'
connlog.flush_interval = '200ms'
connlog.max_retries = 0
connlog.purge_interval = '1s'
});
	$node->restart;
	# a column the operator added, whose default reads a sequence
	$node->safe_psql('app',
		"CREATE EXTENSION connlog; $connlog_helpers; "
		  . 'ALTER TABLE connection_logs ADD COLUMN seq bigserial');

	# The database owner sets up look-alikes, and every database and
	# per-database role setting that could steer or stop the worker.
	(my $objects = $evil_objects) =~ s/ATTACKER/dbowner/;
	$node->safe_psql('app', "SET ROLE dbowner; CREATE SCHEMA evil; $objects");
	$node->safe_psql(
		'app', q{
SET ROLE dbowner;
ALTER DATABASE app SET search_path = evil, pg_catalog, public;
ALTER ROLE ALL IN DATABASE app SET search_path = evil, pg_catalog, public;
ALTER DATABASE app SET default_transaction_read_only = on;
ALTER ROLE ALL IN DATABASE app SET default_transaction_read_only = on;
ALTER DATABASE app SET default_transaction_isolation = serializable;
ALTER DATABASE app SET default_transaction_deferrable = on;
ALTER DATABASE app SET statement_timeout = 1;
ALTER DATABASE app SET lock_timeout = 1;
ALTER DATABASE app SET idle_in_transaction_session_timeout = 1;
ALTER DATABASE app SET idle_session_timeout = 1;
ALTER DATABASE app SET role = dbowner;
ALTER DATABASE app SET session_authorization = dbowner;
ALTER DATABASE app SET exit_on_error = on;
ALTER DATABASE app SET row_security = off;
ALTER DATABASE app SET transform_null_equals = on;
ALTER DATABASE app SET standard_conforming_strings = off;
ALTER DATABASE app SET quote_all_identifiers = on;
ALTER DATABASE app SET jit_above_cost = 0;
});

	# the test's own sessions take the defaults back as a client may
	local $ENV{PGOPTIONS} = join ' ', map { "-c $_" } qw(search_path=public
	  role=none default_transaction_read_only=off statement_timeout=0
	  lock_timeout=0 idle_in_transaction_session_timeout=0
	  idle_session_timeout=0 exit_on_error=off row_security=on
	  transform_null_equals=off standard_conforming_strings=on
	  quote_all_identifiers=off jit_above_cost=100000);

	my $offset = restart_and_write($node, 'app', 'database settings');

	# the purge and the rejected table run their statements too
	$node->safe_psql(
		'app', q{
SELECT connlog_enqueue(id => uid(3, 100), event_time => '2024-01-01',
  organization_id => uid(10, 0), workspace_owner_id => uid(11, 0),
  workspace_id => uid(12, 0), workspace_name => 'dev', agent_name => 'main',
  type => 'ssh', status => 'connected', connection_id => uid(2, 100),
  ip => '10.1.2.3', code => 1);
ALTER TABLE connection_logs ADD CONSTRAINT no_code_1 CHECK (code IS DISTINCT FROM 1);
SELECT connlog_flush();
ALTER TABLE connection_logs DROP CONSTRAINT no_code_1;
ALTER SYSTEM SET connlog.retention = '1h';
SELECT pg_reload_conf();
});
	$node->poll_query_until('app',
		'SELECT count(*) = 0 FROM connection_logs')
	  or die 'the purge never ran';
	is( $node->safe_psql(
			'app',
			'SELECT (SELECT count(*) FROM connection_logs_rejected), rejected, '
			  . 'dropped FROM connlog_stats'),
		'1|1|0',
		'database settings: a failing row is rejected and the purge runs');

	nothing_ran($node, 'app', 'dbowner', $offset, 'database settings');

	# The owner renames the extension's schema (public, which
	# pg_database_owner owns) and puts a look-alike table under the old
	# name: the worker follows its own schema.
	$node->safe_psql(
		'app', q{
SET ROLE dbowner;
ALTER SCHEMA public RENAME TO moved;
CREATE SCHEMA public;
CREATE TABLE public.connection_logs (
  id uuid PRIMARY KEY, connect_time timestamptz, organization_id uuid,
  workspace_owner_id uuid, workspace_id uuid, workspace_name text,
  agent_name text, type moved.connection_type, ip inet, code integer,
  user_agent text, user_id uuid, slug_or_port text, connection_id uuid,
  disconnect_time timestamptz, disconnect_reason text,
  UNIQUE (connection_id, workspace_id, agent_name));
CREATE FUNCTION public.trap() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.escalate(); RETURN NEW; END $$;
CREATE TRIGGER trap BEFORE INSERT OR UPDATE ON public.connection_logs
  FOR EACH ROW EXECUTE FUNCTION public.trap();
GRANT ALL ON SCHEMA public TO PUBLIC;
GRANT ALL ON public.connection_logs TO PUBLIC;
});
	$node->safe_psql('app',
		'SET search_path = moved; SELECT pair(n) FROM generate_series(21, 30) n; SELECT connlog_flush()');
	is( $node->safe_psql(
			'app',
			'SET search_path = moved; SELECT good_pairs(21, 30), '
			  . '(SELECT count(*) FROM public.connection_logs)'),
		'10|0',
		'schema renamed: the rows land in the extension\'s table, none in the look-alike');
	nothing_ran($node, 'app', 'dbowner', $offset, 'schema renamed');

	# On PostgreSQL 15 the owner of a database owns its schema public
	# (through pg_database_owner).  In database app2, which dbowner owns,
	# with the extension in public at 1.1, her objects under the names the
	# updates to 1.2 and 1.3 create do not block them, never become
	# members, and none of their code runs.
	$node->safe_psql('postgres', 'CREATE DATABASE app2 OWNER dbowner');
	$node->safe_psql('postgres', 'CREATE DATABASE fresh2');
	$node->safe_psql('fresh2', 'CREATE EXTENSION connlog');
	$node->safe_psql('app2', "CREATE EXTENSION connlog VERSION '1.1'");
	$node->safe_psql('app2', "SET ROLE dbowner; CREATE SCHEMA evil; $objects");
	update_past_squatters(
		$node, 'app2', 'fresh2', 'public', 'dbowner', q{
CREATE VIEW public.connlog_stats_1_1 AS SELECT 1 AS x FROM evil.now();
CREATE FUNCTION public.connlog_table_query(text, uuid, uuid, uuid, text[],
  uuid, uuid, public.connection_log_state, timestamptz, timestamptz, integer,
  integer, boolean) RETURNS TABLE (log public.connection_logs, count bigint)
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.escalate(); END $$;
},
		qw(connlog_stats_1_1 connlog_table_query));
	is( $node->safe_psql(
			'app2', q{
SELECT (SELECT count FROM public.connlog_connection_count()),
       (SELECT count(*) FROM public.connlog_stats)}),
		'0|1',
		'database owner\'s squatters: the updated query functions and connlog_stats answer');
	nothing_ran($node, 'app2', 'dbowner', $offset, 'database owner\'s squatters');
	$node->stop;
}

done_testing();
