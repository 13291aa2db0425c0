-- The schema every hazards fixture starts from: a small SaaS application in production.
CREATE TYPE order_status AS ENUM ('new', 'sent', 'delivered');
CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text, name text, nickname text DEFAULT 'anon');
CREATE INDEX users_email_idx ON users (email);
CREATE TABLE accounts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, plan text);
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id bigint, account_id bigint, account_name text, total numeric(12,2) NOT NULL DEFAULT 0, status order_status NOT NULL DEFAULT 'new', created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE sessions (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id bigint);
CREATE TABLE bookings (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, room int NOT NULL, during tstzrange NOT NULL);
INSERT INTO users (email, name) VALUES ('ada@example.com', 'Ada');
INSERT INTO accounts (name) VALUES ('Acme');
INSERT INTO orders (user_id, account_id, total, status) VALUES (1, 1, 10, 'sent');
INSERT INTO sessions (user_id) VALUES (1);
INSERT INTO bookings (room, during) VALUES (1, tstzrange(now(), now() + interval '1 hour'));
CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY, at date NOT NULL, payload jsonb) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE audit_log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, entry text);
