-- Rails-style generated names: an index name and a constraint name over 63 bytes in one file.
CREATE INDEX CONCURRENTLY index_orders_on_account_id_and_user_id_and_status_and_created_at ON orders (account_id, user_id, status, created_at);
SET lock_timeout = '2s';
ALTER TABLE orders ADD CONSTRAINT check_orders_total_is_not_negative_for_every_status_and_accounts CHECK (total >= 0) NOT VALID;
-- The findings, at the offending clause:
-- expect: 2:27 T027
-- expect: 4:35 T027
