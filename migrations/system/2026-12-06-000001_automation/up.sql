-- Automation. A sandbox's emails are captured, never sent, except to the
-- recipient domains an admin allows for that sandbox. Changes workflow
-- rules make are audited as made by AUTOMATION. Runs with
-- search_path = crm_system.
ALTER TABLE workspace ADD COLUMN email_domains text[] NOT NULL DEFAULT '{}';

ALTER TABLE audit_log DROP CONSTRAINT audit_log_via_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_via_check CHECK (via IN ('API', 'CLI', 'AUTOMATION'));
