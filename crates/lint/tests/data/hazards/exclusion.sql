-- No double bookings: an exclusion constraint on the existing table, and one on a new table.
SET lock_timeout = '2s';
ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap EXCLUDE USING gist (during WITH &&);
CREATE TABLE rooms_booked (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  during tstzrange NOT NULL,
  EXCLUDE USING gist (during WITH &&)
);
-- The findings, at the offending clause:
-- expect: 3:22 T035
