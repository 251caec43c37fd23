-- Imports: a job per file, the rows it refused (its error file) and what
-- it did to each record (so `revertImport` can undo it).
CREATE TABLE import_job (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid REFERENCES crm_system.users (id),
    object          text NOT NULL,
    format          text NOT NULL CHECK (format IN ('CSV', 'VCARD')),
    file_name       text,
    mode            text NOT NULL CHECK (mode IN ('CREATE', 'UPSERT', 'UPDATE')),
    match_on        text,
    on_error        text NOT NULL CHECK (on_error IN ('SKIP', 'ABORT')),
    dry_run         boolean NOT NULL,
    -- The options as given (defaults, formats, delimiter, encoding) and the
    -- mapping used: [{"column", "header", "field"}] (field null: ignored).
    options         jsonb NOT NULL DEFAULT '{}',
    mapping         jsonb NOT NULL DEFAULT '[]',
    state           text NOT NULL DEFAULT 'RUNNING'
                    CHECK (state IN ('RUNNING', 'SUCCEEDED', 'FAILED', 'INTERRUPTED', 'REVERTED')),
    message         text,
    rows_read       bigint NOT NULL DEFAULT 0,
    rows_created    bigint NOT NULL DEFAULT 0,
    rows_updated    bigint NOT NULL DEFAULT 0,
    rows_unchanged  bigint NOT NULL DEFAULT 0,
    rows_failed     bigint NOT NULL DEFAULT 0,
    warnings        bigint NOT NULL DEFAULT 0,
    -- The import transaction's now(): the updatedAt of every record it wrote.
    committed_at    timestamptz,
    finished_at     timestamptz,
    reverted_at     timestamptz,
    reverted_by     uuid REFERENCES crm_system.users (id)
);
CREATE INDEX import_job_created_idx ON import_job (created_at DESC, id DESC);

CREATE TABLE import_error (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      uuid NOT NULL REFERENCES import_job (id) ON DELETE CASCADE,
    row_number  bigint NOT NULL,
    column_name text,
    value       text,
    code        text NOT NULL,
    message     text NOT NULL,
    -- A warning (a duplicate rule's WARN) does not refuse the row.
    warning     boolean NOT NULL DEFAULT false
);
CREATE INDEX import_error_job_idx ON import_error (job_id, row_number, id);

CREATE TABLE import_record (
    job_id     uuid NOT NULL REFERENCES import_job (id) ON DELETE CASCADE,
    record_id  uuid NOT NULL,
    row_number bigint NOT NULL,
    created    boolean NOT NULL,
    -- A record of another object the import made (an account named by a
    -- vCard's ORG); null: of the job's object.
    object     text,
    -- An updated record's columns before the import: {column: value}.
    before     jsonb,
    PRIMARY KEY (job_id, record_id)
);

-- Saved import mappings: configuration, promoted like duplicate rules.
CREATE TABLE import_mapping (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    version       integer NOT NULL DEFAULT 1,
    deleted_at    timestamptz,
    external_id   text UNIQUE CHECK (length(external_id) BETWEEN 1 AND 255),
    owner_id      uuid REFERENCES crm_system.users (id),
    created_by    uuid REFERENCES crm_system.users (id),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    description   text,
    object        text NOT NULL CHECK (length(object) BETWEEN 1 AND 255),
    columns       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(columns) = 'object'),
    defaults      jsonb CHECK (defaults IS NULL OR jsonb_typeof(defaults) = 'object'),
    mode          text NOT NULL DEFAULT 'CREATE' CHECK (mode IN ('CREATE', 'UPSERT', 'UPDATE')),
    match_on      text,
    date_format   text,
    decimal_comma boolean NOT NULL DEFAULT false,
    delimiter     text CHECK (length(delimiter) BETWEEN 1 AND 2),
    encoding      text
);
CREATE UNIQUE INDEX import_mapping_name_key ON import_mapping (name) WHERE deleted_at IS NULL;
CREATE INDEX import_mapping_created_at_idx ON import_mapping (created_at, id);
CREATE INDEX import_mapping_owner_id_idx ON import_mapping (owner_id);
CREATE INDEX import_mapping_created_by_idx ON import_mapping (created_by);
CREATE INDEX import_mapping_deleted_idx ON import_mapping (id) WHERE deleted_at IS NOT NULL;

-- A workspace whose custom objects took the names the imports bring
-- (ImportMapping and the types of import jobs) keeps them prefixed
-- "Custom", so its API still builds.
CREATE TEMPORARY TABLE taken_import_names AS
SELECT name FROM custom_object
WHERE lower(name) IN ('importmapping', 'importjob', 'importstatus', 'importcolumn', 'importrowerror', 'importrevert')
   OR lower(plural) IN ('importmappings', 'importjobs', 'importjob', 'importmapping');
UPDATE custom_field SET object = 'Custom' || object WHERE object IN (SELECT name FROM taken_import_names);
UPDATE custom_field SET lookup_object = 'Custom' || lookup_object
WHERE lookup_object IN (SELECT name FROM taken_import_names);
UPDATE custom_object SET name = 'Custom' || name, plural = 'custom' || upper(left(plural, 1)) || substr(plural, 2)
WHERE name IN (SELECT name FROM taken_import_names);
DROP TABLE taken_import_names;
