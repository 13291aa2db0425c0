-- Renaming an enum value and a type the running version writes, and one created here.
ALTER TYPE order_status RENAME VALUE 'sent' TO 'shipped';
ALTER TYPE order_status RENAME TO shipment_status;
CREATE TYPE ticket_kind AS ENUM ('bug', 'feature');
ALTER TYPE ticket_kind RENAME VALUE 'feature' TO 'request';
-- The findings, at the offending clause:
-- expect: 2:1 T034
-- expect: 3:1 T034
