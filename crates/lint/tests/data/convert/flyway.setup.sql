CREATE TABLE orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    quantity integer NOT NULL CONSTRAINT orders_qty_check CHECK (quantity > 0),
    note text NOT NULL DEFAULT '',
    legacy_code text
);
CREATE INDEX orders_old_idx ON orders (legacy_code);
INSERT INTO orders (quantity, legacy_code) SELECT 1 + g % 7, 'L' || g FROM generate_series(1, 700) g;
