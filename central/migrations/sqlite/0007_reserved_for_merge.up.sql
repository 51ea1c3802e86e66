-- Placeholder on branch release only: another branch adds migration 0007 in parallel.
-- The lead deletes this file at merge and renumbers 0009_releases.
CREATE VIEW reserved_for_merge_0007 AS SELECT 1 AS placeholder;
