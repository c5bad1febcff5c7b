# Security and integrity (issue 14): each attack is mounted as the role
# that could mount it, and each block asserts that the attack fails, that
# no role gained a privilege, and that no forged row exists.  Each block
# starts its own node and stops it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ConnlogTest;

# ---- forged WAL records (pg_logical_emit_message) and replay checks ----
# (section: wal)



# ---- the worker's session settings, catalog lookups and look-alikes ----
# (section: worker-session)



# ---- the query functions and look-alike operators; CREATE EXTENSION ----
# (section: sql)



# ---- poison rows, restarts and accounting ----
# (section: integrity)



# ---- no worker; who decides what WAL is kept ----
# (section: registration)



done_testing();
