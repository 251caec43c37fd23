-- Indexes for the list views a sales team keeps open (the glossaries'
-- pipeline, account and lead views): each sort key with `id`, the keyset
-- tie-breaker, which runs in the sort key's direction, so one index
-- serves a list sorted either way and pages through it without sorting.
-- Amount, close date, stage, owner, due date, name and creation time were
-- indexed already.
CREATE INDEX account_annual_revenue_idx ON account (annual_revenue, id);
CREATE INDEX account_industry_idx ON account (industry, id);
CREATE INDEX account_updated_at_idx ON account (updated_at, id);
CREATE INDEX contact_updated_at_idx ON contact (updated_at, id);
CREATE INDEX opportunity_updated_at_idx ON opportunity (updated_at, id);
CREATE INDEX lead_updated_at_idx ON lead (updated_at, id);
CREATE INDEX activity_updated_at_idx ON activity (updated_at, id);
