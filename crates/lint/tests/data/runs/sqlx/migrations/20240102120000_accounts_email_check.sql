SET lock_timeout = '2s';
ALTER TABLE accounts ADD CONSTRAINT accounts_email_present CHECK (email <> '') NOT VALID;
ALTER TABLE accounts VALIDATE CONSTRAINT accounts_email_present;
