-- What a field type change did to each value, so that changing the type
-- back (a promotion's revert, or the inverse change by hand) restores the
-- values as they were for the records it has not changed since: a time of
-- day, fraction digits, a number made true, the text a picklist matched.
-- Kept with the field until it is purged.
-- Runs once per workspace schema with search_path set to it.

CREATE TABLE field_conversion (
    field_id   uuid NOT NULL,
    -- The metadata version the type change made.
    version    integer NOT NULL,
    from_type  text NOT NULL,
    to_type    text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (field_id, version)
);

-- One record's value before and after a conversion (to_jsonb of the column
-- type: exact, whatever the session's time zone or date style). When the
-- storage type stays, records whose value it leaves as it is are not kept.
CREATE TABLE converted_value (
    field_id   uuid NOT NULL,
    version    integer NOT NULL,
    record_id  uuid NOT NULL,
    before     jsonb,
    after      jsonb,
    -- The conversion gave back the value from before the field's previous
    -- conversion (it undid that one for this record).
    restored   boolean NOT NULL DEFAULT false,
    -- Of the conversion (field_id, version); removed with it (no foreign
    -- key: every foreign key of a workspace is a lookup to a record).
    PRIMARY KEY (field_id, version, record_id)
);
