-- Stage entries: each stay of a deal in a stage, from when it entered to
-- when it left and for which stage, with the days it spent there. Kept by
-- a trigger in the transaction of the change, whatever made it (as the
-- opportunity history is), so the funnel and time in stage are plain
-- indexed aggregates, and read-only records (`StageEntry`) anyone may
-- list, filter and aggregate.
CREATE TABLE opportunity_stage_entry (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         integer NOT NULL DEFAULT 1,
    deleted_at      timestamptz,
    opportunity_id  uuid NOT NULL REFERENCES opportunity (id) ON DELETE CASCADE,
    pipeline_id     uuid NOT NULL REFERENCES pipeline (id),
    stage_id        uuid NOT NULL REFERENCES stage (id),
    entered_at      timestamptz NOT NULL,
    left_at         timestamptz,
    next_stage_id   uuid REFERENCES stage (id),
    days_in_stage   numeric,
    entered_by      uuid REFERENCES crm_system.users (id) ON DELETE SET NULL
);
CREATE INDEX opportunity_stage_entry_opportunity_id_idx ON opportunity_stage_entry (opportunity_id, entered_at, id);
CREATE INDEX opportunity_stage_entry_stage_id_idx ON opportunity_stage_entry (stage_id, entered_at);
CREATE INDEX opportunity_stage_entry_pipeline_id_idx ON opportunity_stage_entry (pipeline_id, entered_at);
CREATE INDEX opportunity_stage_entry_next_stage_id_idx ON opportunity_stage_entry (next_stage_id);
CREATE INDEX opportunity_stage_entry_entered_by_idx ON opportunity_stage_entry (entered_by);
CREATE INDEX opportunity_stage_entry_entered_at_idx ON opportunity_stage_entry (entered_at, id);
CREATE INDEX opportunity_stage_entry_created_at_idx ON opportunity_stage_entry (created_at, id);
CREATE INDEX opportunity_stage_entry_deleted_idx ON opportunity_stage_entry (id) WHERE deleted_at IS NOT NULL;

CREATE FUNCTION opportunity_stage_entry_record() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    actor uuid := nullif(current_setting('crm.actor', true), '')::uuid;
    -- The clock, not the transaction's start: two moves in one transaction
    -- stay in order, and a transaction that began before a concurrent move
    -- committed does not leave a stage before entering it.
    at timestamptz := CASE WHEN TG_OP = 'INSERT' THEN NEW.created_at ELSE clock_timestamp() END;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.stage_id IS NOT DISTINCT FROM OLD.stage_id THEN
            RETURN NULL;
        END IF;
        UPDATE opportunity_stage_entry
        SET left_at = at, next_stage_id = NEW.stage_id, updated_at = at, version = version + 1,
            days_in_stage = round((extract(epoch FROM at - entered_at) / 86400)::numeric, 2)
        WHERE opportunity_id = NEW.id AND left_at IS NULL;
    END IF;
    IF NEW.stage_id IS NOT NULL THEN
        INSERT INTO opportunity_stage_entry (created_at, updated_at, opportunity_id, pipeline_id, stage_id, entered_at, entered_by)
        SELECT at, at, NEW.id, s.pipeline_id, s.id, at, actor FROM stage s WHERE s.id = NEW.stage_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER opportunity_stage_entry AFTER INSERT OR UPDATE OF stage_id ON opportunity
    FOR EACH ROW EXECUTE FUNCTION opportunity_stage_entry_record();

-- Deals that exist already: their stays from the opportunity history.
INSERT INTO opportunity_stage_entry
    (created_at, updated_at, opportunity_id, pipeline_id, stage_id, entered_at, left_at, next_stage_id, days_in_stage, entered_by)
SELECT m.entered_at, coalesce(m.left_at, m.entered_at), m.opportunity_id, s.pipeline_id, s.id, m.entered_at, m.left_at,
       n.id, round((extract(epoch FROM m.left_at - m.entered_at) / 86400)::numeric, 2), m.changed_by
FROM (
    SELECT h.opportunity_id, h.after AS stage_id, h.changed_at AS entered_at, h.changed_by,
           lead(h.changed_at) OVER w AS left_at, lead(h.after) OVER w AS next_stage
    FROM opportunity_history h
    WHERE h.field = 'stageId' AND h.after IS NOT NULL
    WINDOW w AS (PARTITION BY h.opportunity_id ORDER BY h.changed_at, h.id)
) m
JOIN stage s ON s.id::text = m.stage_id
LEFT JOIN stage n ON n.id::text = m.next_stage;
-- Deals the history knows no stay of (their first changes purged from the
-- audit log): in their stage since their creation.
INSERT INTO opportunity_stage_entry (created_at, updated_at, opportunity_id, pipeline_id, stage_id, entered_at)
SELECT o.created_at, o.created_at, o.id, o.pipeline_id, o.stage_id, o.created_at
FROM opportunity o
WHERE o.stage_id IS NOT NULL AND o.pipeline_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM opportunity_stage_entry e WHERE e.opportunity_id = o.id);

-- A deal's stays are deleted and restored with it (a purge removes them).
CREATE FUNCTION opportunity_stage_entry_follows() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE opportunity_stage_entry SET deleted_at = NEW.deleted_at
    WHERE opportunity_id = NEW.id AND deleted_at IS DISTINCT FROM NEW.deleted_at;
    RETURN NULL;
END $$;
CREATE TRIGGER opportunity_stage_entry_follows AFTER UPDATE OF deleted_at ON opportunity
    FOR EACH ROW WHEN (OLD.deleted_at IS DISTINCT FROM NEW.deleted_at) EXECUTE FUNCTION opportunity_stage_entry_follows();
UPDATE opportunity_stage_entry e SET deleted_at = o.deleted_at
FROM opportunity o WHERE o.id = e.opportunity_id AND o.deleted_at IS NOT NULL;

-- Stale deals: an open deal with no stage change and no activity for the
-- days its pipeline allows goes stale. `stale_at` is when it does (null
-- for closed deals), kept by triggers, so `isStale` is an indexed test.
ALTER TABLE pipeline ADD COLUMN stale_after_days integer NOT NULL DEFAULT 30
    CHECK (stale_after_days BETWEEN 1 AND 3650);
ALTER TABLE opportunity ADD COLUMN stale_at timestamptz;

-- When a deal last in `stage_since` goes stale: the later of then and its
-- last activity (logged or completed), plus its pipeline's days.
CREATE FUNCTION opportunity_stale_at(deal uuid, pipeline uuid, closed boolean, stage_since timestamptz)
RETURNS timestamptz LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT CASE WHEN NOT closed THEN
        greatest(stage_since, (SELECT max(greatest(a.created_at, a.completed_at)) FROM activity a
                               WHERE a.opportunity_id = deal AND a.deleted_at IS NULL))
        + make_interval(days => p.stale_after_days)
    END
    FROM pipeline p WHERE p.id = pipeline
$$;

-- When the deal entered the stage it is in.
CREATE FUNCTION opportunity_stage_since(deal uuid, created timestamptz)
RETURNS timestamptz LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT coalesce((SELECT max(e.entered_at) FROM opportunity_stage_entry e
                     WHERE e.opportunity_id = deal AND e.left_at IS NULL), created)
$$;

CREATE FUNCTION opportunity_stale_at_follows() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    NEW.stale_at := opportunity_stale_at(NEW.id, NEW.pipeline_id, NEW.is_closed,
        CASE WHEN TG_OP = 'INSERT' THEN NEW.created_at
             WHEN NEW.stage_id IS DISTINCT FROM OLD.stage_id THEN now()
             ELSE opportunity_stage_since(NEW.id, NEW.created_at) END);
    RETURN NEW;
END $$;
-- After `opportunity_stage_rule` (triggers fire by name), which sets is_closed.
CREATE TRIGGER opportunity_stale_at BEFORE INSERT OR UPDATE OF pipeline_id, stage_id, is_closed ON opportunity
    FOR EACH ROW EXECUTE FUNCTION opportunity_stale_at_follows();

-- An activity logged, completed, moved or deleted on a deal: one update
-- per statement for the deals it touched.
CREATE FUNCTION activity_touches_deals() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    deals uuid[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        deals := ARRAY(SELECT DISTINCT opportunity_id FROM added WHERE opportunity_id IS NOT NULL);
    ELSIF TG_OP = 'DELETE' THEN
        deals := ARRAY(SELECT DISTINCT opportunity_id FROM removed WHERE opportunity_id IS NOT NULL);
    ELSE
        deals := ARRAY(SELECT opportunity_id FROM added WHERE opportunity_id IS NOT NULL
                       UNION SELECT opportunity_id FROM removed WHERE opportunity_id IS NOT NULL);
    END IF;
    IF cardinality(deals) > 0 THEN
        UPDATE opportunity o SET stale_at = fresh.stale_at
        FROM (SELECT d.id, opportunity_stale_at(d.id, d.pipeline_id, d.is_closed,
                     opportunity_stage_since(d.id, d.created_at)) AS stale_at
              FROM opportunity d WHERE d.id = ANY (deals)) fresh
        WHERE o.id = fresh.id AND o.stale_at IS DISTINCT FROM fresh.stale_at;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER activity_touches_deals_insert AFTER INSERT ON activity
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION activity_touches_deals();
CREATE TRIGGER activity_touches_deals_update AFTER UPDATE ON activity
    REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION activity_touches_deals();
CREATE TRIGGER activity_touches_deals_delete AFTER DELETE ON activity
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION activity_touches_deals();

-- A pipeline allowing more or fewer days moves its open deals' dates.
CREATE FUNCTION pipeline_stale_after_follows() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE opportunity SET stale_at = stale_at + make_interval(days => NEW.stale_after_days - OLD.stale_after_days)
    WHERE pipeline_id = NEW.id AND stale_at IS NOT NULL;
    RETURN NULL;
END $$;
CREATE TRIGGER pipeline_stale_after_follows AFTER UPDATE OF stale_after_days ON pipeline
    FOR EACH ROW WHEN (NEW.stale_after_days <> OLD.stale_after_days) EXECUTE FUNCTION pipeline_stale_after_follows();

UPDATE opportunity o
SET stale_at = opportunity_stale_at(o.id, o.pipeline_id, o.is_closed, opportunity_stage_since(o.id, o.created_at));
CREATE INDEX opportunity_stale_at_idx ON opportunity (stale_at, id);
