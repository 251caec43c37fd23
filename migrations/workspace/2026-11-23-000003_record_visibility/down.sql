-- Forward-only in practice; kept so a developer database can step back.
ALTER TABLE workspace_settings DROP COLUMN record_visibility;
