DROP TRIGGER account_lifecycle_follows ON account;
DROP FUNCTION account_lifecycle_follows();
DROP TRIGGER account_lifecycle ON account;
DROP FUNCTION account_lifecycle_record();
DROP TABLE account_lifecycle_change;
