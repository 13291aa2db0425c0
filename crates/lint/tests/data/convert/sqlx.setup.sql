CREATE TABLE accounts (id bigserial PRIMARY KEY, slug text NOT NULL, balance numeric(10,2) NOT NULL DEFAULT 0);
CREATE TABLE legacy_sessions (id bigserial PRIMARY KEY, token text);
INSERT INTO accounts (slug, balance) SELECT 'acct-' || g, g FROM generate_series(1, 250) g;
