-- A quarterly clean-up migration as a team writes it by hand: renames, a drop, maintenance.
SET lock_timeout = '2s';
ALTER TABLE accounts RENAME COLUMN plan TO tier;
ALTER TABLE audit_log RENAME TO audit_entries;
DROP TABLE sessions;
ALTER TABLE events DETACH PARTITION events_2024;
VACUUM FULL orders;
CLUSTER users USING users_pkey;
BEGIN;
ALTER TABLE orders ADD CONSTRAINT orders_total_positive CHECK (total >= 0) NOT VALID;
ALTER TABLE orders VALIDATE CONSTRAINT orders_total_positive;
COMMIT;
-- The findings, at the offending clause:
-- expect: 3:1 T001
-- expect: 4:1 T002
-- expect: 5:1 T015
-- expect: 6:20 T026
-- expect: 7:1 T019
-- expect: 8:1 T020
-- expect: 11:20 T010
-- expect: 11:1 T018
