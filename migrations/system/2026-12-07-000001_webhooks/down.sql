ALTER TABLE workspace DROP COLUMN webhook_urls;
