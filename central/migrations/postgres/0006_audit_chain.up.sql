-- The audit log becomes a hash chain: each row carries its place in the chain, the hash
-- of the row before it and its own, so an edited or deleted row shows. Rows written
-- before this step stay unchained (genesis_seq says up to where).
--
-- Writers on several instances only INSERT, as before; a sealer (one at a time, under
-- the head row's lock) chains committed rows in batches, a second or so behind. Locking
-- a shared head in every scan's transaction would hold it across every commit and
-- serialise all instances (measured: bench/audit_chain.py).
ALTER TABLE qr_audit_log ADD COLUMN chain_pos BIGINT;
ALTER TABLE qr_audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE qr_audit_log ADD COLUMN row_hash TEXT;
CREATE UNIQUE INDEX qr_audit_log_chain_pos ON qr_audit_log (chain_pos);
-- The sealer's work list: rows not chained yet.
CREATE INDEX qr_audit_log_unsealed ON qr_audit_log (seq) WHERE chain_pos IS NULL;
CREATE TABLE audit_chain_head (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    genesis_seq BIGINT NOT NULL,
    pos         BIGINT NOT NULL,
    row_hash    TEXT NOT NULL
);
INSERT INTO audit_chain_head (id, genesis_seq, pos, row_hash)
SELECT 1, coalesce(max(seq), 0), 0, repeat('0', 64) FROM qr_audit_log;
-- Still append-only, with one exception: sealing writes the chain columns of an unsealed
-- row once, and nothing else.
CREATE OR REPLACE FUNCTION qr_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.chain_pos IS NULL AND OLD.prev_hash IS NULL
       AND OLD.row_hash IS NULL AND NEW.chain_pos IS NOT NULL
       AND NEW.prev_hash IS NOT NULL AND NEW.row_hash IS NOT NULL
       AND (NEW.seq, NEW.at, NEW.actor, NEW.action, NEW.reason, NEW.kiosk_id,
            NEW.member_id, NEW.item_id, NEW.event_id, NEW.detail)
           IS NOT DISTINCT FROM
           (OLD.seq, OLD.at, OLD.actor, OLD.action, OLD.reason, OLD.kiosk_id,
            OLD.member_id, OLD.item_id, OLD.event_id, OLD.detail) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'qr_audit_log is append-only';
END;
$$;
