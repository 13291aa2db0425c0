-- A function runs in its caller's transaction: CONCURRENTLY cannot work in it.
CREATE FUNCTION rebuild_account_indexes() RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE 'DROP INDEX CONCURRENTLY IF EXISTS accounts_org_id_idx';
    UPDATE accounts SET plan = lower(plan);
END
$fn$;
