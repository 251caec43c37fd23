UPDATE lead_field_mapping SET lead_field = 'timeline' WHERE lead_field = 'purchaseTimeline';
DROP TABLE merged_record;
DROP TABLE record_merge;
DROP INDEX lead_email_7af4691c_dupn, contact_last_name_92e4ee9f_dupn, contact_first_name_bcd52ed9_dupn,
    contact_email_d21c041d_dupn, account_name_650c26e5_dupn;
DROP TABLE duplicate_rule;
ALTER TABLE account DROP COLUMN search_document, DROP COLUMN search_words;
ALTER TABLE contact DROP COLUMN search_document, DROP COLUMN search_words;
ALTER TABLE lead DROP COLUMN search_document, DROP COLUMN search_words;
ALTER TABLE opportunity DROP COLUMN search_document, DROP COLUMN search_words;
ALTER TABLE custom_field DROP COLUMN searchable;
