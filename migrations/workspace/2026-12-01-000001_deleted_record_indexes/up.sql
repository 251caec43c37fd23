-- Each record table's soft-deleted rows, found without reading the table:
-- a page sorted through a lookup (contacts by `account.name`) puts the
-- rows referring to a deleted record with those whose lookup is empty, and
-- finds them from the referred side. Live rows are not in the index, so it
-- stays as small as the trash. Custom objects' tables get it when they are
-- made; this adds it to every table that has soft deletes, standard and
-- custom.
DO $$
DECLARE
    item record;
BEGIN
    FOR item IN
        SELECT c.relname::text AS name
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'deleted_at' AND NOT a.attisdropped
        WHERE n.nspname = current_schema() AND c.relkind = 'r'
        ORDER BY c.relname
    LOOP
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I (id) WHERE deleted_at IS NOT NULL',
            item.name || '_deleted_idx', item.name);
    END LOOP;
END $$;
