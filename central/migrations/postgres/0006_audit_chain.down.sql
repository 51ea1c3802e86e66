CREATE OR REPLACE FUNCTION qr_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'qr_audit_log is append-only';
END;
$$;
DROP TABLE audit_chain_head;
DROP INDEX qr_audit_log_unsealed;
DROP INDEX qr_audit_log_chain_pos;
ALTER TABLE qr_audit_log DROP COLUMN row_hash;
ALTER TABLE qr_audit_log DROP COLUMN prev_hash;
ALTER TABLE qr_audit_log DROP COLUMN chain_pos;
