-- migrations/20240301120000_customer_accounts.sql (sqlx migrate)
ALTER TABLE accounts ADD COLUMN status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed'));
CREATE UNIQUE INDEX CONCURRENTLY accounts_slug_key ON accounts (slug);
ALTER TABLE accounts ALTER COLUMN balance TYPE numeric(12,2);
ALTER TABLE accounts RENAME TO customer_accounts;
DROP TABLE legacy_sessions;
ALTER TABLE customer_accounts ADD CONSTRAINT accounts_slug_key UNIQUE USING INDEX accounts_slug_key;
