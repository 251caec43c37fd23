-- Webhooks of a sandbox are captured, never sent, except to the URLs an
-- admin allows for that sandbox. Runs with search_path = crm_system.
ALTER TABLE workspace ADD COLUMN webhook_urls text[] NOT NULL DEFAULT '{}';
