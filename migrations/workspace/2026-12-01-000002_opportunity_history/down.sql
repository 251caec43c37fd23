DROP TRIGGER opportunity_history ON opportunity;
DROP FUNCTION opportunity_history_record();
DROP TABLE opportunity_history;
