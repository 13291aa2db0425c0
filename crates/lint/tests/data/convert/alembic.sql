BEGIN;

-- Running upgrade a1 -> b2

CREATE TABLE orders (
    id SERIAL NOT NULL,
    customer_id INTEGER NOT NULL,
    total NUMERIC(10, 2),
    status VARCHAR(20) DEFAULT 'new' NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(customer_id) REFERENCES customers (id),
    CONSTRAINT orders_total_positive CHECK (total >= 0)
);

CREATE INDEX ix_orders_status ON orders (status);

ALTER TABLE customers ADD COLUMN email VARCHAR(255);

ALTER TABLE customers ALTER COLUMN name TYPE VARCHAR(200);

ALTER TABLE customers ADD CONSTRAINT uq_customers_email UNIQUE (email);

UPDATE alembic_version SET version_num='b2' WHERE alembic_version.version_num = 'a1';

COMMIT;
