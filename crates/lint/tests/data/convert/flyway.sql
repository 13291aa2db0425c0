-- V3__order_priority.sql, written by hand for Flyway.
SET lock_timeout = '5s';
SET statement_timeout = '30s';

ALTER TABLE orders ADD COLUMN shipped_at timestamptz;
ALTER TABLE orders ADD COLUMN priority integer;
UPDATE orders SET priority = 0;
ALTER TABLE orders ALTER COLUMN priority SET NOT NULL;
ALTER TABLE orders ALTER COLUMN priority SET DEFAULT 0;
ALTER TABLE orders ALTER COLUMN note DROP NOT NULL;
ALTER TABLE orders ALTER COLUMN note DROP DEFAULT;
DROP INDEX CONCURRENTLY IF EXISTS orders_old_idx;
ALTER TABLE orders DROP COLUMN legacy_code;
COMMENT ON COLUMN orders.shipped_at IS 'when the order left the warehouse';
ALTER TABLE orders REPLICA IDENTITY FULL;
ALTER TABLE orders RENAME CONSTRAINT orders_qty_check TO orders_quantity_positive;
ALTER TABLE orders ADD CONSTRAINT orders_priority_range CHECK (priority BETWEEN 0 AND 9) NOT VALID;
ALTER TABLE orders VALIDATE CONSTRAINT orders_priority_range;
