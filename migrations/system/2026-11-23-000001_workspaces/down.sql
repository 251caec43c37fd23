DROP TABLE workspace;
