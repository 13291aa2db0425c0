-- diesel migration up.sql
CREATE TYPE post_status AS ENUM ('draft', 'published');

CREATE TABLE posts (
  id SERIAL PRIMARY KEY,
  title VARCHAR NOT NULL,
  body TEXT NOT NULL,
  status post_status NOT NULL DEFAULT 'draft',
  author_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  UNIQUE (author_id, title)
);
COMMENT ON TABLE posts IS 'blog posts';

CREATE INDEX ON posts (author_id, created_at DESC);

ALTER TABLE users ADD COLUMN bio TEXT;
