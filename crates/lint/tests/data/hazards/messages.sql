-- Statements whose messages name a column and an index: no lock_timeout set.
DROP INDEX users_email_idx;
ALTER TABLE users ALTER COLUMN email SET NOT NULL;
-- The findings, at the offending clause:
-- expect: 2:1 T006
-- expect: 2:1 T017
-- expect: 3:19 T011
