DROP FUNCTION mask_date(date);
DROP FUNCTION mask_text(text);
DROP FUNCTION mask_postal_code(text, text);
DROP FUNCTION mask_city(text, text);
DROP FUNCTION mask_street(text, text);
DROP FUNCTION mask_phone(text, text);
DROP FUNCTION mask_email(text, text);
DROP FUNCTION mask_family_name(text, text);
DROP FUNCTION mask_given_name(text, text);
DROP FUNCTION mask_pick(text, text, text[]);
DROP FUNCTION mask_hash(text, text);
DROP TABLE secret;
DROP TABLE sandbox_access;
ALTER TABLE workspace
    DROP CONSTRAINT workspace_sandbox_check,
    DROP COLUMN base, DROP COLUMN base_version, DROP COLUMN refreshed_by, DROP COLUMN refreshed_at,
    DROP COLUMN created_by, DROP COLUMN masked, DROP COLUMN sample_size, DROP COLUMN mode,
    DROP COLUMN description;
ALTER TABLE workspace DROP CONSTRAINT workspace_name_check;
ALTER TABLE workspace ADD CONSTRAINT workspace_name_check CHECK (name ~ '^[a-z][a-z0-9_]{0,39}$');
