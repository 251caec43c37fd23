-- Find anything, keep it clean: search, duplicate rules, merge and the
-- 360° timeline.
--
-- Search: which text fields are searchable is metadata (standard names and
-- emails are; a custom text field is when it says `searchable`). Each
-- object with searchable fields has two stored generated columns the
-- server keeps in step with its metadata — search_document, a weighted
-- full text vector, and search_words, the fields' text for trigram
-- similarity — each with a GIN index; a comment on search_document names
-- the fields it covers, so the server rebuilds only what changed.
ALTER TABLE custom_field ADD COLUMN searchable boolean NOT NULL DEFAULT false;

ALTER TABLE account
    ADD COLUMN search_document tsvector GENERATED ALWAYS AS (crm_system.search_vector("name", 'A')) STORED,
    ADD COLUMN search_words text GENERATED ALWAYS AS (crm_system.search_text(coalesce("name", ''))) STORED;
CREATE INDEX account_search_12be0888_fts ON account USING gin (search_document);
CREATE INDEX account_search_6fdfdd5e_trgm ON account USING gin (search_words crm_system.gin_trgm_ops);
COMMENT ON COLUMN account.search_document IS 'search: name A';

ALTER TABLE contact
    ADD COLUMN search_document tsvector GENERATED ALWAYS AS (crm_system.search_vector("first_name", 'A')
        || crm_system.search_vector("last_name", 'A') || crm_system.search_vector("email", 'B')) STORED,
    ADD COLUMN search_words text GENERATED ALWAYS AS (crm_system.search_text(coalesce("first_name", '') || ' '
        || coalesce("last_name", '') || ' ' || coalesce("email", ''))) STORED;
CREATE INDEX contact_search_d3f0895e_fts ON contact USING gin (search_document);
CREATE INDEX contact_search_89e90b4c_trgm ON contact USING gin (search_words crm_system.gin_trgm_ops);
COMMENT ON COLUMN contact.search_document IS 'search: first_name A, last_name A, email B';

ALTER TABLE lead
    ADD COLUMN search_document tsvector GENERATED ALWAYS AS (crm_system.search_vector("first_name", 'A')
        || crm_system.search_vector("last_name", 'A') || crm_system.search_vector("company", 'C')
        || crm_system.search_vector("email", 'B')) STORED,
    ADD COLUMN search_words text GENERATED ALWAYS AS (crm_system.search_text(coalesce("first_name", '') || ' '
        || coalesce("last_name", '') || ' ' || coalesce("company", '') || ' ' || coalesce("email", ''))) STORED;
CREATE INDEX lead_search_0d7dc76e_fts ON lead USING gin (search_document);
CREATE INDEX lead_search_c9ce3b01_trgm ON lead USING gin (search_words crm_system.gin_trgm_ops);
COMMENT ON COLUMN lead.search_document IS 'search: first_name A, last_name A, company C, email B';

ALTER TABLE opportunity
    ADD COLUMN search_document tsvector GENERATED ALWAYS AS (crm_system.search_vector("name", 'A')) STORED,
    ADD COLUMN search_words text GENERATED ALWAYS AS (crm_system.search_text(coalesce("name", ''))) STORED;
CREATE INDEX opportunity_search_37dfdf00_fts ON opportunity USING gin (search_document);
CREATE INDEX opportunity_search_e4a2ecfb_trgm ON opportunity USING gin (search_words crm_system.gin_trgm_ops);
COMMENT ON COLUMN opportunity.search_document IS 'search: name A';

-- Duplicate rules: configuration like scoring rules. A rule names an
-- object, the fields that must all match (each EXACT, NORMALIZED, DOMAIN
-- or FUZZY) and what a write that makes a match gets: ALLOW (listed by
-- findDuplicates only), WARN (succeeds, with the matches) or BLOCK.
CREATE TABLE duplicate_rule (
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
    criteria    jsonb NOT NULL CHECK (jsonb_typeof(criteria) = 'array'),
    action      text NOT NULL DEFAULT 'WARN' CHECK (action IN ('ALLOW', 'WARN', 'BLOCK')),
    is_active   boolean NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX duplicate_rule_name_key ON duplicate_rule (name) WHERE deleted_at IS NULL;
CREATE INDEX duplicate_rule_object_idx ON duplicate_rule (object) WHERE deleted_at IS NULL AND is_active;
CREATE INDEX duplicate_rule_created_at_idx ON duplicate_rule (created_at, id);
CREATE INDEX duplicate_rule_owner_id_idx ON duplicate_rule (owner_id);
CREATE INDEX duplicate_rule_created_by_idx ON duplicate_rule (created_by);
CREATE INDEX duplicate_rule_deleted_idx ON duplicate_rule (id) WHERE deleted_at IS NOT NULL;
-- The questions every CRM asks out of the box, as rules an admin may
-- change: the same account name, the same email (warned), the same
-- person's name (listed, and offered when a lead is converted).
INSERT INTO duplicate_rule (name, description, object, criteria, action, created_at) VALUES
    ('Accounts with the same name', 'Account names equal but for case, accents and spaces.',
     'Account', '[{"field": "name", "match": "NORMALIZED"}]', 'WARN', now()),
    ('Contacts with the same email', 'Contact emails equal but for case and spaces.',
     'Contact', '[{"field": "email", "match": "NORMALIZED"}]', 'WARN', now() + interval '1 microsecond'),
    ('Contacts with the same name', 'First and last names equal but for case, accents and spaces.',
     'Contact', '[{"field": "firstName", "match": "NORMALIZED"}, {"field": "lastName", "match": "NORMALIZED"}]',
     'ALLOW', now() + interval '2 microseconds'),
    ('Leads with the same email', 'Lead emails equal but for case and spaces.',
     'Lead', '[{"field": "email", "match": "NORMALIZED"}]', 'WARN', now() + interval '3 microseconds');
-- The indexes the rules match through, kept by the server as the rules
-- change (named and commented as it names them).
CREATE INDEX account_name_650c26e5_dupn ON account (crm_system.normalized_text("name"));
COMMENT ON INDEX account_name_650c26e5_dupn IS 'duplicates: NORMALIZED name crm_system.normalized_text';
CREATE INDEX contact_email_d21c041d_dupn ON contact (crm_system.normalized_email("email"));
COMMENT ON INDEX contact_email_d21c041d_dupn IS 'duplicates: NORMALIZED email crm_system.normalized_email';
CREATE INDEX contact_first_name_bcd52ed9_dupn ON contact (crm_system.normalized_text("first_name"));
COMMENT ON INDEX contact_first_name_bcd52ed9_dupn IS 'duplicates: NORMALIZED first_name crm_system.normalized_text';
CREATE INDEX contact_last_name_92e4ee9f_dupn ON contact (crm_system.normalized_text("last_name"));
COMMENT ON INDEX contact_last_name_92e4ee9f_dupn IS 'duplicates: NORMALIZED last_name crm_system.normalized_text';
CREATE INDEX lead_email_7af4691c_dupn ON lead (crm_system.normalized_email("email"));
COMMENT ON INDEX lead_email_7af4691c_dupn IS 'duplicates: NORMALIZED email crm_system.normalized_email';

-- Merges: the survivor keeps the chosen values and every reference; each
-- merged record is deleted and leaves a tombstone pointing to its
-- survivor, so a read by its id and an upsert by its external id reach the
-- survivor. The merge keeps what it changed, so it can be undone while
-- nothing has changed since.
CREATE TABLE record_merge (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       uuid REFERENCES crm_system.users (id),
    object           text NOT NULL,
    survivor_id      uuid NOT NULL,
    merged_ids       uuid[] NOT NULL,
    -- The survivor's values the merge replaced, {apiName: value}, and the
    -- version it left the survivor at.
    survivor_before  jsonb NOT NULL DEFAULT '{}',
    survivor_version integer NOT NULL,
    -- {mergedId: version} of the merged records, as the merge left them.
    merged_versions  jsonb NOT NULL DEFAULT '{}',
    -- [{"object", "field", "from", "ids": [...]}]: references moved.
    moved            jsonb NOT NULL DEFAULT '[]',
    -- [{"object", "id"}]: records deleted because they would repeat one
    -- of the survivor's (a second role of one contact on a deal).
    removed          jsonb NOT NULL DEFAULT '[]',
    -- [{"merged", "survivor"}]: older tombstones that pointed to a merged record.
    repointed        jsonb NOT NULL DEFAULT '[]',
    undone_at        timestamptz,
    undone_by        uuid REFERENCES crm_system.users (id)
);
CREATE INDEX record_merge_survivor_idx ON record_merge (survivor_id, created_at);
CREATE INDEX record_merge_merged_idx ON record_merge USING gin (merged_ids);
CREATE TABLE merged_record (
    merged_id   uuid PRIMARY KEY,
    object      text NOT NULL,
    survivor_id uuid NOT NULL,
    merge_id    uuid NOT NULL REFERENCES record_merge (id)
);
CREATE INDEX merged_record_survivor_idx ON merged_record (survivor_id);
CREATE INDEX merged_record_merge_idx ON merged_record (merge_id);

-- Every record of accounts, contacts, deals and leads gets a `timeline`:
-- the lead's BANT field of that name is `purchaseTimeline` in the API
-- now (its column stays). A workspace whose customizations took one of
-- these names (or the object name DuplicateRule) keeps them prefixed
-- "custom", so its API still builds.
UPDATE custom_field SET object = 'Custom' || object
WHERE object IN (SELECT name FROM custom_object
                 WHERE lower(name) = 'duplicaterule' OR lower(plural) = 'duplicaterules');
UPDATE custom_field SET lookup_object = 'Custom' || lookup_object
WHERE lookup_object IN (SELECT name FROM custom_object
                        WHERE lower(name) = 'duplicaterule' OR lower(plural) = 'duplicaterules');
UPDATE custom_object SET name = 'Custom' || name, plural = 'custom' || upper(left(plural, 1)) || substr(plural, 2)
WHERE lower(name) = 'duplicaterule' OR lower(plural) = 'duplicaterules';
UPDATE custom_field SET name = 'custom' || upper(left(name, 1)) || substr(name, 2)
WHERE (object IN ('Account', 'Contact', 'Opportunity', 'Lead') AND lower(name) = 'timeline')
   OR (object = 'Lead' AND lower(name) = 'purchasetimeline');
UPDATE custom_field SET relation_name = 'custom' || upper(left(relation_name, 1)) || substr(relation_name, 2)
WHERE (lookup_object IN ('Account', 'Contact', 'Opportunity', 'Lead') AND lower(relation_name) = 'timeline')
   OR (lookup_object = 'Lead' AND lower(relation_name) = 'purchasetimeline');
UPDATE lead_field_mapping SET lead_field = 'purchaseTimeline' WHERE lead_field = 'timeline';
