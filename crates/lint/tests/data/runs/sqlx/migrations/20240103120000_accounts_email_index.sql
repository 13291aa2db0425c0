-- no-transaction
CREATE INDEX CONCURRENTLY accounts_email_idx ON accounts (email);
