# Shared by the TAP tests: the SQL helpers that enqueue events whose
# expected row follows from their number alone, so a test can check every
# row's times without remembering what it sent.
package ConnlogTest;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;

our @EXPORT = qw($connlog_helpers $writer_grants connlog_node
  connlog_role_node reload_conf);

# Install after CREATE EXTENSION connlog.
#  uid(k, n)         a uuid that spells kind k and number n
#  t0(n)             connection n connects at t0(n), disconnects 1 h later
#  ev(n, st, ws)     connection n's connect or disconnect event
#  pair(n, ws)       both of them
#  good_pairs(lo, hi)  connections lo..hi whose row spans exactly their pair
#  rows_between(lo, hi) rows of connections lo..hi
our $connlog_helpers = q{
CREATE FUNCTION uid(k int, n bigint) RETURNS uuid IMMUTABLE LANGUAGE sql AS
$$ SELECT (lpad(k::text, 8, '0') || '-0000-0000-0000-' || lpad(n::text, 12, '0'))::uuid $$;
CREATE FUNCTION t0(n bigint) RETURNS timestamptz IMMUTABLE LANGUAGE sql AS
$$ SELECT timestamptz '2024-01-01 00:00:00+00' + n * interval '1 s' $$;
CREATE FUNCTION ev(n bigint, st connection_status DEFAULT 'connected',
                   ws text DEFAULT 'dev')
RETURNS void LANGUAGE sql AS $$
  SELECT connlog_enqueue(
    id => uid(CASE st WHEN 'connected' THEN 3 ELSE 4 END, n),
    event_time => t0(n) + CASE st WHEN 'connected' THEN interval '0'
                                  ELSE interval '1 h' END,
    organization_id => uid(10, 0), workspace_owner_id => uid(11, 0),
    workspace_id => uid(12, 0), workspace_name => ws,
    agent_name => 'main', type => 'ssh', status => st,
    connection_id => uid(2, n), ip => '10.1.2.3',
    disconnect_reason => CASE st WHEN 'disconnected' THEN 'bye' END)
$$;
CREATE FUNCTION pair(n bigint, ws text DEFAULT 'dev') RETURNS void
LANGUAGE sql AS
$$ SELECT ev(n, 'connected', ws); SELECT ev(n, 'disconnected', ws) $$;
CREATE FUNCTION good_pairs(lo bigint, hi bigint) RETURNS bigint
LANGUAGE sql AS $$
  SELECT count(*) FROM generate_series(lo, hi) n
  JOIN connection_logs l ON l.connection_id = uid(2, n)
  WHERE l.connect_time = t0(n) AND l.disconnect_time = t0(n) + interval '1 h'
    AND l.disconnect_reason = 'bye'
$$;
CREATE FUNCTION rows_between(lo bigint, hi bigint) RETURNS bigint
LANGUAGE sql AS $$
  SELECT count(*) FROM connection_logs
  WHERE connection_id BETWEEN uid(2, lo) AND uid(2, hi)
$$;
};

# A started node with connlog preloaded, writing to database postgres;
# $conf is appended to postgresql.conf, %init goes to init().
sub connlog_node
{
	my ($name, $conf, %init) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%init);
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'connlog'\n"
		  . "connlog.database = 'postgres'\n"
		  . $conf);
	$node->start;
	return $node;
}

# What connlog.role = 'connlog_writer' needs, as README's "Setting it up"
# lists it (without DELETE, which only connlog.retention needs).
our $writer_grants = q{
GRANT SELECT, INSERT, UPDATE ON connection_logs TO connlog_writer;
GRANT INSERT ON connection_logs_rejected TO connlog_writer;
GRANT SELECT, UPDATE ON connlog_wal_progress TO connlog_writer;
};

# A started node whose connlog.role is connlog_writer, a role that exists
# (created with $role_options, e.g. 'LOGIN') before connlog first starts;
# $conf is appended to postgresql.conf.  The extension is not created.
sub connlog_role_node
{
	my ($name, $role_options, $conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->start;
	$node->safe_psql('postgres', "CREATE ROLE connlog_writer $role_options");
	$node->stop;
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'connlog'\n"
		  . "connlog.database = 'postgres'\n"
		  . "connlog.role = 'connlog_writer'\n"
		  . $conf);
	$node->start;
	return $node;
}

# ALTER SYSTEM SET each name => value, reload, and wait until a new session
# sees the values: by then the postmaster has signalled the worker too.
sub reload_conf
{
	my ($node, %set) = @_;
	my $sql = '';
	my $check = 'SELECT true';
	for my $name (sort keys %set)
	{
		$sql .= "ALTER SYSTEM SET $name = '$set{$name}';\n";
		$check .= " AND current_setting('$name') = '$set{$name}'";
	}
	$node->safe_psql('postgres', $sql . 'SELECT pg_reload_conf();');
	$node->poll_query_until('postgres', $check)
	  or die "settings not reloaded: $sql";
	return;
}

1;
