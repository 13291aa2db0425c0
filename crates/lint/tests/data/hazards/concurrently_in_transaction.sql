-- A framework wrapped the migration in a transaction, and the index was made CONCURRENTLY.
-- postgres refuses: cannot run inside a transaction block
SET lock_timeout = '2s';
BEGIN;
CREATE INDEX CONCURRENTLY orders_created_at_idx ON orders (created_at);
COMMIT;
-- The findings, at the offending clause:
-- expect: 5:1 T007
