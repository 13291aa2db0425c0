DROP INDEX invoices_total_idx;
ALTER TABLE invoices ALTER COLUMN total TYPE numeric(10,2);
