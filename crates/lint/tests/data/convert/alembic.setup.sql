CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));
INSERT INTO alembic_version VALUES ('a1');
CREATE TABLE customers (id SERIAL NOT NULL, name VARCHAR(100) NOT NULL, PRIMARY KEY (id));
INSERT INTO customers (name) SELECT 'customer ' || g FROM generate_series(1, 200) g;
