-- migrate:up transaction:false
SET lock_timeout = '2s';
CREATE INDEX CONCURRENTLY orders_customer_id_idx ON orders (customer_id);

-- migrate:down
DROP INDEX orders_customer_id_idx;
