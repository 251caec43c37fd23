-- This release adds standard objects (StageEntry, OpportunityFieldChange,
-- LifecycleChange, Report) and standard fields (Opportunity.staleAt, its
-- filter isStale and lists stageEntries and fieldChanges,
-- Pipeline.staleAfterDays, Account.lifecycleChanges). A workspace whose
-- customizations already took one of these names keeps them under a name
-- prefixed "custom" (the data stays where it is, the columns and tables
-- keep their names), so its API still builds.
UPDATE custom_field SET object = 'Custom' || object
WHERE object IN (SELECT name FROM custom_object
                 WHERE lower(name) IN ('stageentry', 'opportunityfieldchange', 'lifecyclechange', 'report')
                    OR lower(plural) IN ('stageentries', 'opportunityfieldchanges', 'lifecyclechanges', 'reports'));
UPDATE custom_field SET lookup_object = 'Custom' || lookup_object
WHERE lookup_object IN (SELECT name FROM custom_object
                        WHERE lower(name) IN ('stageentry', 'opportunityfieldchange', 'lifecyclechange', 'report')
                           OR lower(plural) IN ('stageentries', 'opportunityfieldchanges', 'lifecyclechanges', 'reports'));
UPDATE custom_object SET name = 'Custom' || name, plural = 'custom' || upper(left(plural, 1)) || substr(plural, 2)
WHERE lower(name) IN ('stageentry', 'opportunityfieldchange', 'lifecyclechange', 'report')
   OR lower(plural) IN ('stageentries', 'opportunityfieldchanges', 'lifecyclechanges', 'reports');

UPDATE custom_field SET name = 'custom' || upper(left(name, 1)) || substr(name, 2)
WHERE (object = 'Opportunity' AND lower(name) IN ('staleat', 'isstale', 'stageentries', 'fieldchanges'))
   OR (object = 'Pipeline' AND lower(name) = 'staleafterdays')
   OR (object = 'Account' AND lower(name) = 'lifecyclechanges');
UPDATE custom_field SET relation_name = 'custom' || upper(left(relation_name, 1)) || substr(relation_name, 2)
WHERE (lookup_object = 'Opportunity' AND lower(relation_name) IN ('staleat', 'isstale', 'stageentries', 'fieldchanges'))
   OR (lookup_object = 'Pipeline' AND lower(relation_name) = 'staleafterdays')
   OR (lookup_object = 'Account' AND lower(relation_name) = 'lifecyclechanges');
