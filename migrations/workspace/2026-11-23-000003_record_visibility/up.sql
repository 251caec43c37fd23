-- Who reads which records: ALL (every role reads every record) or OWNED
-- (sales reps read the records they own and those records' children).
ALTER TABLE workspace_settings
    ADD COLUMN record_visibility text NOT NULL DEFAULT 'ALL' CHECK (record_visibility IN ('ALL', 'OWNED'));
