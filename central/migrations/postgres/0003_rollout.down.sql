DROP INDEX qr_audit_log_action_at;
DROP INDEX scan_events_decided_at;
DROP TABLE rollout_flags;
