DROP INDEX activity_updated_at_idx;
DROP INDEX lead_updated_at_idx;
DROP INDEX opportunity_updated_at_idx;
DROP INDEX contact_updated_at_idx;
DROP INDEX account_updated_at_idx;
DROP INDEX account_industry_idx;
DROP INDEX account_annual_revenue_idx;
