-- "Batched", but the DO block never commits: every batch is in one transaction.
DO $$
DECLARE
    n integer;
BEGIN
    LOOP
        UPDATE accounts SET plan = 'free'
        WHERE id IN (SELECT id FROM accounts WHERE plan IS NULL LIMIT 1000);
        GET DIAGNOSTICS n = ROW_COUNT;
        EXIT WHEN n = 0;
    END LOOP;
END
$$;
