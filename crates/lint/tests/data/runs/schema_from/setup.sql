CREATE TABLE customers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code varchar(20) NOT NULL,
    note text
);
INSERT INTO customers (code, note) VALUES ('c1', 'first');
