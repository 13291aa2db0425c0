-- Rails: add_column + update_all in one migration, and a denormalisation through a join.
SET lock_timeout = '2s';
ALTER TABLE accounts ADD COLUMN slug text;
UPDATE accounts SET slug = lower(name) WHERE slug IS NULL;
-- plan existed before this file: its NULLs may be a few rows.
UPDATE accounts SET plan = 'free' WHERE plan IS NULL;
UPDATE orders SET account_name = accounts.name FROM accounts WHERE orders.account_id = accounts.id;
UPDATE orders o SET account_name = a.name FROM accounts a WHERE o.account_id = a.id AND o.created_at > now() - interval '1 day';
DELETE FROM sessions WHERE true;
UPDATE accounts SET slug = lower(name) WHERE id IN (SELECT id FROM accounts WHERE slug IS NULL LIMIT 1000);
-- Two columns of the table compared select some rows only; so does a self-join's filter.
UPDATE accounts SET plan = 'pro' WHERE plan = name;
UPDATE accounts a SET plan = 'pro' WHERE a.plan = a.name;
-- The findings, at the offending clause:
-- expect: 4:40 T016
-- expect: 7:62 T016
-- expect: 9:22 T016
