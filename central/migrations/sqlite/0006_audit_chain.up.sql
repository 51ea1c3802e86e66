-- The audit log becomes a hash chain: each row carries its place in the chain, the hash
-- of the row before it and its own, so an edited or deleted row shows. Rows written
-- before this step stay unchained (genesis_seq says up to where). SQLite has one writer:
-- each row is chained as it is written, in its own transaction.
ALTER TABLE qr_audit_log ADD COLUMN chain_pos INTEGER;
ALTER TABLE qr_audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE qr_audit_log ADD COLUMN row_hash TEXT;
CREATE UNIQUE INDEX qr_audit_log_chain_pos ON qr_audit_log (chain_pos);
CREATE TABLE audit_chain_head (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    genesis_seq INTEGER NOT NULL,
    pos         INTEGER NOT NULL,
    row_hash    TEXT NOT NULL
);
INSERT INTO audit_chain_head (id, genesis_seq, pos, row_hash)
SELECT 1, coalesce(max(seq), 0), 0,
       '0000000000000000000000000000000000000000000000000000000000000000'
FROM qr_audit_log;
