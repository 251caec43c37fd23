DROP TABLE promotion;
