-- Webhooks and live updates. Every write of a record appends an event in
-- the write's transaction; webhook subscriptions (configuration, promoted
-- like rules) get one delivery per matching event, sent after commit by
-- the delivery worker of any server, signed per Standard Webhooks.

-- A subscription: which events of which object go to which URL
-- (metadata: promoted, reverted, in changeset files).
CREATE TABLE webhook_subscription (
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
    url             text NOT NULL CHECK (length(url) BETWEEN 8 AND 2048),
    object          text NOT NULL CHECK (length(object) BETWEEN 1 AND 255),
    -- ["CREATED", "UPDATED", "DELETED", "RESTORED"]: empty for a
    -- subscription only workflow rules call.
    events          jsonb NOT NULL DEFAULT '[]',
    -- The fields a payload carries (null: all).
    fields          jsonb,
    is_active       boolean NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX webhook_subscription_name_key ON webhook_subscription (name) WHERE deleted_at IS NULL;
CREATE INDEX webhook_subscription_created_at_idx ON webhook_subscription (created_at, id);
CREATE INDEX webhook_subscription_owner_id_idx ON webhook_subscription (owner_id);
CREATE INDEX webhook_subscription_created_by_idx ON webhook_subscription (created_by);
CREATE INDEX webhook_subscription_deleted_idx ON webhook_subscription (id) WHERE deleted_at IS NOT NULL;
CREATE INDEX webhook_subscription_object_idx ON webhook_subscription (object) WHERE deleted_at IS NULL;

-- What each workspace keeps of its own about a subscription, never
-- promoted nor copied: its signing secret (every workspace, so every
-- sandbox, makes its own) and whether it is disabled here (410 Gone,
-- copied into a sandbox, by hand).
CREATE TABLE webhook_state (
    subscription_id uuid PRIMARY KEY REFERENCES webhook_subscription (id) ON DELETE CASCADE,
    -- "whsec_" and 32 random bytes in base64.
    secret          text NOT NULL DEFAULT 'whsec_' || encode(sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text || clock_timestamp()::text, 'UTF8')), 'base64'),
    disabled_at     timestamptz,
    disabled_reason text
);

-- What happened to a record, in the write's transaction: the feed of
-- webhooks and of GraphQL subscriptions.
CREATE TABLE record_event (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq         bigserial NOT NULL UNIQUE,
    at          timestamptz NOT NULL DEFAULT now(),
    -- The writing transaction (pg_current_xact_id), announced on commit.
    tx          bigint NOT NULL,
    object      text NOT NULL,
    record_id   uuid NOT NULL,
    event       text NOT NULL CHECK (event IN ('CREATED', 'UPDATED', 'DELETED', 'RESTORED', 'WORKFLOW')),
    -- The record as written, and the values its changed fields had.
    record      jsonb NOT NULL,
    previous    jsonb,
    changed     text[] NOT NULL DEFAULT '{}',
    actor_id    uuid,
    -- A WORKFLOW event: the rule that called a webhook.
    rule_name   text
);
CREATE INDEX record_event_tx_idx ON record_event (tx);
CREATE INDEX record_event_at_idx ON record_event (at);

-- One event for one subscription: sent, retried, dead-lettered, or (in a
-- sandbox) captured.
CREATE TABLE webhook_delivery (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq             bigserial NOT NULL UNIQUE,
    event_id        uuid NOT NULL REFERENCES record_event (id) ON DELETE CASCADE,
    subscription_id uuid NOT NULL REFERENCES webhook_subscription (id),
    record_id       uuid NOT NULL,
    status          text NOT NULL CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED', 'CAPTURED', 'CANCELLED')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    response_status integer,
    last_error      text,
    delivered_at    timestamptz
);
CREATE INDEX webhook_delivery_pending_idx ON webhook_delivery (next_attempt_at, seq) WHERE status = 'PENDING';
CREATE INDEX webhook_delivery_order_idx ON webhook_delivery (subscription_id, record_id, seq) WHERE status = 'PENDING';
CREATE INDEX webhook_delivery_subscription_idx ON webhook_delivery (subscription_id, created_at DESC);
CREATE INDEX webhook_delivery_event_idx ON webhook_delivery (event_id);
CREATE INDEX webhook_delivery_created_idx ON webhook_delivery (created_at DESC, id);

-- A workspace whose custom objects took the names webhooks bring keeps
-- them prefixed "Custom", so its API still builds.
CREATE TEMPORARY TABLE taken_webhook_names AS
SELECT name FROM custom_object
WHERE lower(name) IN ('webhooksubscription', 'webhookdelivery', 'webhookdeliverystatus', 'webhookheader',
                      'recordchange', 'recordevent', 'webhookstate', 'webhooksubscriptionstate',
                      'subscriptionroot')
   OR lower(plural) IN ('webhooksubscriptions', 'webhookdeliveries', 'capturedwebhooks', 'webhooksubscription');
UPDATE custom_field SET object = 'Custom' || object WHERE object IN (SELECT name FROM taken_webhook_names);
UPDATE custom_field SET lookup_object = 'Custom' || lookup_object
WHERE lookup_object IN (SELECT name FROM taken_webhook_names);
UPDATE custom_object SET name = 'Custom' || name, plural = 'custom' || upper(left(plural, 1)) || substr(plural, 2)
WHERE name IN (SELECT name FROM taken_webhook_names);
DROP TABLE taken_webhook_names;
