DROP TABLE metadata_change;
DROP TABLE custom_field;
DROP TABLE custom_object;
