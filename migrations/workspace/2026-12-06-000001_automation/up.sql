-- Automation: validation rules, workflow rules and email templates are
-- configuration (made in a sandbox, promoted like duplicate rules); the
-- runs of workflow rules, their timers and state, and the outbox of the
-- emails they send are the workspace's own and never copied.

CREATE TABLE validation_rule (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         integer NOT NULL DEFAULT 1,
    deleted_at      timestamptz,
    external_id     text UNIQUE CHECK (length(external_id) BETWEEN 1 AND 255),
    owner_id        uuid REFERENCES crm_system.users (id),
    created_by      uuid REFERENCES crm_system.users (id),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    description     text,
    object          text NOT NULL CHECK (length(object) BETWEEN 1 AND 255),
    error_condition jsonb NOT NULL CHECK (jsonb_typeof(error_condition) = 'object'),
    message         text NOT NULL CHECK (length(message) BETWEEN 1 AND 1000),
    field           text CHECK (length(field) BETWEEN 1 AND 255),
    is_active       boolean NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX validation_rule_name_key ON validation_rule (name) WHERE deleted_at IS NULL;
CREATE INDEX validation_rule_object_idx ON validation_rule (object) WHERE deleted_at IS NULL AND is_active;
CREATE INDEX validation_rule_created_at_idx ON validation_rule (created_at, id);
CREATE INDEX validation_rule_owner_id_idx ON validation_rule (owner_id);
CREATE INDEX validation_rule_created_by_idx ON validation_rule (created_by);
CREATE INDEX validation_rule_deleted_idx ON validation_rule (id) WHERE deleted_at IS NOT NULL;

CREATE TABLE workflow_rule (
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
    object           text NOT NULL CHECK (length(object) BETWEEN 1 AND 255),
    trigger          text NOT NULL CHECK (trigger IN ('CREATED', 'UPDATED', 'CREATED_OR_UPDATED', 'DELETED',
                     'STAGE_CHANGED', 'SCORE_CROSSED', 'SCHEDULE', 'DATE_OFFSET')),
    trigger_fields   jsonb CHECK (trigger_fields IS NULL OR jsonb_typeof(trigger_fields) = 'array'),
    condition        jsonb CHECK (condition IS NULL OR jsonb_typeof(condition) = 'object'),
    when_becomes_true boolean NOT NULL DEFAULT false,
    score_threshold  integer,
    schedule         text CHECK (length(schedule) BETWEEN 1 AND 255),
    date_field       text CHECK (length(date_field) BETWEEN 1 AND 255),
    offset_minutes   integer,
    actions          jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(actions) = 'array'),
    is_active        boolean NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX workflow_rule_name_key ON workflow_rule (name) WHERE deleted_at IS NULL;
CREATE INDEX workflow_rule_object_idx ON workflow_rule (object) WHERE deleted_at IS NULL AND is_active;
CREATE INDEX workflow_rule_created_at_idx ON workflow_rule (created_at, id);
CREATE INDEX workflow_rule_owner_id_idx ON workflow_rule (owner_id);
CREATE INDEX workflow_rule_created_by_idx ON workflow_rule (created_by);
CREATE INDEX workflow_rule_deleted_idx ON workflow_rule (id) WHERE deleted_at IS NOT NULL;

CREATE TABLE email_template (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    version     integer NOT NULL DEFAULT 1,
    deleted_at  timestamptz,
    external_id text UNIQUE CHECK (length(external_id) BETWEEN 1 AND 255),
    owner_id    uuid REFERENCES crm_system.users (id),
    created_by  uuid REFERENCES crm_system.users (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    description text,
    object      text NOT NULL CHECK (length(object) BETWEEN 1 AND 255),
    subject     text NOT NULL CHECK (length(subject) BETWEEN 1 AND 998),
    text_body   text,
    html_body   text,
    from_name   text CHECK (length(from_name) BETWEEN 1 AND 255),
    reply_to    text CHECK (length(reply_to) BETWEEN 3 AND 255),
    CHECK (text_body IS NOT NULL OR html_body IS NOT NULL)
);
CREATE UNIQUE INDEX email_template_name_key ON email_template (name) WHERE deleted_at IS NULL;
CREATE INDEX email_template_created_at_idx ON email_template (created_at, id);
CREATE INDEX email_template_owner_id_idx ON email_template (owner_id);
CREATE INDEX email_template_created_by_idx ON email_template (created_by);
CREATE INDEX email_template_deleted_idx ON email_template (id) WHERE deleted_at IS NOT NULL;

-- What each firing of a workflow rule did to which record.
CREATE TABLE workflow_run (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    rule_id     uuid NOT NULL,
    rule_name   text NOT NULL,
    object      text NOT NULL,
    record_id   uuid NOT NULL,
    trigger     text NOT NULL,
    status      text NOT NULL CHECK (status IN ('SUCCEEDED', 'FAILED', 'WAITING', 'CANCELLED')),
    -- [{"type", "outcome", ...}]: what each action did, in order.
    actions     jsonb NOT NULL DEFAULT '[]',
    error       text,
    -- How many rules' actions led to this firing (0: a client's write).
    depth       integer NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    -- A WAITING run: the action it goes on with, and when.
    next_action integer,
    resume_at   timestamptz
);
CREATE INDEX workflow_run_record_idx ON workflow_run (record_id, started_at DESC, id);
CREATE INDEX workflow_run_rule_idx ON workflow_run (rule_id, started_at DESC, id);
CREATE INDEX workflow_run_started_idx ON workflow_run (started_at DESC, id);

-- Work due at a time: a DATE_OFFSET rule's firing for a record (run_id
-- null, one per rule and record), or a waiting run to resume.
CREATE TABLE workflow_timer (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id   uuid NOT NULL,
    record_id uuid NOT NULL,
    due_at    timestamptz NOT NULL,
    run_id    uuid REFERENCES workflow_run (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX workflow_timer_rule_record_key ON workflow_timer (rule_id, record_id) WHERE run_id IS NULL;
CREATE INDEX workflow_timer_due_idx ON workflow_timer (due_at);

-- What a rule keeps between firings: when a SCHEDULE rule fires next, and
-- where its round-robin assignment stands.
CREATE TABLE workflow_state (
    rule_id     uuid PRIMARY KEY,
    schedule    text,
    next_run_at timestamptz,
    position    bigint NOT NULL DEFAULT 0
);

-- Emails automation sends: rendered in the write's transaction, delivered
-- after it commits by a worker (production), or kept and never sent
-- (CAPTURED, a sandbox's, unless its recipient domains are allowed).
CREATE TABLE email_outbox (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    rule_id         uuid,
    run_id          uuid,
    template        text,
    object          text,
    record_id       uuid,
    sender          text NOT NULL,
    recipients      text[] NOT NULL,
    subject         text NOT NULL,
    text_body       text,
    html_body       text,
    -- The whole message (headers and body) as sent or as it would be.
    message         text NOT NULL,
    status          text NOT NULL CHECK (status IN ('PENDING', 'SENT', 'FAILED', 'CAPTURED')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    sent_at         timestamptz
);
CREATE INDEX email_outbox_pending_idx ON email_outbox (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX email_outbox_created_idx ON email_outbox (created_at DESC, id);
CREATE INDEX email_outbox_record_idx ON email_outbox (record_id);

-- A workspace whose custom objects took the names automation brings keeps
-- them prefixed "Custom", so its API still builds.
CREATE TEMPORARY TABLE taken_automation_names AS
SELECT name FROM custom_object
WHERE lower(name) IN ('validationrule', 'workflowrule', 'emailtemplate', 'workflowrun', 'workflowrunstatus',
                      'workflowtrigger', 'email', 'emailstatus', 'emailheader', 'emailpreview')
   OR lower(plural) IN ('validationrules', 'workflowrules', 'emailtemplates', 'workflowruns', 'emails',
                        'capturedemails', 'emailpreview', 'validationrule', 'workflowrule', 'emailtemplate');
UPDATE custom_field SET object = 'Custom' || object WHERE object IN (SELECT name FROM taken_automation_names);
UPDATE custom_field SET lookup_object = 'Custom' || lookup_object
WHERE lookup_object IN (SELECT name FROM taken_automation_names);
UPDATE custom_object SET name = 'Custom' || name, plural = 'custom' || upper(left(plural, 1)) || substr(plural, 2)
WHERE name IN (SELECT name FROM taken_automation_names);
DROP TABLE taken_automation_names;
