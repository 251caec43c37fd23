-- Leads to customers. A lead's score and grade are the server's to keep
-- (from the workspace's scoring rules and grades); conversion records
-- what the lead became and the idempotency key it was made with, so the
-- same key converts once. Field mappings, scoring rules and grades are
-- configuration like reports: made in a sandbox, promoted, reverted.
UPDATE lead SET score = 0 WHERE score IS NULL;
ALTER TABLE lead
    ALTER COLUMN score SET DEFAULT 0,
    ALTER COLUMN score SET NOT NULL,
    ADD COLUMN grade text,
    ADD COLUMN conversion_key text UNIQUE CHECK (length(conversion_key) BETWEEN 1 AND 255);
CREATE INDEX lead_score_idx ON lead (score, id);
CREATE INDEX lead_grade_idx ON lead (grade, id);

-- Which lead field fills which field of the account, contact or
-- opportunity a conversion makes: one lead field per target field.
CREATE TABLE lead_field_mapping (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    version       integer NOT NULL DEFAULT 1,
    deleted_at    timestamptz,
    external_id   text UNIQUE CHECK (length(external_id) BETWEEN 1 AND 255),
    owner_id      uuid REFERENCES crm_system.users (id),
    created_by    uuid REFERENCES crm_system.users (id),
    lead_field    text NOT NULL CHECK (length(lead_field) BETWEEN 1 AND 255),
    target_object text NOT NULL CHECK (target_object IN ('ACCOUNT', 'CONTACT', 'OPPORTUNITY')),
    target_field  text NOT NULL CHECK (length(target_field) BETWEEN 1 AND 255)
);
CREATE UNIQUE INDEX lead_field_mapping_target_field_key
    ON lead_field_mapping (target_object, target_field) WHERE deleted_at IS NULL;
CREATE INDEX lead_field_mapping_created_at_idx ON lead_field_mapping (created_at, id);
CREATE INDEX lead_field_mapping_owner_id_idx ON lead_field_mapping (owner_id);
CREATE INDEX lead_field_mapping_created_by_idx ON lead_field_mapping (created_by);
CREATE INDEX lead_field_mapping_deleted_idx ON lead_field_mapping (id) WHERE deleted_at IS NOT NULL;
INSERT INTO lead_field_mapping (lead_field, target_object, target_field, created_at) VALUES
    ('company',   'ACCOUNT',     'name',       now()),
    ('firstName', 'CONTACT',     'firstName',  now() + interval '1 microsecond'),
    ('lastName',  'CONTACT',     'lastName',   now() + interval '2 microseconds'),
    ('email',     'CONTACT',     'email',      now() + interval '3 microseconds'),
    ('phone',     'CONTACT',     'phone',      now() + interval '4 microseconds'),
    ('title',     'CONTACT',     'title',      now() + interval '5 microseconds'),
    ('source',    'CONTACT',     'leadSource', now() + interval '6 microseconds'),
    ('source',    'OPPORTUNITY', 'leadSource', now() + interval '7 microseconds'),
    ('budget',    'OPPORTUNITY', 'amount',     now() + interval '8 microseconds');

-- Points a lead earns (or loses) for what it is (a condition on its
-- fields) and what it does (activities of a type), fading with time.
CREATE TABLE scoring_rule (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    version          integer NOT NULL DEFAULT 1,
    deleted_at       timestamptz,
    external_id      text UNIQUE CHECK (length(external_id) BETWEEN 1 AND 255),
    owner_id         uuid REFERENCES crm_system.users (id),
    created_by       uuid REFERENCES crm_system.users (id),
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    description      text,
    condition        jsonb,
    activity_type    text CHECK (length(activity_type) BETWEEN 1 AND 255),
    points           integer NOT NULL CHECK (points BETWEEN -1000 AND 1000),
    max_points       integer CHECK (max_points BETWEEN 0 AND 100000),
    decay_points     integer NOT NULL DEFAULT 0 CHECK (decay_points BETWEEN 0 AND 1000),
    decay_every_days integer CHECK (decay_every_days BETWEEN 1 AND 3650),
    is_active        boolean NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX scoring_rule_name_key ON scoring_rule (name) WHERE deleted_at IS NULL;
CREATE INDEX scoring_rule_created_at_idx ON scoring_rule (created_at, id);
CREATE INDEX scoring_rule_owner_id_idx ON scoring_rule (owner_id);
CREATE INDEX scoring_rule_created_by_idx ON scoring_rule (created_by);
CREATE INDEX scoring_rule_deleted_idx ON scoring_rule (id) WHERE deleted_at IS NOT NULL;

-- Names for score thresholds: a lead's grade is the one with the highest
-- minimum its score reaches.
CREATE TABLE lead_grade (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    version     integer NOT NULL DEFAULT 1,
    deleted_at  timestamptz,
    external_id text UNIQUE CHECK (length(external_id) BETWEEN 1 AND 255),
    owner_id    uuid REFERENCES crm_system.users (id),
    created_by  uuid REFERENCES crm_system.users (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    description text,
    min_score   integer NOT NULL CHECK (min_score BETWEEN -100000 AND 100000)
);
CREATE UNIQUE INDEX lead_grade_name_key ON lead_grade (name) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX lead_grade_min_score_key ON lead_grade (min_score) WHERE deleted_at IS NULL;
CREATE INDEX lead_grade_created_at_idx ON lead_grade (created_at, id);
CREATE INDEX lead_grade_owner_id_idx ON lead_grade (owner_id);
CREATE INDEX lead_grade_created_by_idx ON lead_grade (created_by);
CREATE INDEX lead_grade_deleted_idx ON lead_grade (id) WHERE deleted_at IS NOT NULL;
INSERT INTO lead_grade (name, min_score, description, created_at) VALUES
    ('MQL', 50, 'Marketing-qualified: engaged enough for sales to look at.', now()),
    ('SQL', 100, 'Sales-qualified: ready for a sales conversation.', now() + interval '1 microsecond');

-- A workspace whose customizations already took one of this release's
-- names (the objects LeadFieldMapping, ScoringRule and LeadGrade; the
-- lead fields grade and conversionKey) keeps them under a name prefixed
-- "custom" (data, columns and tables stay), so its API still builds.
UPDATE custom_field SET object = 'Custom' || object
WHERE object IN (SELECT name FROM custom_object
                 WHERE lower(name) IN ('leadfieldmapping', 'scoringrule', 'leadgrade')
                    OR lower(plural) IN ('leadfieldmappings', 'scoringrules', 'leadgrades'));
UPDATE custom_field SET lookup_object = 'Custom' || lookup_object
WHERE lookup_object IN (SELECT name FROM custom_object
                        WHERE lower(name) IN ('leadfieldmapping', 'scoringrule', 'leadgrade')
                           OR lower(plural) IN ('leadfieldmappings', 'scoringrules', 'leadgrades'));
UPDATE custom_object SET name = 'Custom' || name, plural = 'custom' || upper(left(plural, 1)) || substr(plural, 2)
WHERE lower(name) IN ('leadfieldmapping', 'scoringrule', 'leadgrade')
   OR lower(plural) IN ('leadfieldmappings', 'scoringrules', 'leadgrades');
UPDATE custom_field SET name = 'custom' || upper(left(name, 1)) || substr(name, 2)
WHERE object = 'Lead' AND lower(name) IN ('grade', 'conversionkey');
UPDATE custom_field SET relation_name = 'custom' || upper(left(relation_name, 1)) || substr(relation_name, 2)
WHERE lookup_object = 'Lead' AND lower(relation_name) IN ('grade', 'conversionkey');
