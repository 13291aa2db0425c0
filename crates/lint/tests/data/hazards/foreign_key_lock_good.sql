-- The same with lock_timeout, and a foreign key on an existing table added NOT VALID.
-- (no finding expected)
SET lock_timeout = '2s';
CREATE TABLE api_tokens (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users (id),
  token text NOT NULL
);
ALTER TABLE sessions ADD CONSTRAINT sessions_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
ALTER TABLE sessions VALIDATE CONSTRAINT sessions_user_fk;
