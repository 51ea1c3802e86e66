-- The rollout flag (one row per flag) and its circuit breaker; indexes for the breaker's
-- ten-minute window counts.
CREATE TABLE rollout_flags (
    name             TEXT PRIMARY KEY,
    mode             TEXT NOT NULL CHECK (mode IN ('off', 'allow-list', 'percentage', 'on')),
    members          TEXT NOT NULL DEFAULT '[]',
    items            TEXT NOT NULL DEFAULT '[]',
    kiosks           TEXT NOT NULL DEFAULT '[]',
    percent          INTEGER NOT NULL DEFAULT 0 CHECK (percent >= 0 AND percent <= 100),
    reason           TEXT NOT NULL,
    changed_by       TEXT NOT NULL,
    changed_at       TIMESTAMPTZ NOT NULL,
    tripped_at       TIMESTAMPTZ,
    trip_reason      TEXT,
    breaker_reset_at TIMESTAMPTZ
);
-- Checkout stays as it was before this migration until an admin changes the flag.
INSERT INTO rollout_flags (name, mode, reason, changed_by, changed_at)
VALUES ('qr-checkout-enabled', 'on', 'default at migration', 'system', '1970-01-01T00:00:00Z');
CREATE INDEX scan_events_decided_at ON scan_events (decided_at);
CREATE INDEX qr_audit_log_action_at ON qr_audit_log (action, at);
