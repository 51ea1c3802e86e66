-- Nothing to do on SQLite: PostgreSQL's 0013 adds the batched scan step (cs_scan_step);
-- SQLite decides in-process, where a round trip costs nothing. Same number, so versions agree.
SELECT 1;
