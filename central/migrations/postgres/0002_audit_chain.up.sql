-- The audit log becomes a hash chain: each row carries the hash of the row before it and
-- its own, so an edited or deleted row shows. Rows written before this step stay
-- unchained (genesis_seq says up to where). Writers lock the head row last, just before
-- commit, so concurrent transactions append one after another.
ALTER TABLE qr_audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE qr_audit_log ADD COLUMN row_hash TEXT;
CREATE TABLE audit_chain_head (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    genesis_seq BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    row_hash    TEXT NOT NULL,
    prev_hash   TEXT
);
INSERT INTO audit_chain_head (id, genesis_seq, seq, row_hash)
SELECT 1, coalesce(max(seq), 0), coalesce(max(seq), 0), repeat('0', 64)
FROM qr_audit_log;
