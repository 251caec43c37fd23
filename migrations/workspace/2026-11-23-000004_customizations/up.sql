-- Customizations: custom objects and custom fields as metadata rows. Each
-- row describes a real table (`co_<name>`) or a real typed column
-- (`cf_<name>`) made by the same transaction that wrote the row. Rows are
-- never removed by a delete: `deleted_at` hides the object or field from
-- the API while its table or column keeps the data, until a purge.
-- Runs once per workspace schema with search_path set to it.

CREATE TABLE custom_object (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL,
    plural        text NOT NULL,
    table_name    text NOT NULL UNIQUE,
    label         text NOT NULL,
    plural_label  text NOT NULL,
    description   text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz
);
CREATE UNIQUE INDEX custom_object_name_key ON custom_object (lower(name));
CREATE UNIQUE INDEX custom_object_plural_key ON custom_object (lower(plural));

CREATE TABLE custom_field (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The object's API name (`Account`, or a custom object's).
    object         text NOT NULL,
    name           text NOT NULL,
    column_name    text NOT NULL,
    label          text NOT NULL,
    description    text NOT NULL DEFAULT '',
    type           text NOT NULL,
    required       boolean NOT NULL DEFAULT false,
    is_unique      boolean NOT NULL DEFAULT false,
    indexed        boolean NOT NULL DEFAULT false,
    -- The default as the API shows it (a JSON value), null for none.
    default_value  jsonb,
    -- Picklists: [{"value": "GOLD", "label": "Gold", "active": true}, …]
    options        jsonb NOT NULL DEFAULT '[]',
    -- Lookups: the target object and the list the target shows back.
    lookup_object  text,
    relation_name  text,
    position       integer NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz
);
CREATE UNIQUE INDEX custom_field_name_key ON custom_field (object, lower(name));
CREATE UNIQUE INDEX custom_field_column_key ON custom_field (object, column_name);

-- Every metadata change, in order, with the version it produced: what
-- promotion compares and what clients read to learn of breaking changes.
CREATE TABLE metadata_change (
    version      integer PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor_id     uuid,
    kind         text NOT NULL,
    object       text NOT NULL,
    field        text,
    summary      text NOT NULL,
    breaking     boolean NOT NULL DEFAULT false,
    before       jsonb,
    after        jsonb
);
