-- Whether an admin set recordVisibility in this workspace itself. A
-- sandbox where nobody did follows production's setting as it changes, so
-- a sandbox made before production turned to OWNED shows a rep no more
-- than production does.
ALTER TABLE workspace_settings
    ADD COLUMN record_visibility_set_here boolean NOT NULL DEFAULT false;
