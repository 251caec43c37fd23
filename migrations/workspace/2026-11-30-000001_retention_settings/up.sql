-- Retention: how long soft-deleted records are kept before the retention
-- job removes them for good, and how long the workspace's audit log
-- entries are kept. 0 keeps them forever.
ALTER TABLE workspace_settings
    ADD COLUMN deleted_record_retention_days integer NOT NULL DEFAULT 90
        CHECK (deleted_record_retention_days BETWEEN 0 AND 3650),
    ADD COLUMN audit_retention_days integer NOT NULL DEFAULT 0
        CHECK (audit_retention_days BETWEEN 0 AND 3650);
