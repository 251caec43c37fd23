DROP TABLE lead_grade;
DROP TABLE scoring_rule;
DROP TABLE lead_field_mapping;
DROP INDEX lead_grade_idx;
DROP INDEX lead_score_idx;
ALTER TABLE lead
    DROP COLUMN conversion_key,
    DROP COLUMN grade,
    ALTER COLUMN score DROP NOT NULL,
    ALTER COLUMN score DROP DEFAULT;
