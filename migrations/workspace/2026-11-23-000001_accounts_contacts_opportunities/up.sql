-- Standard objects of a workspace. Runs once per workspace schema
-- (production `crm`, later each sandbox) with search_path set to it, so
-- nothing here names a schema. Columns mirror src/metadata/standard.rs;
-- the test `metadata::tables_match_metadata` keeps the two in step.

CREATE TABLE workspace_settings (
    singleton         boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- Bumped by every metadata change; servers rebuild the GraphQL schema
    -- of a workspace when it moves.
    metadata_version  integer NOT NULL DEFAULT 1
);
INSERT INTO workspace_settings DEFAULT VALUES;

CREATE TABLE account (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         integer NOT NULL DEFAULT 1,
    deleted_at      timestamptz,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    website         text,
    industry        text CHECK (industry IN ('AGRICULTURE', 'BANKING', 'CONSULTING', 'EDUCATION',
                        'ENERGY', 'FINANCE', 'GOVERNMENT', 'HEALTHCARE', 'HOSPITALITY', 'INSURANCE',
                        'MANUFACTURING', 'MEDIA', 'NONPROFIT', 'REAL_ESTATE', 'RETAIL', 'SOFTWARE',
                        'TELECOMMUNICATIONS', 'TRANSPORTATION', 'OTHER')),
    annual_revenue  numeric(18, 2),
    employee_count  integer CHECK (employee_count >= 0),
    phone           text,
    description     text
);
CREATE INDEX account_created_at_idx ON account (created_at, id);
CREATE INDEX account_name_idx ON account (name, id);

CREATE TABLE contact (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         integer NOT NULL DEFAULT 1,
    deleted_at      timestamptz,
    first_name      text,
    last_name       text NOT NULL CHECK (length(last_name) BETWEEN 1 AND 255),
    email           text,
    phone           text,
    title           text,
    account_id      uuid REFERENCES account (id)
);
CREATE INDEX contact_created_at_idx ON contact (created_at, id);
CREATE INDEX contact_account_id_idx ON contact (account_id);
CREATE INDEX contact_email_idx ON contact (email);

CREATE TABLE opportunity (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    version             integer NOT NULL DEFAULT 1,
    deleted_at          timestamptz,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    amount              numeric(18, 2),
    currency            text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    close_date          date,
    next_step           text,
    account_id          uuid REFERENCES account (id),
    primary_contact_id  uuid REFERENCES contact (id)
);
CREATE INDEX opportunity_created_at_idx ON opportunity (created_at, id);
CREATE INDEX opportunity_account_id_idx ON opportunity (account_id);
CREATE INDEX opportunity_primary_contact_id_idx ON opportunity (primary_contact_id);
CREATE INDEX opportunity_close_date_idx ON opportunity (close_date, id);
