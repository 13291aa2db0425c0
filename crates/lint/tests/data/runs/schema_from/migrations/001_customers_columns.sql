SET lock_timeout = '2s';
-- The starting schema says code is varchar(20) NOT NULL: a widening, and a no-op.
ALTER TABLE customers ALTER COLUMN code TYPE varchar(64);
ALTER TABLE customers ALTER COLUMN code SET NOT NULL;
-- text to varchar(10) checks and rewrites every row.
ALTER TABLE customers ALTER COLUMN note TYPE varchar(10);
