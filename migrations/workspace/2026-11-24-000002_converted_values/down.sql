DROP TABLE converted_value;
DROP TABLE field_conversion;
