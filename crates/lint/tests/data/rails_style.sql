-- A migration as a framework would write it, with the usual mistakes.
BEGIN;
ALTER TABLE users ADD COLUMN plan text NOT NULL;
CREATE INDEX index_users_on_plan ON users (plan);
ALTER TABLE users ADD CONSTRAINT users_org_fk FOREIGN KEY (org_id) REFERENCES orgs (id);
COMMIT;
-- tandem-lint: ignore drop-column (release 41 stopped reading it)
ALTER TABLE users DROP COLUMN legacy;
UPDATE users SET plan = 'free';
