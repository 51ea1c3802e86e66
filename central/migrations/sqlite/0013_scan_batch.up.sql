-- PostgreSQL's 0013 adds the batched scan step (cs_scan_step); SQLite decides in-process,
-- where a round trip costs nothing, so it needs none. Both record which backend the
-- schema is and whether its scans are batched in one statement a round, so versions agree
-- and a restored backup says what it came from.
CREATE VIEW schema_backend AS SELECT 'sqlite' AS backend, 0 AS batched_scans;
