DROP TABLE import_mapping;
DROP TABLE import_record;
DROP TABLE import_error;
DROP TABLE import_job;
