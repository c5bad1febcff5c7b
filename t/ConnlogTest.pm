# Shared by the TAP tests: the SQL helpers that enqueue events whose
# expected row follows from their number alone, so a test can check every
# row's times without remembering what it sent.
package ConnlogTest;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;

our @EXPORT = qw($connlog_helpers $writer_grants connlog_node
  connlog_role_node reload_conf $boundary_helper wait_for_worker
  crash_restart connlog_counts legacy_record);

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

# ---- WAL durability: page boundaries, forged records, the slot ----

# Install after $connlog_helpers.  enqueue_at_boundary(n) enqueues ev(n),
# ev(n + 1), ... as whoever calls it (SECURITY INVOKER: it runs with the
# caller's privileges, as the same statements in a DO block would), and
# pads WAL with pg_logical_emit_message() so that the WAL record of its
# last event ends exactly on a WAL page boundary: the insert position is
# then the next page's header, which is past the end of generated WAL.
# Returns "k lsn": how many events it enqueued, and that boundary; NULL if
# other WAL writes kept it from hitting the boundary 200 times.
our $boundary_helper = q{
CREATE FUNCTION enqueue_at_boundary(n bigint) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  first bigint := n;
  b numeric; a numeric; r numeric; d numeric; p numeric; pos numeric;
BEGIN
  -- the size of an event's record, measured where it crosses no page
  LOOP
    b := pg_current_wal_insert_lsn() - '0/0';
    PERFORM ev(n);
    n := n + 1;
    a := pg_current_wal_insert_lsn() - '0/0';
    EXIT WHEN div(a, 8192) = div(b, 8192);
  END LOOP;
  r := a - b;
  FOR i IN 1..200 LOOP
    d := 8192 - mod(pg_current_wal_insert_lsn() - '0/0', 8192);
    p := d - r;
    IF p = 0 THEN
      PERFORM ev(n);
      n := n + 1;
      pos := pg_current_wal_insert_lsn() - '0/0';
      IF mod(pos, 8192) IN (24, 40) THEN
        RETURN (n - first) || ' ' || (pg_lsn '0/0' + (pos - mod(pos, 8192)));
      END IF;
    ELSIF p >= 56 THEN
      -- a message record of exactly p bytes: 24 (header) + 2 or 5 (data
      -- header) + 24 (xl_logical_message) + 4 ('pad' and its NUL) + l
      PERFORM pg_logical_emit_message(false, 'pad',
        repeat('x', (CASE WHEN p - 54 < 228 THEN p - 54 ELSE p - 57 END)::int));
    ELSE
      PERFORM pg_logical_emit_message(false, 'pad', repeat('x', 200));
    END IF;
  END LOOP;
  RETURN NULL;
END $$;
};

# Wait until a connlog worker runs (other than the one whose pid is $not).
sub wait_for_worker
{
	my ($node, $not) = @_;
	my $cond = "backend_type = 'connlog worker'"
	  . (defined $not ? " AND pid <> $not" : '');
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE $cond")
	  or die 'no connlog worker';
	return;
}

# Crash (kill -9 of the postmaster and all) and start again; returns the
# log offset before the start.
sub crash_restart
{
	my ($node) = @_;
	$node->stop('immediate');
	my $offset = -s $node->logfile;
	$node->start;
	wait_for_worker($node);
	return $offset;
}

# connlog_stats' counters, and whether the accounting identity holds.
sub connlog_counts
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		'SELECT enqueued, written, merged, rejected, dropped, pending, '
		  . 'enqueued = written + merged + rejected + dropped + pending '
		  . 'FROM connlog_stats');
}

# A payload in the layout of the logical messages a MAC-keyed connlog
# wrote with prefix "connlog": epoch, seq, a 16-byte MAC, then the ring
# record (batch.h) of ev(n)'s connect event, in host byte order.  $mac
# defaults to zeros; $time is microseconds since 2000-01-01.
sub legacy_record
{
	my (%e) = @_;
	my $uuid = sub { pack('H32', sprintf('%08d000000000000%012d', @_)) };
	my $rec = pack('q', $e{time})
	  . $uuid->(3, $e{n}) . $uuid->(10, 0) . $uuid->(11, 0) . $uuid->(12, 0)
	  . pack('CCCCCSS', 1, 0, 0, 0, 0, length($e{ws}), 4)
	  . $uuid->(2, $e{n})
	  . $e{ws} . 'main';
	$rec = pack('L', 4 + length($rec)) . $rec;
	return pack('QQ', $e{epoch} // 7, $e{n}) . ($e{mac} // "\0" x 16) . $rec;
}

1;
