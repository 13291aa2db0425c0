SET lock_timeout = '2s';
-- numeric(10,2) to numeric(12,2) only widens the precision: no rewrite.
ALTER TABLE invoices ALTER COLUMN total TYPE numeric(12,2);
CREATE INDEX CONCURRENTLY invoices_total_idx ON invoices (total);
COMMENT ON INDEX invoices_total_idx IS 'reports by amount';
