DROP TRIGGER opportunity_field_change_follows ON opportunity;
DROP FUNCTION opportunity_field_change_follows();
DROP TRIGGER opportunity_field_change ON opportunity;
DROP FUNCTION opportunity_field_change_record();
DROP TABLE opportunity_field_change;
