DROP TRIGGER account_lifecycle ON account;
DROP FUNCTION account_lifecycle_record();
DROP TABLE account_lifecycle_change;
