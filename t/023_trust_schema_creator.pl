# A role with CREATE on a schema (the extension's, or one on the
# worker's or an updater's search_path) mounts each attack as itself: a
# function of hers that runs at all logs "evil ran as ..." and tries to
# make her a superuser (t/ConnlogTest.pm).  Her look-alike of a member
# the worker uses is never used; her objects under the names the updates
# create do not block ALTER EXTENSION connlog UPDATE (from 1.0, 1.1 and
# 1.2 to 1.3), are renamed with a warning, never become members, and none
# of their code runs.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

# Item 3: version 1.0 (no connlog_wal_progress) in a schema where mallory
# may CREATE; her view of that name calls her function.
{
	my $node = connlog_node('lookalike', q{
connlog.flush_interval = '200ms'
});
	local $ENV{PGOPTIONS} = '-c search_path=shared,public';
	$node->safe_psql(
		'postgres', qq{
CREATE ROLE mallory LOGIN;
CREATE SCHEMA shared;
GRANT USAGE, CREATE ON SCHEMA shared TO mallory;
CREATE EXTENSION connlog SCHEMA shared VERSION '1.0';
$connlog_helpers
});
	(my $objects = $evil_objects) =~ s/ATTACKER/mallory/;
	$node->safe_psql('postgres', 'CREATE SCHEMA evil AUTHORIZATION mallory');
	$node->safe_psql('postgres', "SET ROLE mallory; $objects");
	$node->safe_psql(
		'postgres', q{
SET ROLE mallory;
CREATE TABLE evil.progress (epoch bigint, done_seq bigint, done_lsn pg_lsn);
INSERT INTO evil.progress VALUES (0, 0, '0/0');
CREATE FUNCTION evil.pass() RETURNS bool LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.escalate(); RETURN true; END $$;
GRANT ALL ON evil.progress TO PUBLIC;
});
	# an updatable view, so the worker's UPDATE would run its WHERE
	my $view = q{
SET ROLE mallory;
CREATE VIEW shared.connlog_wal_progress AS
  SELECT * FROM evil.progress WHERE evil.pass();
GRANT ALL ON shared.connlog_wal_progress TO PUBLIC;
};
	$node->safe_psql('postgres', $view);

	my $offset = restart_and_write($node, 'postgres',
		'1.0 with a look-alike connlog_wal_progress');
	nothing_ran($node, 'postgres', 'mallory', $offset, '1.0');

	# At 1.1, a superuser takes connlog_wal_progress out of the extension
	# and drops it; mallory's view takes its name.  Then the operator puts
	# the member back.
	my $drop = q{
ALTER EXTENSION connlog DROP TABLE shared.connlog_wal_progress;
DROP TABLE shared.connlog_wal_progress;
};
	my $restore = q{
DROP VIEW shared.connlog_wal_progress;
CREATE TABLE shared.connlog_wal_progress (
	epoch bigint NOT NULL, done_seq bigint NOT NULL, done_lsn pg_lsn NOT NULL);
INSERT INTO shared.connlog_wal_progress VALUES (0, 0, '0/0');
REVOKE ALL ON shared.connlog_wal_progress FROM PUBLIC;
ALTER EXTENSION connlog ADD TABLE shared.connlog_wal_progress;
SELECT connlog_flush();
};
	my $error =
	  'relation "shared.connlog_wal_progress" is not a member of extension connlog (SQLSTATE 55000)';
	$node->safe_psql('postgres',
		"DROP VIEW shared.connlog_wal_progress;\n"
		  . "ALTER EXTENSION connlog UPDATE TO '1.1';\n$drop");
	$node->safe_psql('postgres', $view);

	# found by a worker that starts, or one that runs: either holds the
	# events, and says why
	for my $when ('at start', 'while running')
	{
		my $lo = $when eq 'at start' ? 21 : 26;
		if ($when eq 'at start')
		{
			$node->restart;
		}
		else
		{
			$node->safe_psql('postgres', $drop);
			$node->safe_psql('postgres', $view);
		}
		$node->safe_psql('postgres',
			"SELECT pair(n) FROM generate_series($lo, $lo + 4) n");
		$node->poll_query_until('postgres',
			"SELECT worker_state = 'cannot prepare statements' FROM connlog_stats"
		) or die "$when: the worker never said it cannot prepare its statements";
		is($node->safe_psql('postgres', 'SELECT last_error FROM connlog_stats'),
			$error, "1.1, member dropped $when: last_error names the look-alike");
		my ($ret, $stdout, $stderr) =
		  $node->psql('postgres', "SELECT connlog_flush('1 s')");
		like($stderr, qr/connlog_flush timed out/,
			"1.1, member dropped $when: nothing is written");
		is( $node->safe_psql(
				'postgres', 'SELECT rejected, dropped, pending FROM connlog_stats'),
			'0|0|10',
			"1.1, member dropped $when: the events wait, none rejected or dropped");
		$node->safe_psql('postgres', $restore);
		is($node->safe_psql('postgres', "SELECT good_pairs($lo, $lo + 4)"),
			'5', "1.1, member dropped $when: once restored, the events are written");
	}
	nothing_ran($node, 'postgres', 'mallory', $offset, '1.1, member dropped');
	$node->stop;
}

# Squatters.  Role squat may CREATE in schema shared, where the extension
# lives; in a database at 1.0, 1.1 and 1.2 she creates, before the
# update, an object under each name it would create, each calling
# evil.escalate() if anything runs it.
{
	my $node = connlog_node('squat', "connlog.flush_interval = '200ms'\n");
	local $ENV{PGOPTIONS} = '-c search_path=shared,public';
	$node->safe_psql('postgres', 'CREATE ROLE squat LOGIN');
	(my $objects = $evil_objects) =~ s/ATTACKER/squat/;
	my $offset = -s $node->logfile;
	for my $db (qw(fresh u10 u11 u12))
	{
		$node->safe_psql('postgres', "CREATE DATABASE $db");
		$node->safe_psql($db, q{
CREATE SCHEMA shared;
GRANT USAGE, CREATE ON SCHEMA shared TO squat;
});
		next if $db eq 'fresh';
		$node->safe_psql($db, 'CREATE SCHEMA evil AUTHORIZATION squat');
		$node->safe_psql($db, "SET ROLE squat; $objects");
	}
	$node->safe_psql('fresh', 'CREATE EXTENSION connlog SCHEMA shared');
	$node->safe_psql('u10', "CREATE EXTENSION connlog SCHEMA shared VERSION '1.0'");
	$node->safe_psql('u11', "CREATE EXTENSION connlog SCHEMA shared VERSION '1.1'");
	$node->safe_psql('u12', "CREATE EXTENSION connlog SCHEMA shared VERSION '1.2'");

	my $fn = sub {
		my ($name, $args, $returns) = @_;
		$returns //= 'boolean';
		my $return = $returns =~ /^(void|SETOF|TABLE)/ ? 'RETURN' : 'RETURN NULL';
		return qq{
CREATE FUNCTION shared.$name($args) RETURNS $returns LANGUAGE plpgsql AS
\$\$ BEGIN PERFORM evil.escalate(); $return; END \$\$;};
	};
	my $enqueue_text = 'uuid, timestamptz, uuid, uuid, uuid, text, text, text, '
	  . 'shared.connection_status, uuid, inet, integer, text, uuid, text, text';
	my $filters = 'uuid, uuid, uuid, text[], uuid, uuid, '
	  . 'shared.connection_log_state, timestamptz, timestamptz';
	# 1.0 to 1.3: the names 1.1 and 1.2 create that she can take at 1.0
	update_past_squatters(
		$node, 'u10', 'fresh', 'shared', 'squat', q{
CREATE TABLE shared.connlog_wal_progress (epoch bigint, done_seq bigint, done_lsn pg_lsn);
CREATE TYPE shared.connection_log_state AS ENUM ('ongoing', 'completed');
CREATE VIEW shared.connection_logs_user_id_idx AS SELECT 1 AS x;
}
		  . $fn->(
			'connlog_query_check',
			'text, integer, integer, timestamptz, timestamptz')
		  . $fn->('connlog_enqueue', $enqueue_text, 'void')
		  . $fn->('connlog_stats_1_1', '', 'record')
		  . 'CREATE TABLE shared.connlog_stats_1_1 (x int);',
		qw(connlog_wal_progress connection_log_state
		  connection_logs_user_id_idx connlog_query_check connlog_enqueue
		  connlog_stats_1_1));
	# 1.1 to 1.3: the functions 1.2 makes afresh, the old connlog_stats'
	# name while its grants are copied
	update_past_squatters(
		$node, 'u11', 'fresh', 'shared', 'squat',
		$fn->('connlog_table_query',
			"text, $filters, integer, integer, boolean",
			'TABLE (log shared.connection_logs, count bigint)')
		  . $fn->('connlog_connections', "$filters, integer, integer",
			'SETOF shared.connection_logs')
		  . $fn->('connlog_connection_count', $filters, 'TABLE (count bigint)')
		  . $fn->('connlog_enqueue', $enqueue_text, 'void')
		  . q{
CREATE VIEW shared.connlog_stats_1_1 AS SELECT 1 AS x FROM evil.now();
CREATE FUNCTION shared.connlog_stats_1_1() RETURNS int LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.escalate(); RETURN 1; END $$;
},
		qw(connlog_table_query connlog_connections connlog_connection_count
		  connlog_enqueue connlog_stats_1_1));
	# 1.2 to 1.3: connlog_convert takes an argument of type "any", which
	# only a C function can have, so no role but a superuser can create
	# one; the superuser makes it and gives it to squat
	$node->safe_psql('u12', q{
CREATE FUNCTION shared.connlog_convert("any", anyelement) RETURNS anyelement
AS '$libdir/connlog', 'connlog_convert' LANGUAGE C;
ALTER FUNCTION shared.connlog_convert("any", anyelement) OWNER TO squat;
});
	update_past_squatters($node, 'u12', 'fresh', 'shared', 'squat', 'SELECT',
		'connlog_convert');

	# the updated installations answer, with the members
	for my $db (qw(u10 u11 u12))
	{
		is( $node->safe_psql(
				$db, q{
SELECT (SELECT count FROM shared.connlog_connection_count()),
       (SELECT count(*) FROM shared.connlog_connections()),
       (SELECT count(*) FROM shared.connlog_stats)}),
			'0|0|1',
			"$db: after the update the query functions and connlog_stats answer");
	}
	nothing_ran($node, 'postgres', 'squat', $offset, 'squatters');
	$node->stop;
}

done_testing();
