-- Flyway runs a migration with a statement PostgreSQL refuses in a transaction outside one.
CREATE INDEX CONCURRENTLY products_sku_idx ON products (sku);
