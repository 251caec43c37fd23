-- Forward-only in practice; kept so a developer database can step back.
DROP TABLE activity;
DROP TABLE contact_role;
DROP TRIGGER stage_status_follows ON stage;
DROP FUNCTION stage_status_follows();
DROP TRIGGER opportunity_stage_rule ON opportunity;
DROP FUNCTION opportunity_stage_rule();
ALTER TABLE lead DROP CONSTRAINT lead_converted_opportunity_id_fkey;
ALTER TABLE opportunity DROP COLUMN expected_revenue, DROP COLUMN is_won, DROP COLUMN is_closed,
    DROP COLUMN lead_source, DROP COLUMN forecast_category, DROP COLUMN probability, DROP COLUMN stage_id,
    DROP COLUMN pipeline_id, DROP COLUMN created_by, DROP COLUMN owner_id, DROP COLUMN external_id;
DROP TABLE stage CASCADE;
DROP FUNCTION stage_pipeline_rule();
DROP TABLE pipeline;
DROP TABLE lead;
ALTER TABLE contact DROP COLUMN birthdate, DROP COLUMN do_not_contact, DROP COLUMN lead_source,
    DROP COLUMN mailing_country, DROP COLUMN mailing_postal_code, DROP COLUMN mailing_state,
    DROP COLUMN mailing_city, DROP COLUMN mailing_street, DROP COLUMN department, DROP COLUMN mobile,
    DROP COLUMN created_by, DROP COLUMN owner_id, DROP COLUMN external_id;
DROP TRIGGER account_hierarchy_rule ON account;
DROP FUNCTION account_hierarchy_rule();
ALTER TABLE account DROP COLUMN shipping_country, DROP COLUMN shipping_postal_code, DROP COLUMN shipping_state,
    DROP COLUMN shipping_city, DROP COLUMN shipping_street, DROP COLUMN billing_country,
    DROP COLUMN billing_postal_code, DROP COLUMN billing_state, DROP COLUMN billing_city,
    DROP COLUMN billing_street, DROP COLUMN parent_account_id, DROP COLUMN lifecycle_stage, DROP COLUMN type,
    DROP COLUMN domain, DROP COLUMN created_by, DROP COLUMN owner_id, DROP COLUMN external_id;
