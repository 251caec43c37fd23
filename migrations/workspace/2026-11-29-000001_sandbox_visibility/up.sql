-- Whether an admin set recordVisibility in this workspace itself. A
-- sandbox where nobody did follows production's setting as it changes, so
-- a sandbox made before production turned to OWNED shows a rep no more
-- than production does.
ALTER TABLE workspace_settings
    ADD COLUMN record_visibility_set_here boolean NOT NULL DEFAULT false;

-- An existing sandbox whose setting differs from its base was set there;
-- every other one takes production's setting now.
UPDATE workspace_settings s SET record_visibility_set_here = true
FROM crm_system.workspace w
WHERE w.pg_schema = current_schema() AND w.kind = 'sandbox'
  AND s.record_visibility IS DISTINCT FROM w.base->>'recordVisibility';
UPDATE workspace_settings s SET record_visibility = p.record_visibility
FROM crm.workspace_settings p, crm_system.workspace w
WHERE w.pg_schema = current_schema() AND w.kind = 'sandbox' AND NOT s.record_visibility_set_here;
