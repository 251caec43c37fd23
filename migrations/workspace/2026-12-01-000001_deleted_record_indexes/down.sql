DO $$
DECLARE
    item record;
BEGIN
    FOR item IN
        SELECT c.relname::text AS name
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relkind = 'i' AND c.relname LIKE '%\_deleted\_idx'
    LOOP
        EXECUTE format('DROP INDEX %I', item.name);
    END LOOP;
END $$;
