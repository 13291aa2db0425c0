CREATE TABLE users (id SERIAL PRIMARY KEY, name VARCHAR NOT NULL);
INSERT INTO users (name) SELECT 'user ' || g FROM generate_series(1, 100) g;
