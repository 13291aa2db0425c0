-- No lock_timeout: a column on orders, then foreign keys to the hot users table from two tables.
-- The first statement gets the warning; the first foreign key to users gets it again, naming
-- users; the second one adds nothing new.
ALTER TABLE orders ADD COLUMN coupon text;
ALTER TABLE sessions ADD CONSTRAINT sessions_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
-- The findings, at the offending clause:
-- expect: 4:1 T017
-- expect: 5:1 T017
