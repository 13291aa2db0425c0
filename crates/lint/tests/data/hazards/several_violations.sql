-- One ALTER with a foreign key and a CHECK, both without NOT VALID, and two json columns.
SET lock_timeout = '2s';
ALTER TABLE orders
  ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id),
  ADD CONSTRAINT orders_total_positive CHECK (total >= 0);
ALTER TABLE users ADD COLUMN settings json, ADD COLUMN prefs json;
-- A new column with an inline foreign key: the column, then the key NOT VALID, keeping ON DELETE.
ALTER TABLE sessions ADD COLUMN account_id bigint REFERENCES accounts (id) ON DELETE CASCADE;
-- The findings, at the offending clause:
-- expect: 8:22 T009
-- expect: 4:3 T009
-- expect: 5:3 T009
-- expect: 6:19 T025
-- expect: 6:45 T025
