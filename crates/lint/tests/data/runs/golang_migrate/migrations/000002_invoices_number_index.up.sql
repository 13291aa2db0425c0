CREATE INDEX CONCURRENTLY invoices_number_idx ON invoices (number);
