-- Opportunity history: every change of a deal's stage, amount, probability,
-- forecast category or close date, one row per field changed, with the
-- value before and after (as text, as the audit log writes them), when and
-- who. A trigger records it in the transaction of the change, whatever made
-- it: a mutation, a batch, an upsert, the command line, a promotion moving
-- deals off a removed stage. Who is the user of the request (`crm.actor`,
-- which mutations set); empty for the server's own work. Creating a deal
-- records its first values (before: null) at its creation time.
CREATE TABLE opportunity_history (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    opportunity_id  uuid NOT NULL REFERENCES opportunity (id) ON DELETE CASCADE,
    field           text NOT NULL CHECK (field IN ('stageId', 'amount', 'probability', 'forecastCategory', 'closeDate')),
    before          text,
    after           text,
    changed_at      timestamptz NOT NULL DEFAULT now(),
    changed_by      uuid REFERENCES crm_system.users (id) ON DELETE SET NULL
);
CREATE INDEX opportunity_history_opportunity_idx ON opportunity_history (opportunity_id, changed_at, id);
CREATE INDEX opportunity_history_changed_at_idx ON opportunity_history (field, changed_at, id);

CREATE FUNCTION opportunity_history_record() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    actor uuid := nullif(current_setting('crm.actor', true), '')::uuid;
    at timestamptz := CASE WHEN TG_OP = 'INSERT' THEN NEW.created_at ELSE now() END;
BEGIN
    INSERT INTO opportunity_history (opportunity_id, field, before, after, changed_at, changed_by)
    SELECT NEW.id, change.field, change.before, change.after, at, actor
    FROM (VALUES
        ('stageId', CASE WHEN TG_OP = 'UPDATE' THEN OLD.stage_id::text END, NEW.stage_id::text),
        ('amount', CASE WHEN TG_OP = 'UPDATE' THEN OLD.amount::text END, NEW.amount::text),
        ('probability', CASE WHEN TG_OP = 'UPDATE' THEN OLD.probability::text END, NEW.probability::text),
        ('forecastCategory', CASE WHEN TG_OP = 'UPDATE' THEN OLD.forecast_category END, NEW.forecast_category),
        ('closeDate', CASE WHEN TG_OP = 'UPDATE' THEN OLD.close_date::text END, NEW.close_date::text)
    ) AS change (field, before, after)
    WHERE change.before IS DISTINCT FROM change.after;
    RETURN NULL;
END $$;
CREATE TRIGGER opportunity_history AFTER INSERT OR UPDATE OF stage_id, amount, probability, forecast_category, close_date
    ON opportunity FOR EACH ROW EXECUTE FUNCTION opportunity_history_record();

-- Deals that exist already: their changes from the audit log, in order;
-- those the audit log does not know (loaded in bulk) their values now, at
-- their creation time.
INSERT INTO opportunity_history (opportunity_id, field, before, after, changed_at, changed_by)
SELECT a.record_id, c.value ->> 'field', c.value ->> 'before', c.value ->> 'after', a.at, a.actor_id
FROM crm_system.audit_log a
JOIN crm_system.workspace w ON w.name = a.workspace AND w.pg_schema = current_schema()
CROSS JOIN LATERAL jsonb_array_elements(a.changes) AS c (value)
WHERE a.object = 'Opportunity'
  AND c.value ->> 'field' IN ('stageId', 'amount', 'probability', 'forecastCategory', 'closeDate')
  AND EXISTS (SELECT 1 FROM opportunity o WHERE o.id = a.record_id)
ORDER BY a.id;
INSERT INTO opportunity_history (opportunity_id, field, before, after, changed_at)
SELECT o.id, value.field, NULL, value.after, o.created_at
FROM opportunity o
CROSS JOIN LATERAL (VALUES
    ('stageId', o.stage_id::text),
    ('amount', o.amount::text),
    ('probability', o.probability::text),
    ('forecastCategory', o.forecast_category),
    ('closeDate', o.close_date::text)
) AS value (field, after)
WHERE value.after IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM opportunity_history h WHERE h.opportunity_id = o.id);
