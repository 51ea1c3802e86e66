DROP TABLE audit_chain_head;
DROP INDEX qr_audit_log_chain_pos;
ALTER TABLE qr_audit_log DROP COLUMN row_hash;
ALTER TABLE qr_audit_log DROP COLUMN prev_hash;
ALTER TABLE qr_audit_log DROP COLUMN chain_pos;
