# connlog: PGXS build.  See README.md for the commands that install what the
# build needs and run the tests.

MODULE_big = connlog
OBJS = src/connlog.o src/ring.o src/batch.o src/worker.o src/writer.o src/wal.o
PGFILEDESC = "connlog - batched connection logging"

EXTENSION = connlog
DATA = connlog--1.0.sql connlog--1.1.sql connlog--1.0--1.1.sql

REGRESS = setup merge stats errors privileges normalize
REGRESS_OPTS = --temp-instance=tmp_regress --temp-config=$(srcdir)/test/regress.conf
TAP_TESTS = 1

EXTRA_CLEAN = tmp_regress results regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
