-- API tokens: `Authorization: Bearer crm_<id>_<secret>`. Only a SHA-256 of
-- the secret is kept; the token text is shown once, when it is created.
-- Runs with search_path = crm_system.
CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES users (id),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    -- The role requests made with this token act with.
    role          text NOT NULL CHECK (role IN ('ADMIN', 'SALES', 'SUPPORT', 'READ_ONLY')),
    secret_sha256 bytea NOT NULL CHECK (length(secret_sha256) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);
