-- Each batch commits (a DO block run outside a transaction may COMMIT, from PostgreSQL 11).
DO $$
DECLARE
    n integer;
BEGIN
    LOOP
        UPDATE accounts SET plan = 'pro'
        WHERE id IN (SELECT id FROM accounts WHERE plan = 'free' LIMIT 1000);
        GET DIAGNOSTICS n = ROW_COUNT;
        COMMIT;
        EXIT WHEN n = 0;
    END LOOP;
END
$$;
