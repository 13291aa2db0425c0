CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL);
CREATE TABLE users (
    id bigserial PRIMARY KEY,
    name character varying,
    email character varying,
    account_id bigint
);
INSERT INTO accounts (name) SELECT 'account ' || g FROM generate_series(1, 10) g;
INSERT INTO users (name, email, account_id)
SELECT 'user ' || g, 'user' || g || '@example.com', 1 + g % 10 FROM generate_series(1, 500) g;
