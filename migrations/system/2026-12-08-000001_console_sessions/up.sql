-- Console sign-ins: a browser exchanges an API token for an HttpOnly
-- session cookie `<id>_<secret>`. Only a SHA-256 of the secret is kept; a
-- session acts as its token and ends with it. Runs with search_path =
-- crm_system.
CREATE TABLE console_sessions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_id      uuid NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    secret_sha256 bytea NOT NULL CHECK (length(secret_sha256) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX console_sessions_token_idx ON console_sessions (token_id);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);
