# connlog: PGXS build.  See HACKING.md for the commands that install what
# the build needs and run the tests.

MODULE_big = connlog
OBJS = src/connlog.o src/settings.o src/ring.o src/columns.o src/once.o \
	src/enqueue.o src/extra.o src/status.o src/batch.o src/connect.o \
	src/worker.o src/batches.o src/held.o src/batchwrite.o \
	src/runner.o src/target.o src/convert.o src/plans.o src/rows.o \
	src/statements.o src/wal.o src/walshared.o src/slot.o src/replay.o \
	src/progress.o src/standby.o src/query.o src/guard.o src/citus.o
PGFILEDESC = "connlog - batched connection logging"

EXTENSION = connlog
DATA = connlog--1.0.sql connlog--1.1.sql connlog--1.2.sql connlog--1.3.sql connlog--1.0--1.1.sql connlog--1.1--1.2.sql connlog--1.2--1.3.sql

REGRESS = setup merge stats errors privileges normalize types extra query_paths
REGRESS_OPTS = --temp-instance=tmp_regress --temp-config=$(srcdir)/test/regress.conf
TAP_TESTS = 1

EXTRA_CLEAN = tmp_regress results regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Debian's pg_buildext (debian/rules) builds in build-<version>/ with VPATH
# pointing here; the object files need their src/ directory there too.
ifdef VPATH
$(shell mkdir -p src)
endif

# PGXS tracks header dependencies only in servers built with
# --enable-depend; without this a changed struct in a header would leave
# objects built against the old one.
$(OBJS): $(wildcard $(srcdir)/src/*.h)

# Formatting, as PostgreSQL's pgindent formats the server (scripts/pgindent;
# needs Debian's pg-bsd-indent, installed here when missing):
#   make indent        update scripts/typedefs.list, then rewrite the C
#                      sources that differ from pgindent's output
#   make indent-check  change nothing; fail, printing the differences, if
#                      `make indent` would change anything
#   make typedefs      only update scripts/typedefs.list
NEED_INDENT = bash -c '. $(srcdir)/scripts/lib.sh && need_packages pg-bsd-indent'

.PHONY: indent indent-check typedefs
indent: typedefs
	@$(NEED_INDENT)
	$(srcdir)/scripts/pgindent

indent-check:
	@$(NEED_INDENT)
	@ok=1; \
	$(srcdir)/scripts/find_typedefs --check || ok=0; \
	$(srcdir)/scripts/pgindent --check || ok=0; \
	test $$ok = 1

typedefs:
	$(srcdir)/scripts/find_typedefs --write
