-- Search and duplicate matching: PostgreSQL's own full text search and
-- trigram similarity (contrib extensions, trusted: a database owner may
-- create them), kept in crm_system with the functions every workspace's
-- indexes are built on. The functions are IMMUTABLE (unaccent itself is
-- only STABLE, as its dictionary could change) so indexes may use them;
-- the dictionary is named with its schema, so no search_path changes
-- what they answer.
-- Runs with search_path = crm_system.
CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA crm_system;
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA crm_system;

-- Text as search compares it: accents off, lower case.
CREATE FUNCTION search_text(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT lower(crm_system.unaccent('crm_system.unaccent'::regdictionary, $1)) $$;

-- A field's words for full text search, weighted: the text as the
-- `simple` configuration splits it (no stemming: names stay names), and
-- again split at the characters that join an email's or a handle's words.
CREATE FUNCTION search_vector(text, "char") RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT setweight(to_tsvector('simple'::regconfig,
                  crm_system.search_text(coalesce($1, '')) || ' '
                  || translate(crm_system.search_text(coalesce($1, '')), '@._+-', '     ')), $2) $$;

-- Values as a NORMALIZED duplicate rule compares them: text without
-- accents, case or extra spaces; an email trimmed and lower case; a phone
-- number's last ten digits; the domain of an email or a web address.
CREATE FUNCTION normalized_text(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT nullif(btrim(regexp_replace(crm_system.search_text($1), '\s+', ' ', 'g')), '') $$;
CREATE FUNCTION normalized_email(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT nullif(lower(btrim($1)), '') $$;
CREATE FUNCTION phone_digits(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT nullif(right(regexp_replace($1, '\D', '', 'g'), 10), '') $$;
CREATE FUNCTION domain_of(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT nullif(lower(regexp_replace(regexp_replace(btrim($1), '^[^@]*@', ''),
                  '^([a-z][a-z0-9+.-]*://)?(www\.)?([^/:?#]*).*$', '\3', 'i')), '') $$;
