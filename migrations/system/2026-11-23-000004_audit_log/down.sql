-- Forward-only in practice; kept so a developer database can step back.
DROP TABLE audit_log;
DROP FUNCTION audit_log_append_only();
