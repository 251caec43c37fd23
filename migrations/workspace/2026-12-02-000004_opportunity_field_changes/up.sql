-- The opportunity history becomes read-only records like the stage
-- entries (`OpportunityFieldChange`): listed, filtered and aggregated like
-- any object, seen with their deal, copied into sandboxes with it. Each
-- row is one change of a deal's stage, amount, probability, forecast
-- category or close date: the value before and after (as text, as the
-- audit log writes them; stages as ids), when and who. Its rows are copied
-- to a table with a record's columns; the field is named as the API names
-- it. The old table and its trigger stay until a later release drops them
-- (expand, then contract): a server not yet upgraded still reads it.
CREATE TABLE opportunity_field_change (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         integer NOT NULL DEFAULT 1,
    deleted_at      timestamptz,
    opportunity_id  uuid NOT NULL REFERENCES opportunity (id) ON DELETE CASCADE,
    field           text NOT NULL CHECK (field IN ('STAGE', 'AMOUNT', 'PROBABILITY', 'FORECAST_CATEGORY', 'CLOSE_DATE')),
    before          text,
    after           text,
    changed_at      timestamptz NOT NULL,
    changed_by      uuid REFERENCES crm_system.users (id) ON DELETE SET NULL
);

INSERT INTO opportunity_field_change (created_at, updated_at, opportunity_id, field, before, after, changed_at, changed_by)
SELECT changed_at, changed_at, opportunity_id,
       CASE field WHEN 'stageId' THEN 'STAGE' WHEN 'amount' THEN 'AMOUNT' WHEN 'probability' THEN 'PROBABILITY'
                  WHEN 'forecastCategory' THEN 'FORECAST_CATEGORY' ELSE 'CLOSE_DATE' END,
       before, after, changed_at, changed_by
FROM opportunity_history ORDER BY id;

CREATE INDEX opportunity_field_change_opportunity_id_idx ON opportunity_field_change (opportunity_id, changed_at);
CREATE INDEX opportunity_field_change_field_idx ON opportunity_field_change (field, changed_at);
CREATE INDEX opportunity_field_change_changed_at_idx ON opportunity_field_change (changed_at, id);
CREATE INDEX opportunity_field_change_created_at_idx ON opportunity_field_change (created_at, id);
CREATE INDEX opportunity_field_change_changed_by_idx ON opportunity_field_change (changed_by);
CREATE INDEX opportunity_field_change_deleted_idx ON opportunity_field_change (id) WHERE deleted_at IS NOT NULL;

CREATE FUNCTION opportunity_field_change_record() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    actor uuid := nullif(current_setting('crm.actor', true), '')::uuid;
    -- The clock: two changes in one transaction stay in order.
    at timestamptz := CASE WHEN TG_OP = 'INSERT' THEN NEW.created_at ELSE clock_timestamp() END;
BEGIN
    INSERT INTO opportunity_field_change (created_at, updated_at, opportunity_id, field, before, after, changed_at, changed_by)
    SELECT at, at, NEW.id, change.field, change.before, change.after, at, actor
    FROM (VALUES
        ('STAGE', CASE WHEN TG_OP = 'UPDATE' THEN OLD.stage_id::text END, NEW.stage_id::text),
        ('AMOUNT', CASE WHEN TG_OP = 'UPDATE' THEN OLD.amount::text END, NEW.amount::text),
        ('PROBABILITY', CASE WHEN TG_OP = 'UPDATE' THEN OLD.probability::text END, NEW.probability::text),
        ('FORECAST_CATEGORY', CASE WHEN TG_OP = 'UPDATE' THEN OLD.forecast_category END, NEW.forecast_category),
        ('CLOSE_DATE', CASE WHEN TG_OP = 'UPDATE' THEN OLD.close_date::text END, NEW.close_date::text)
    ) AS change (field, before, after)
    WHERE change.before IS DISTINCT FROM change.after;
    RETURN NULL;
END $$;
CREATE TRIGGER opportunity_field_change AFTER INSERT OR UPDATE OF stage_id, amount, probability, forecast_category, close_date
    ON opportunity FOR EACH ROW EXECUTE FUNCTION opportunity_field_change_record();

-- A deal's changes are deleted and restored with it.
CREATE FUNCTION opportunity_field_change_follows() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE opportunity_field_change SET deleted_at = NEW.deleted_at
    WHERE opportunity_id = NEW.id AND deleted_at IS DISTINCT FROM NEW.deleted_at;
    RETURN NULL;
END $$;
CREATE TRIGGER opportunity_field_change_follows AFTER UPDATE OF deleted_at ON opportunity
    FOR EACH ROW WHEN (OLD.deleted_at IS DISTINCT FROM NEW.deleted_at) EXECUTE FUNCTION opportunity_field_change_follows();
UPDATE opportunity_field_change c SET deleted_at = o.deleted_at
FROM opportunity o WHERE o.id = c.opportunity_id AND o.deleted_at IS NOT NULL;
