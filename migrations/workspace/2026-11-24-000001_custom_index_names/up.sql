-- Custom fields' indexes and foreign keys get names that cannot collide.
-- They were `<table>_<column>_<suffix>`, which Postgres cuts at 63 bytes:
-- two long field names of one object could make one name, and dropping or
-- re-indexing one field dropped the other's (unique) index. The new name
-- is `<table>_<column>` cut to fit, the first 8 hex digits of the SHA-256
-- of `<table>/<column>/<suffix>`, and the suffix, at most 63 bytes: what
-- `metadata::custom::index_name` computes. Only indexes and constraints on
-- `cf_` columns that still have the old name are renamed, so a schema
-- without custom fields (and a second run) changes nothing; deleted fields'
-- indexes are renamed too, as a restore keeps them.
-- Runs once per workspace schema with search_path set to it.
DO $$
DECLARE
    item record;
    fresh text;
BEGIN
    FOR item IN
        SELECT 'index' AS kind, t.relname::text AS table_name, a.attname::text AS column_name,
               i.relname::text AS name, CASE WHEN x.indisunique THEN 'key' ELSE 'idx' END AS suffix
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0]
        WHERE n.nspname = current_schema() AND a.attname LIKE 'cf\_%'
        UNION ALL
        SELECT 'constraint', t.relname::text, a.attname::text, c.conname::text, 'fkey'
        FROM pg_constraint c
        JOIN pg_class t ON t.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = c.conkey[1]
        WHERE n.nspname = current_schema() AND c.contype = 'f' AND a.attname LIKE 'cf\_%'
    LOOP
        CONTINUE WHEN item.name <> left(item.table_name || '_' || item.column_name || '_' || item.suffix, 63);
        fresh := left(item.table_name || '_' || item.column_name, 63 - 10 - length(item.suffix))
            || '_' || left(encode(sha256(convert_to(
                item.table_name || '/' || item.column_name || '/' || item.suffix, 'UTF8')), 'hex'), 8)
            || '_' || item.suffix;
        IF item.kind = 'index' THEN
            EXECUTE format('ALTER INDEX %I.%I RENAME TO %I', current_schema(), item.name, fresh);
        ELSE
            EXECUTE format('ALTER TABLE %I.%I RENAME CONSTRAINT %I TO %I',
                current_schema(), item.table_name, item.name, fresh);
        END IF;
    END LOOP;
END $$;
