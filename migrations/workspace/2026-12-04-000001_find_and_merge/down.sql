UPDATE lead_field_mapping SET lead_field = 'timeline' WHERE lead_field = 'purchaseTimeline';
DROP TABLE merged_record;
DROP TABLE record_merge;
DROP INDEX lead_email_7af4691c_dupn, contact_last_name_92e4ee9f_dupn, contact_first_name_bcd52ed9_dupn,
    contact_email_d21c041d_dupn, account_name_650c26e5_dupn;
DROP TABLE duplicate_rule;
DROP INDEX account_search_12be0888_fts, account_search_6fdfdd5e_trgm, contact_search_d3f0895e_fts,
    contact_search_89e90b4c_trgm, lead_search_0d7dc76e_fts, lead_search_c9ce3b01_trgm,
    opportunity_search_37dfdf00_fts, opportunity_search_e4a2ecfb_trgm;
ALTER TABLE custom_field DROP COLUMN searchable;
