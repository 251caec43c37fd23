DROP TABLE opportunity;
DROP TABLE contact;
DROP TABLE account;
DROP TABLE workspace_settings;
