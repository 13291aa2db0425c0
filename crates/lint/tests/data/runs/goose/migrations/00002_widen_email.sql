-- +goose Up
SET lock_timeout = '2s';
-- A widening (varchar(20) was created in 00001) and a NOT NULL the column already has.
ALTER TABLE users
    ALTER COLUMN email TYPE varchar(255),
    ALTER COLUMN email SET NOT NULL;

-- +goose Down
-- Narrowing back rewrites the table; the down migration is not what is deployed.
ALTER TABLE users ALTER COLUMN email TYPE varchar(20);
