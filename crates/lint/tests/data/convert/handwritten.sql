-- A hand-written migration of the kind reviewed in a pull request.
ALTER TABLE invoices ADD CONSTRAINT invoices_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE invoices DROP CONSTRAINT invoices_amount_check;
ALTER TABLE invoices ALTER COLUMN status SET DEFAULT 'draft';
ALTER TABLE invoices ALTER COLUMN amount DROP DEFAULT;
CREATE INDEX CONCURRENTLY invoices_lower_code_idx ON invoices (lower(code));
CREATE INDEX invoices_status_idx ON invoices USING hash (status);
COMMENT ON TABLE invoices IS 'one row per invoice';
ALTER TABLE invoices ADD CONSTRAINT invoices_code_key UNIQUE (code);
CREATE TABLE payments (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id bigint NOT NULL REFERENCES invoices (id),
    paid_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE customers ADD COLUMN tier smallint;
ALTER TABLE customers ALTER COLUMN tier SET DEFAULT 1;
ALTER TABLE customers ALTER COLUMN email SET NOT NULL;
ALTER TABLE customers ADD CONSTRAINT customers_email_lower CHECK (email = lower(email)) NOT VALID;
ALTER TABLE customers VALIDATE CONSTRAINT customers_email_lower;
