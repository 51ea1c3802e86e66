-- Undo the batched scan step: central falls back to one transaction per scan.
DROP FUNCTION cs_scan_step(timestamptz, jsonb, boolean, text[], text[], text[], text[], text[],
    text[], text[], text[], text[], float8[], float8, timestamptz, text[]);
DROP VIEW schema_backend;
