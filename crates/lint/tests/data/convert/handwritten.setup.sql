CREATE TABLE customers (id bigint PRIMARY KEY, email text);
CREATE TABLE invoices (
    id bigint PRIMARY KEY,
    customer_id bigint,
    amount numeric NOT NULL DEFAULT 0,
    status text DEFAULT 'open',
    code text,
    CONSTRAINT invoices_amount_check CHECK (amount >= 0)
);
INSERT INTO customers SELECT g, 'c' || g || '@example.com' FROM generate_series(1, 100) g;
INSERT INTO invoices SELECT g, 1 + g % 100, g, 'open', 'INV-' || g FROM generate_series(1, 600) g;
