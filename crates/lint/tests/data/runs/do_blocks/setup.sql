CREATE TABLE orgs (id bigint PRIMARY KEY);
CREATE TABLE accounts (id bigint, email text, org_id bigint, name text, plan text);
INSERT INTO orgs VALUES (1);
INSERT INTO accounts SELECT g, 'a' || g || '@example.com', 1, 'name ' || g, NULL FROM generate_series(1, 2500) g;
