-- Whether a stored value converts to another column type: what a field type
-- change previews and checks. Runs with search_path = crm_system.
CREATE FUNCTION convertible(value text, target text) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF value IS NULL THEN
        RETURN true;
    END IF;
    CASE target
        WHEN 'integer' THEN PERFORM value::integer;
        WHEN 'numeric' THEN PERFORM value::numeric(18, 2);
        WHEN 'boolean' THEN PERFORM value::boolean;
        WHEN 'date' THEN PERFORM value::date;
        WHEN 'timestamptz' THEN PERFORM value::timestamptz;
        WHEN 'jsonb' THEN PERFORM value::jsonb;
        WHEN 'uuid' THEN PERFORM value::uuid;
        ELSE RETURN true;
    END CASE;
    RETURN true;
EXCEPTION WHEN others THEN
    RETURN false;
END $$;
