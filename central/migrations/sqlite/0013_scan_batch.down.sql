-- Nothing to undo on SQLite (see 0013_scan_batch.up.sql).
SELECT 1;
