DROP TABLE webhook_delivery;
DROP TABLE record_event;
DROP TABLE webhook_state;
DROP TABLE webhook_subscription;
