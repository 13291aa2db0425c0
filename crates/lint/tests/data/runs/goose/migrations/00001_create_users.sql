-- +goose Up
CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email varchar(20) NOT NULL,
    name text
);

-- +goose Down
DROP TABLE users;
