-- Placeholder on branch release only (see the up script).
DROP VIEW reserved_for_merge_0007;
