DROP TABLE audit_chain_head;
ALTER TABLE qr_audit_log DROP COLUMN row_hash;
ALTER TABLE qr_audit_log DROP COLUMN prev_hash;
