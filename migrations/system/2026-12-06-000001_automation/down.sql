ALTER TABLE audit_log DROP CONSTRAINT audit_log_via_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_via_check CHECK (via IN ('API', 'CLI'));
ALTER TABLE workspace DROP COLUMN email_domains;
