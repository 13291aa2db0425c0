-- A Django-style sqlmigrate output for a release that adds and changes columns.
SET lock_timeout = '2s';
ALTER TABLE audit_log ADD COLUMN actor text NOT NULL;
ALTER TABLE users ADD COLUMN api_key uuid DEFAULT gen_random_uuid();
ALTER TABLE accounts ADD COLUMN slug text UNIQUE;
ALTER TABLE orders ALTER COLUMN account_name TYPE varchar(80);
ALTER TABLE users DROP COLUMN nickname;
-- The findings, at the offending clause:
-- expect: 3:23 T003
-- expect: 4:19 T004
-- expect: 5:22 T012
-- expect: 6:20 T013
-- expect: 7:19 T014
