ALTER TABLE workspace_settings DROP COLUMN deleted_record_retention_days, DROP COLUMN audit_retention_days;
