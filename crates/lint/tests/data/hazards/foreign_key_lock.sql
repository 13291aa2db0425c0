-- An ORM's migration for a new table next to a hot users table, with no lock_timeout: the
-- foreign key takes SHARE ROW EXCLUSIVE on users although the table itself is new.
CREATE TABLE api_tokens (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users (id),
  token text NOT NULL
);
-- The findings, at the offending clause:
-- expect: 3:1 T017
