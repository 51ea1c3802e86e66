-- Rate limits (a token bucket per kiosk and per member, shared by every central) and the
-- index the automatic kiosk block counts a kiosk's recent failures with.
CREATE TABLE rate_buckets (
    bucket_key TEXT PRIMARY KEY,
    tokens     DOUBLE PRECISION NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX scan_events_by_kiosk_time ON scan_events (kiosk_id, decided_at);
