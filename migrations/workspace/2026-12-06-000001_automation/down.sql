DROP TABLE email_outbox;
DROP TABLE workflow_state;
DROP TABLE workflow_timer;
DROP TABLE workflow_run;
DROP TABLE email_template;
DROP TABLE workflow_rule;
DROP TABLE validation_rule;
