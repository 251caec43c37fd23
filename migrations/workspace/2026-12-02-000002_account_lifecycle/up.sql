-- Account lifecycle changes: every change of an account's lifecycle stage
-- (prospect to customer, customer to churned …), from and to, when and
-- who, kept by a trigger in the transaction of the change whatever made
-- it. Churn and customer lifetime value read it; read-only records
-- (`LifecycleChange`) anyone may list, filter and aggregate.
CREATE TABLE account_lifecycle_change (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         integer NOT NULL DEFAULT 1,
    deleted_at      timestamptz,
    account_id      uuid NOT NULL REFERENCES account (id) ON DELETE CASCADE,
    from_stage      text,
    to_stage        text,
    changed_at      timestamptz NOT NULL,
    changed_by      uuid REFERENCES crm_system.users (id) ON DELETE SET NULL
);
CREATE INDEX account_lifecycle_change_account_id_idx ON account_lifecycle_change (account_id, changed_at, id);
CREATE INDEX account_lifecycle_change_changed_at_idx ON account_lifecycle_change (changed_at, id);
CREATE INDEX account_lifecycle_change_changed_by_idx ON account_lifecycle_change (changed_by);
CREATE INDEX account_lifecycle_change_created_at_idx ON account_lifecycle_change (created_at, id);
CREATE INDEX account_lifecycle_change_deleted_idx ON account_lifecycle_change (id) WHERE deleted_at IS NOT NULL;

CREATE FUNCTION account_lifecycle_record() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    -- The clock: two changes in one transaction stay in order.
    at timestamptz := CASE WHEN TG_OP = 'INSERT' THEN NEW.created_at ELSE clock_timestamp() END;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.lifecycle_stage IS NOT DISTINCT FROM OLD.lifecycle_stage THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' AND NEW.lifecycle_stage IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO account_lifecycle_change (created_at, updated_at, account_id, from_stage, to_stage, changed_at, changed_by)
    VALUES (at, at, NEW.id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.lifecycle_stage END, NEW.lifecycle_stage, at,
            nullif(current_setting('crm.actor', true), '')::uuid);
    RETURN NULL;
END $$;
CREATE TRIGGER account_lifecycle AFTER INSERT OR UPDATE OF lifecycle_stage ON account
    FOR EACH ROW EXECUTE FUNCTION account_lifecycle_record();

-- Accounts that exist already: their changes from the audit log, in
-- order; those it does not know (loaded in bulk) their stage now, at their
-- creation time.
INSERT INTO account_lifecycle_change (created_at, updated_at, account_id, from_stage, to_stage, changed_at, changed_by)
SELECT a.at, a.at, a.record_id, c.value ->> 'before', c.value ->> 'after', a.at, a.actor_id
FROM crm_system.audit_log a
JOIN crm_system.workspace w ON w.name = a.workspace AND w.pg_schema = current_schema()
CROSS JOIN LATERAL jsonb_array_elements(a.changes) AS c (value)
WHERE a.object = 'Account' AND c.value ->> 'field' = 'lifecycleStage'
  AND EXISTS (SELECT 1 FROM account x WHERE x.id = a.record_id)
  AND (c.value ->> 'before') IS DISTINCT FROM (c.value ->> 'after')
ORDER BY a.id;
INSERT INTO account_lifecycle_change (created_at, updated_at, account_id, from_stage, to_stage, changed_at)
SELECT x.created_at, x.created_at, x.id, NULL, x.lifecycle_stage, x.created_at
FROM account x
WHERE x.lifecycle_stage IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM account_lifecycle_change c WHERE c.account_id = x.id);

-- An account's lifecycle changes are deleted and restored with it.
CREATE FUNCTION account_lifecycle_follows() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE account_lifecycle_change SET deleted_at = NEW.deleted_at
    WHERE account_id = NEW.id AND deleted_at IS DISTINCT FROM NEW.deleted_at;
    RETURN NULL;
END $$;
CREATE TRIGGER account_lifecycle_follows AFTER UPDATE OF deleted_at ON account
    FOR EACH ROW WHEN (OLD.deleted_at IS DISTINCT FROM NEW.deleted_at) EXECUTE FUNCTION account_lifecycle_follows();
UPDATE account_lifecycle_change c SET deleted_at = a.deleted_at
FROM account a WHERE a.id = c.account_id AND a.deleted_at IS NOT NULL;
