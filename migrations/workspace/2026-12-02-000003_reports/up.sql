-- Saved reports: an aggregate of one object's records (filter, group
-- keys, metrics, conditions on groups, order, how many groups) and how to
-- draw it. Configuration like pipelines: admins make them (in a sandbox),
-- a promotion carries them to production and a revert takes them back;
-- everyone reads and runs them.
CREATE TABLE report (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    version      integer NOT NULL DEFAULT 1,
    deleted_at   timestamptz,
    external_id  text UNIQUE CHECK (length(external_id) BETWEEN 1 AND 255),
    owner_id     uuid REFERENCES crm_system.users (id),
    created_by   uuid REFERENCES crm_system.users (id),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    description  text,
    object       text NOT NULL CHECK (length(object) BETWEEN 1 AND 255),
    filter       jsonb,
    group_by     jsonb NOT NULL DEFAULT '[]',
    metrics      jsonb NOT NULL DEFAULT '[]',
    group_having jsonb,
    order_by     jsonb NOT NULL DEFAULT '[]',
    group_limit  integer CHECK (group_limit BETWEEN 0 AND 1000),
    time_zone    text NOT NULL DEFAULT 'UTC' CHECK (length(time_zone) BETWEEN 1 AND 64),
    chart        text NOT NULL DEFAULT 'TABLE' CHECK (chart IN ('TABLE', 'BAR', 'LINE', 'PIE', 'FUNNEL', 'NUMBER'))
);
CREATE UNIQUE INDEX report_name_key ON report (name) WHERE deleted_at IS NULL;
CREATE INDEX report_created_at_idx ON report (created_at, id);
CREATE INDEX report_owner_id_idx ON report (owner_id);
CREATE INDEX report_created_by_idx ON report (created_by);
CREATE INDEX report_deleted_idx ON report (id) WHERE deleted_at IS NOT NULL;
