-- Users are global: production and every sandbox refer to the same people.
-- Runs with search_path = crm_system.
CREATE TABLE users (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    version      integer NOT NULL DEFAULT 1,
    deleted_at   timestamptz,
    external_id  text UNIQUE CHECK (length(external_id) BETWEEN 1 AND 255),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    email        text NOT NULL UNIQUE,
    role         text NOT NULL DEFAULT 'SALES' CHECK (role IN ('ADMIN', 'SALES', 'SUPPORT', 'READ_ONLY')),
    active       boolean NOT NULL DEFAULT true
);
CREATE INDEX users_created_at_idx ON users (created_at, id);
