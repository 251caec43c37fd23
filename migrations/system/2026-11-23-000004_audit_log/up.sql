-- The audit log: one row per change made through the API or the CLI,
-- written in the transaction of the change itself. Append-only: the
-- trigger below refuses to change or remove a row.
-- Runs with search_path = crm_system.
CREATE TABLE audit_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    -- Who: the user and token of the request (null for the CLI).
    actor_id       uuid REFERENCES users (id),
    token_id       uuid REFERENCES api_tokens (id),
    actor_role     text CHECK (actor_role IN ('ADMIN', 'SALES', 'SUPPORT', 'READ_ONLY')),
    via            text NOT NULL CHECK (via IN ('API', 'CLI')),
    request_id     text,
    -- Where and what.
    workspace      text NOT NULL,
    object         text NOT NULL,
    record_id      uuid,
    action         text NOT NULL,
    -- [{"field": "amount", "before": "100.00", "after": "250.00"}, …]
    changes        jsonb NOT NULL DEFAULT '[]'
);
CREATE INDEX audit_log_record_idx ON audit_log (workspace, object, record_id, id);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, id);
CREATE INDEX audit_log_at_idx ON audit_log (at, id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only'
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
