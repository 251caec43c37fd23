-- The registry of workspace schemas: production now, sandboxes later.
-- Runs with search_path = crm_system.
CREATE TABLE workspace (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,39}$'),
    pg_schema   text NOT NULL UNIQUE,
    kind        text NOT NULL CHECK (kind IN ('production', 'sandbox')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO workspace (name, pg_schema, kind) VALUES ('production', 'crm', 'production');
