-- The full sales model: ownership and external ids on every record,
-- account hierarchy and addresses, leads, pipelines and stages (with the
-- default "Sales" pipeline), opportunity stage rules, contact roles and
-- activities. Runs once per workspace schema with search_path set to it.
-- Constraints that carry a rule end in `_rule`: their message is written for
-- people and reaches the client as is.

-- Account ----------------------------------------------------------------
ALTER TABLE account
    ADD COLUMN external_id          text UNIQUE CHECK (length(external_id) BETWEEN 1 AND 255),
    ADD COLUMN owner_id             uuid REFERENCES crm_system.users (id),
    ADD COLUMN created_by           uuid REFERENCES crm_system.users (id),
    ADD COLUMN domain               text,
    ADD COLUMN type                 text CHECK (type IN ('PROSPECT', 'CUSTOMER', 'PARTNER', 'RESELLER',
                                        'VENDOR', 'COMPETITOR', 'OTHER')),
    ADD COLUMN lifecycle_stage      text CHECK (lifecycle_stage IN ('LEAD', 'MARKETING_QUALIFIED',
                                        'SALES_QUALIFIED', 'OPPORTUNITY', 'CUSTOMER', 'CHURNED')),
    ADD COLUMN parent_account_id    uuid REFERENCES account (id) CHECK (parent_account_id <> id),
    ADD COLUMN billing_street       text,
    ADD COLUMN billing_city         text,
    ADD COLUMN billing_state        text,
    ADD COLUMN billing_postal_code  text,
    ADD COLUMN billing_country      text,
    ADD COLUMN shipping_street      text,
    ADD COLUMN shipping_city        text,
    ADD COLUMN shipping_state       text,
    ADD COLUMN shipping_postal_code text,
    ADD COLUMN shipping_country     text;
CREATE INDEX account_owner_id_idx ON account (owner_id);
CREATE INDEX account_parent_account_id_idx ON account (parent_account_id);
CREATE INDEX account_domain_idx ON account (domain);

-- A parent must not be the account itself or one of its descendants.
CREATE FUNCTION account_hierarchy_rule() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.parent_account_id IS NOT NULL AND EXISTS (
        WITH RECURSIVE up (id, depth) AS (
            SELECT NEW.parent_account_id, 1
            UNION ALL
            SELECT a.parent_account_id, up.depth + 1 FROM account a JOIN up ON a.id = up.id
            WHERE a.parent_account_id IS NOT NULL AND up.depth < 100
        )
        SELECT 1 FROM up WHERE id = NEW.id
    ) THEN
        RAISE EXCEPTION 'an account cannot be its own ancestor: the parent is one of its subsidiaries'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'account_parent_account_id_rule';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER account_hierarchy_rule BEFORE UPDATE OF parent_account_id ON account
    FOR EACH ROW EXECUTE FUNCTION account_hierarchy_rule();

-- Contact ----------------------------------------------------------------
ALTER TABLE contact
    ADD COLUMN external_id         text UNIQUE CHECK (length(external_id) BETWEEN 1 AND 255),
    ADD COLUMN owner_id            uuid REFERENCES crm_system.users (id),
    ADD COLUMN created_by          uuid REFERENCES crm_system.users (id),
    ADD COLUMN mobile              text,
    ADD COLUMN department          text,
    ADD COLUMN mailing_street      text,
    ADD COLUMN mailing_city        text,
    ADD COLUMN mailing_state       text,
    ADD COLUMN mailing_postal_code text,
    ADD COLUMN mailing_country     text,
    ADD COLUMN lead_source         text CHECK (lead_source IN ('WEB', 'PHONE_INQUIRY', 'PARTNER_REFERRAL',
                                       'PURCHASED_LIST', 'TRADE_SHOW', 'WORD_OF_MOUTH', 'EMAIL_CAMPAIGN',
                                       'SOCIAL_MEDIA', 'ADVERTISEMENT', 'EVENT', 'OTHER')),
    ADD COLUMN do_not_contact      boolean NOT NULL DEFAULT false,
    ADD COLUMN birthdate           date;
CREATE INDEX contact_owner_id_idx ON contact (owner_id);
CREATE INDEX contact_last_name_idx ON contact (last_name, id);

-- Lead -------------------------------------------------------------------
CREATE TABLE lead (
    id                         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    version                    integer NOT NULL DEFAULT 1,
    deleted_at                 timestamptz,
    external_id                text UNIQUE CHECK (length(external_id) BETWEEN 1 AND 255),
    owner_id                   uuid REFERENCES crm_system.users (id),
    created_by                 uuid REFERENCES crm_system.users (id),
    first_name                 text,
    last_name                  text NOT NULL CHECK (length(last_name) BETWEEN 1 AND 255),
    company                    text,
    title                      text,
    email                      text,
    phone                      text,
    status                     text NOT NULL DEFAULT 'NEW' CHECK (status IN ('NEW', 'WORKING', 'NURTURING',
                                   'QUALIFIED', 'UNQUALIFIED', 'CONVERTED')),
    source                     text CHECK (source IN ('WEB', 'PHONE_INQUIRY', 'PARTNER_REFERRAL',
                                   'PURCHASED_LIST', 'TRADE_SHOW', 'WORD_OF_MOUTH', 'EMAIL_CAMPAIGN',
                                   'SOCIAL_MEDIA', 'ADVERTISEMENT', 'EVENT', 'OTHER')),
    rating                     text CHECK (rating IN ('HOT', 'WARM', 'COLD')),
    budget                     numeric(18, 2) CHECK (budget >= 0),
    authority                  text,
    need                       text,
    timeline                   text,
    score                      integer,
    converted_account_id       uuid REFERENCES account (id),
    converted_contact_id       uuid REFERENCES contact (id),
    converted_opportunity_id   uuid,
    converted_at               timestamptz
);
CREATE INDEX lead_created_at_idx ON lead (created_at, id);
CREATE INDEX lead_owner_id_idx ON lead (owner_id);
CREATE INDEX lead_email_idx ON lead (email);
CREATE INDEX lead_status_idx ON lead (status, created_at, id);
CREATE INDEX lead_converted_account_id_idx ON lead (converted_account_id);
CREATE INDEX lead_converted_contact_id_idx ON lead (converted_contact_id);
CREATE INDEX lead_converted_opportunity_id_idx ON lead (converted_opportunity_id);

-- Pipeline and Stage -----------------------------------------------------
CREATE TABLE pipeline (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    version      integer NOT NULL DEFAULT 1,
    deleted_at   timestamptz,
    external_id  text UNIQUE CHECK (length(external_id) BETWEEN 1 AND 255),
    owner_id     uuid REFERENCES crm_system.users (id),
    created_by   uuid REFERENCES crm_system.users (id),
    name         text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 255),
    description  text,
    is_default   boolean NOT NULL DEFAULT false
);
CREATE INDEX pipeline_created_at_idx ON pipeline (created_at, id);
-- One default pipeline: new opportunities without a pipeline go there.
CREATE UNIQUE INDEX pipeline_is_default_key ON pipeline (is_default) WHERE is_default AND deleted_at IS NULL;

CREATE TABLE stage (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    version            integer NOT NULL DEFAULT 1,
    deleted_at         timestamptz,
    external_id        text UNIQUE CHECK (length(external_id) BETWEEN 1 AND 255),
    owner_id           uuid REFERENCES crm_system.users (id),
    created_by         uuid REFERENCES crm_system.users (id),
    pipeline_id        uuid NOT NULL REFERENCES pipeline (id),
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    position           integer NOT NULL CHECK (position >= 0),
    probability        integer NOT NULL CHECK (probability BETWEEN 0 AND 100),
    forecast_category  text NOT NULL CHECK (forecast_category IN ('PIPELINE', 'BEST_CASE', 'COMMIT',
                           'CLOSED', 'OMITTED')),
    is_closed          boolean NOT NULL DEFAULT false,
    is_won             boolean NOT NULL DEFAULT false CHECK (NOT is_won OR is_closed)
);
CREATE INDEX stage_created_at_idx ON stage (created_at, id);
CREATE INDEX stage_pipeline_id_idx ON stage (pipeline_id, position);
CREATE UNIQUE INDEX stage_name_key ON stage (pipeline_id, name) WHERE deleted_at IS NULL;

-- A stage stays in its pipeline: opportunities in it rely on that.
CREATE FUNCTION stage_pipeline_rule() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.pipeline_id <> OLD.pipeline_id THEN
        RAISE EXCEPTION 'a stage cannot move to another pipeline; create a stage there instead'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'stage_pipeline_id_rule';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER stage_pipeline_rule BEFORE UPDATE OF pipeline_id ON stage
    FOR EACH ROW EXECUTE FUNCTION stage_pipeline_rule();

INSERT INTO pipeline (name, description, is_default)
VALUES ('Sales', 'The default sales process, from first contact to closed deal.', true);
INSERT INTO stage (pipeline_id, name, position, probability, forecast_category, is_closed, is_won)
SELECT p.id, s.name, s.position, s.probability, s.forecast_category, s.is_closed, s.is_won
FROM pipeline p, (VALUES
    ('Prospecting',              1,  10, 'PIPELINE',  false, false),
    ('Qualification',            2,  20, 'PIPELINE',  false, false),
    ('Needs Analysis',           3,  30, 'PIPELINE',  false, false),
    ('Value Proposition',        4,  40, 'PIPELINE',  false, false),
    ('Identify Decision Makers', 5,  50, 'BEST_CASE', false, false),
    ('Proposal/Price Quote',     6,  60, 'BEST_CASE', false, false),
    ('Negotiation/Review',       7,  80, 'COMMIT',    false, false),
    ('Closed Won',               8, 100, 'CLOSED',    true,  true),
    ('Closed Lost',              9,   0, 'OMITTED',   true,  false)
) AS s (name, position, probability, forecast_category, is_closed, is_won)
WHERE p.name = 'Sales';

-- Opportunity ------------------------------------------------------------
ALTER TABLE opportunity
    ADD COLUMN external_id        text UNIQUE CHECK (length(external_id) BETWEEN 1 AND 255),
    ADD COLUMN owner_id           uuid REFERENCES crm_system.users (id),
    ADD COLUMN created_by         uuid REFERENCES crm_system.users (id),
    ADD COLUMN pipeline_id        uuid REFERENCES pipeline (id),
    ADD COLUMN stage_id           uuid REFERENCES stage (id),
    ADD COLUMN probability        integer CHECK (probability BETWEEN 0 AND 100),
    ADD COLUMN forecast_category  text CHECK (forecast_category IN ('PIPELINE', 'BEST_CASE', 'COMMIT',
                                      'CLOSED', 'OMITTED')),
    ADD COLUMN lead_source        text CHECK (lead_source IN ('WEB', 'PHONE_INQUIRY', 'PARTNER_REFERRAL',
                                      'PURCHASED_LIST', 'TRADE_SHOW', 'WORD_OF_MOUTH', 'EMAIL_CAMPAIGN',
                                      'SOCIAL_MEDIA', 'ADVERTISEMENT', 'EVENT', 'OTHER')),
    ADD COLUMN is_closed          boolean NOT NULL DEFAULT false,
    ADD COLUMN is_won             boolean NOT NULL DEFAULT false,
    ADD COLUMN expected_revenue   numeric(18, 2) GENERATED ALWAYS AS (round(amount * probability / 100.0, 2)) STORED;

-- Opportunities made before pipelines existed start in the default pipeline's first stage.
UPDATE opportunity o SET pipeline_id = s.pipeline_id, stage_id = s.id, probability = s.probability,
    forecast_category = s.forecast_category
FROM stage s JOIN pipeline p ON p.id = s.pipeline_id AND p.is_default
WHERE s.position = 1 AND o.stage_id IS NULL;
ALTER TABLE opportunity
    ALTER COLUMN pipeline_id SET NOT NULL,
    ALTER COLUMN stage_id SET NOT NULL,
    ALTER COLUMN probability SET NOT NULL,
    ALTER COLUMN forecast_category SET NOT NULL;
CREATE INDEX opportunity_owner_id_idx ON opportunity (owner_id);
CREATE INDEX opportunity_pipeline_id_idx ON opportunity (pipeline_id);
CREATE INDEX opportunity_stage_id_idx ON opportunity (stage_id, created_at, id);
CREATE INDEX opportunity_amount_idx ON opportunity (amount, id);
ALTER TABLE lead ADD CONSTRAINT lead_converted_opportunity_id_fkey
    FOREIGN KEY (converted_opportunity_id) REFERENCES opportunity (id);

-- The stage decides: with no pipeline the default one, with no stage the
-- pipeline's first; probability and forecast category default from the
-- stage (and follow it when the stage changes, unless set in the same
-- change); isClosed/isWon always come from the stage.
CREATE FUNCTION opportunity_stage_rule() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    s stage%ROWTYPE;
BEGIN
    IF NEW.pipeline_id IS NULL AND NEW.stage_id IS NULL THEN
        SELECT id INTO NEW.pipeline_id FROM pipeline WHERE is_default AND deleted_at IS NULL;
    END IF;
    IF NEW.stage_id IS NULL THEN
        SELECT id INTO NEW.stage_id FROM stage
        WHERE pipeline_id = NEW.pipeline_id AND deleted_at IS NULL ORDER BY position, id LIMIT 1;
        IF NEW.stage_id IS NULL THEN
            RAISE EXCEPTION 'the pipeline has no stages: pass a stageId'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'opportunity_stage_id_rule';
        END IF;
    END IF;
    SELECT * INTO s FROM stage WHERE id = NEW.stage_id;
    IF NEW.pipeline_id IS NULL THEN
        NEW.pipeline_id := s.pipeline_id;
    ELSIF s.pipeline_id <> NEW.pipeline_id THEN
        RAISE EXCEPTION 'the stage belongs to another pipeline than the opportunity''s'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'opportunity_stage_id_rule';
    END IF;
    IF TG_OP = 'INSERT' THEN
        NEW.probability := coalesce(NEW.probability, s.probability);
        NEW.forecast_category := coalesce(NEW.forecast_category, s.forecast_category);
    ELSIF NEW.stage_id IS DISTINCT FROM OLD.stage_id THEN
        IF NEW.probability IS NOT DISTINCT FROM OLD.probability THEN
            NEW.probability := s.probability;
        END IF;
        IF NEW.forecast_category IS NOT DISTINCT FROM OLD.forecast_category THEN
            NEW.forecast_category := s.forecast_category;
        END IF;
    END IF;
    NEW.is_closed := s.is_closed;
    NEW.is_won := s.is_won;
    RETURN NEW;
END $$;
CREATE TRIGGER opportunity_stage_rule BEFORE INSERT OR UPDATE OF pipeline_id, stage_id ON opportunity
    FOR EACH ROW EXECUTE FUNCTION opportunity_stage_rule();

-- Closing or reopening a stage carries over to the opportunities in it.
CREATE FUNCTION stage_status_follows() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE opportunity SET is_closed = NEW.is_closed, is_won = NEW.is_won
    WHERE stage_id = NEW.id AND (is_closed, is_won) IS DISTINCT FROM (NEW.is_closed, NEW.is_won);
    RETURN NULL;
END $$;
CREATE TRIGGER stage_status_follows AFTER UPDATE OF is_closed, is_won ON stage
    FOR EACH ROW EXECUTE FUNCTION stage_status_follows();

-- ContactRole ------------------------------------------------------------
CREATE TABLE contact_role (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         integer NOT NULL DEFAULT 1,
    deleted_at      timestamptz,
    external_id     text UNIQUE CHECK (length(external_id) BETWEEN 1 AND 255),
    owner_id        uuid REFERENCES crm_system.users (id),
    created_by      uuid REFERENCES crm_system.users (id),
    opportunity_id  uuid NOT NULL REFERENCES opportunity (id),
    contact_id      uuid NOT NULL REFERENCES contact (id),
    role            text NOT NULL CHECK (role IN ('DECISION_MAKER', 'ECONOMIC_BUYER', 'TECHNICAL_BUYER',
                        'INFLUENCER', 'CHAMPION', 'OTHER')),
    is_primary      boolean NOT NULL DEFAULT false
);
CREATE INDEX contact_role_created_at_idx ON contact_role (created_at, id);
CREATE INDEX contact_role_opportunity_id_idx ON contact_role (opportunity_id);
CREATE INDEX contact_role_contact_id_idx ON contact_role (contact_id);
CREATE UNIQUE INDEX contact_role_role_key ON contact_role (opportunity_id, contact_id, role) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX contact_role_is_primary_key ON contact_role (opportunity_id) WHERE is_primary AND deleted_at IS NULL;

-- Activity ---------------------------------------------------------------
CREATE TABLE activity (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         integer NOT NULL DEFAULT 1,
    deleted_at      timestamptz,
    external_id     text UNIQUE CHECK (length(external_id) BETWEEN 1 AND 255),
    owner_id        uuid REFERENCES crm_system.users (id),
    created_by      uuid REFERENCES crm_system.users (id),
    type            text NOT NULL CHECK (type IN ('CALL', 'EMAIL', 'MEETING', 'TASK', 'NOTE')),
    subject         text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    body            text,
    due_at          timestamptz,
    completed_at    timestamptz,
    status          text NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'IN_PROGRESS', 'COMPLETED', 'CANCELLED')),
    priority        text NOT NULL DEFAULT 'NORMAL' CHECK (priority IN ('LOW', 'NORMAL', 'HIGH')),
    account_id      uuid REFERENCES account (id),
    contact_id      uuid REFERENCES contact (id),
    lead_id         uuid REFERENCES lead (id),
    opportunity_id  uuid REFERENCES opportunity (id)
);
CREATE INDEX activity_created_at_idx ON activity (created_at, id);
CREATE INDEX activity_owner_id_idx ON activity (owner_id);
CREATE INDEX activity_account_id_idx ON activity (account_id);
CREATE INDEX activity_contact_id_idx ON activity (contact_id);
CREATE INDEX activity_lead_id_idx ON activity (lead_id);
CREATE INDEX activity_opportunity_id_idx ON activity (opportunity_id);
CREATE INDEX activity_due_at_idx ON activity (due_at, id);
