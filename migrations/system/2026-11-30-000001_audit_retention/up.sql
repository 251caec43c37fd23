-- The audit log stays append-only, with one exception: the retention job
-- deletes a workspace's entries older than its auditRetentionDays, in a
-- transaction that says so (SET LOCAL crm.audit_retention = 'on').
-- Updates and TRUNCATE are still refused, and so is every other delete.
-- Runs with search_path = crm_system.
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_LEVEL = 'ROW'
       AND current_setting('crm.audit_retention', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only'
        USING ERRCODE = 'insufficient_privilege';
END $$;
