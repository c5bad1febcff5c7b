--
-- errors: every bad input is refused with a clear message, and nothing is
-- enqueued
--
SELECT resnap();
\set VERBOSITY default

-- NULL in each required argument
SELECT connlog_enqueue(NULL, now(), gen_random_uuid(), gen_random_uuid(),
  gen_random_uuid(), 'w', 'a', 'ssh', 'connected');
SELECT connlog_enqueue(gen_random_uuid(), NULL, gen_random_uuid(),
  gen_random_uuid(), gen_random_uuid(), 'w', 'a', 'ssh', 'connected');
SELECT connlog_enqueue(gen_random_uuid(), now(), NULL, gen_random_uuid(),
  gen_random_uuid(), 'w', 'a', 'ssh', 'connected');
SELECT connlog_enqueue(gen_random_uuid(), now(), gen_random_uuid(), NULL,
  gen_random_uuid(), 'w', 'a', 'ssh', 'connected');
SELECT connlog_enqueue(gen_random_uuid(), now(), gen_random_uuid(),
  gen_random_uuid(), NULL, 'w', 'a', 'ssh', 'connected');
SELECT connlog_enqueue(gen_random_uuid(), now(), gen_random_uuid(),
  gen_random_uuid(), gen_random_uuid(), NULL, 'a', 'ssh', 'connected');
SELECT connlog_enqueue(gen_random_uuid(), now(), gen_random_uuid(),
  gen_random_uuid(), gen_random_uuid(), 'w', NULL, 'ssh', 'connected');
SELECT connlog_enqueue(gen_random_uuid(), now(), gen_random_uuid(),
  gen_random_uuid(), gen_random_uuid(), 'w', 'a', NULL, 'connected');
SELECT connlog_enqueue(gen_random_uuid(), now(), gen_random_uuid(),
  gen_random_uuid(), gen_random_uuid(), 'w', 'a', 'ssh', NULL);

-- times must be finite
SELECT connlog_enqueue(gen_random_uuid(), 'infinity', gen_random_uuid(),
  gen_random_uuid(), gen_random_uuid(), 'w', 'a', 'ssh', 'connected');

-- enum values are checked by the argument types (the type's checks are in
-- types.sql)
SELECT connlog_enqueue(gen_random_uuid(), now(), gen_random_uuid(),
  gen_random_uuid(), gen_random_uuid(), 'w', 'a', 'ssh', 'open');

-- too large: one field, and all fields together
SELECT connlog_enqueue(gen_random_uuid(), now(), gen_random_uuid(),
  gen_random_uuid(), gen_random_uuid(), 'w', 'a', 'ssh', 'connected',
  user_agent => repeat('x', 20000));
SELECT connlog_enqueue(gen_random_uuid(), now(), gen_random_uuid(),
  gen_random_uuid(), gen_random_uuid(), repeat('w', 6000), repeat('a', 6000),
  'ssh', 'connected', user_agent => repeat('x', 6000));
-- the limit is exact: 85 fixed bytes, 2 one-byte names, a 2-byte length
SELECT connlog_enqueue(gen_random_uuid(), now(), gen_random_uuid(),
  gen_random_uuid(), gen_random_uuid(), 'w', 'a', 'ssh', 'connected',
  user_agent => repeat('x', 16384 - 85 - 2 - 2 + 1));
SELECT connlog_enqueue(gen_random_uuid(), now(), gen_random_uuid(),
  gen_random_uuid(), gen_random_uuid(), 'w', 'a', 'ssh', 'connected',
  user_agent => repeat('x', 16384 - 85 - 2 - 2));

-- only the largest one was enqueued
SELECT connlog_flush();
SELECT * FROM delta();
SELECT length(user_agent) FROM connection_logs WHERE workspace_name = 'w';

-- another database: the worker would never write there
CREATE DATABASE connlog_other;
\c connlog_other
CREATE EXTENSION connlog;
SELECT connlog_enqueue(gen_random_uuid(), now(), gen_random_uuid(),
  gen_random_uuid(), gen_random_uuid(), 'w', 'a', 'ssh', 'connected');
\c contrib_regression
DROP DATABASE connlog_other;
SELECT enqueued - (SELECT enqueued FROM snap) AS enqueued FROM connlog_stats;
