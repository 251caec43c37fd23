-- Sandboxes: the registry row of each sandbox workspace, who may use it,
-- and what masking needs. Runs with search_path = crm_system.

-- Sandbox names: lowercase letters, digits and underscores, 1 to 40.
ALTER TABLE workspace DROP CONSTRAINT workspace_name_check;
ALTER TABLE workspace ADD CONSTRAINT workspace_name_check CHECK (name ~ '^[a-z0-9_]{1,40}$');

ALTER TABLE workspace
    ADD COLUMN description   text NOT NULL DEFAULT '',
    -- How the sandbox was filled: METADATA_ONLY, SAMPLE or FULL.
    ADD COLUMN mode          text CHECK (mode IN ('METADATA_ONLY', 'SAMPLE', 'FULL')),
    ADD COLUMN sample_size   integer CHECK (sample_size > 0),
    ADD COLUMN masked        boolean NOT NULL DEFAULT false,
    ADD COLUMN created_by    uuid REFERENCES users (id),
    ADD COLUMN refreshed_at  timestamptz,
    ADD COLUMN refreshed_by  uuid REFERENCES users (id),
    -- Production's metadata version and full metadata (custom objects and
    -- fields, pipelines, stages, settings) when the sandbox was made: the
    -- base of the three-way comparison of a promotion.
    ADD COLUMN base_version  integer,
    ADD COLUMN base          jsonb,
    ADD CONSTRAINT workspace_sandbox_check CHECK (kind = 'production' OR (mode IS NOT NULL AND base IS NOT NULL));

-- Users other than admins may use a sandbox's endpoint only when granted.
CREATE TABLE sandbox_access (
    workspace   text NOT NULL REFERENCES workspace (name) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    granted_by  uuid REFERENCES users (id),
    granted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace, user_id)
);

-- Secrets of this installation, made once. `mask_salt` keys the masking
-- functions: fake values are the same for the same input (relations and
-- duplicates stay recognizable) but cannot be matched against a list of
-- guessed names or emails without it.
CREATE TABLE secret (
    name   text PRIMARY KEY,
    value  text NOT NULL
);
INSERT INTO secret (name, value)
VALUES ('mask_salt', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));

-- 28 bits of a keyed hash of a value, as a non-negative integer.
CREATE FUNCTION mask_hash(salt text, value text) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ('x' || substr(md5(salt || ':' || value), 1, 7))::bit(28)::integer
$$;

CREATE FUNCTION mask_pick(salt text, value text, words text[]) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT words[1 + crm_system.mask_hash(salt, value) % array_length(words, 1)]
$$;

CREATE FUNCTION mask_given_name(salt text, value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT crm_system.mask_pick(salt, value, ARRAY['Alex', 'Avery', 'Blake', 'Cameron', 'Casey', 'Charlie',
        'Dakota', 'Drew', 'Eden', 'Elliot', 'Emery', 'Finley', 'Frankie', 'Harper', 'Hayden', 'Jamie',
        'Jordan', 'Jules', 'Kai', 'Kendall', 'Lane', 'Logan', 'Morgan', 'Noel', 'Parker', 'Peyton',
        'Quinn', 'Reese', 'Riley', 'Robin', 'Rowan', 'Sage', 'Sam', 'Sawyer', 'Shay', 'Skyler',
        'Taylor', 'Toni', 'Val', 'Wren'])
$$;

CREATE FUNCTION mask_family_name(salt text, value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT crm_system.mask_pick(salt, value, ARRAY['Abbott', 'Barker', 'Calloway', 'Dalton', 'Ellison',
        'Fairbanks', 'Garner', 'Hollis', 'Ingram', 'Jarvis', 'Keller', 'Langley', 'Mercer', 'Norwood',
        'Oakley', 'Prescott', 'Quimby', 'Radcliffe', 'Sterling', 'Thornton', 'Underwood', 'Vance',
        'Whitaker', 'Yardley', 'Ashby', 'Bramwell', 'Corbin', 'Easton', 'Fenwick', 'Hadley', 'Kingsley',
        'Lockwood', 'Marlowe', 'Pembroke', 'Rowley', 'Sutton', 'Tilden', 'Winslow', 'Colby', 'Darrow'])
$$;

-- Unique for unique inputs (64 bits of the keyed hash), valid, and under
-- example.com, a domain reserved for examples (RFC 2606): mail to it
-- reaches nobody.
CREATE FUNCTION mask_email(salt text, value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT 'person.' || substr(md5(salt || ':' || value), 1, 16) || '@example.com'
$$;

-- In 555, the fictional North American area code.
CREATE FUNCTION mask_phone(salt text, value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT '+1 555 ' || substr(d, 1, 3) || ' ' || substr(d, 4, 4)
    FROM (SELECT lpad((crm_system.mask_hash(salt, value) % 10000000)::text, 7, '0') AS d) AS digits
$$;

CREATE FUNCTION mask_street(salt text, value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (1 + crm_system.mask_hash(salt, value) % 999)::text || ' '
        || crm_system.mask_pick(salt, value || '#street', ARRAY['Maple', 'Oak', 'Cedar', 'Elm', 'Willow',
            'Birch', 'Juniper', 'Linden', 'Aspen', 'Hawthorn', 'Chestnut', 'Laurel', 'Magnolia', 'Poplar',
            'Sycamore', 'Alder']) || ' Street'
$$;

CREATE FUNCTION mask_city(salt text, value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT crm_system.mask_pick(salt, value, ARRAY['Springfield', 'Riverton', 'Fairview', 'Lakeside',
        'Brookfield', 'Greenville', 'Kingsport', 'Millbrook', 'Northfield', 'Oakridge', 'Pinecrest',
        'Redwood', 'Stonebridge', 'Westhaven', 'Ashford', 'Clearwater'])
$$;

CREATE FUNCTION mask_postal_code(salt text, value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT lpad((crm_system.mask_hash(salt, value) % 100000)::text, 5, '0')
$$;

-- Free text becomes placeholder text of the same length.
CREATE FUNCTION mask_text(value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT left(repeat('Lorem ipsum dolor sit amet, consectetur adipiscing elit. ',
        length(value) / 57 + 1), length(value))
$$;

-- A date of birth keeps its year only.
CREATE FUNCTION mask_date(value date) RETURNS date
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT date_trunc('year', value)::date
$$;
