-- "Add the column with a default for existing rows, then make new code give it": the running
-- version's INSERTs leave locale out and fail once the default is gone.
SET lock_timeout = '2s';
ALTER TABLE users ADD COLUMN locale text NOT NULL DEFAULT 'en';
ALTER TABLE users ALTER COLUMN locale DROP DEFAULT;
-- nickname is nullable: its INSERTs still work without a default.
ALTER TABLE users ALTER COLUMN nickname DROP DEFAULT;
-- The findings, at the offending clause:
-- expect: 5:19 T033
