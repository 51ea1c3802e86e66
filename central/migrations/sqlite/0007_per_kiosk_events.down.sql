-- Back to one verdict per event id: where kiosks shared an id, the first decided is kept
-- (the old schema cannot hold the others).
ALTER TABLE kiosks DROP COLUMN return_point;
CREATE TABLE scan_events_by_id (
    event_id   TEXT PRIMARY KEY,
    kiosk_id   TEXT NOT NULL,
    code_hash  TEXT,
    scanned_at TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    reason     TEXT NOT NULL,
    verdict    TEXT NOT NULL
);
INSERT INTO scan_events_by_id
SELECT event_id, kiosk_id, code_hash, scanned_at, decided_at, reason, verdict FROM scan_events
WHERE rowid IN (
    SELECT (SELECT e.rowid FROM scan_events e WHERE e.event_id = s.event_id
            ORDER BY e.decided_at, e.kiosk_id LIMIT 1)
    FROM (SELECT DISTINCT event_id FROM scan_events) s
);
DROP TABLE scan_events;
ALTER TABLE scan_events_by_id RENAME TO scan_events;
CREATE INDEX scan_events_decided_at ON scan_events (decided_at);
CREATE INDEX scan_events_by_kiosk_time ON scan_events (kiosk_id, decided_at);
-- Event ids another kiosk also used are prefixed with their kiosk to stay unique.
CREATE TABLE checkouts_by_id (
    checkout_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id         TEXT NOT NULL REFERENCES items (item_id),
    member_id       TEXT NOT NULL REFERENCES members (member_id),
    session_id      INTEGER NOT NULL REFERENCES sessions (session_id),
    kiosk_id        TEXT NOT NULL,
    event_id        TEXT NOT NULL UNIQUE,
    checked_out_at  TEXT NOT NULL,
    due_at          TEXT NOT NULL,
    returned_at     TEXT,
    return_event_id TEXT UNIQUE,
    return_kiosk_id TEXT
);
INSERT INTO checkouts_by_id
SELECT checkout_id, item_id, member_id, session_id, kiosk_id,
       CASE WHEN (SELECT count(*) FROM checkouts o WHERE o.event_id = c.event_id) > 1
            THEN kiosk_id || '/' || event_id ELSE event_id END,
       checked_out_at, due_at, returned_at,
       CASE WHEN (SELECT count(*) FROM checkouts o WHERE o.return_event_id = c.return_event_id) > 1
            THEN return_kiosk_id || '/' || return_event_id ELSE return_event_id END,
       return_kiosk_id
FROM checkouts c;
DROP TABLE checkouts;
ALTER TABLE checkouts_by_id RENAME TO checkouts;
CREATE UNIQUE INDEX checkouts_one_open_per_item ON checkouts (item_id) WHERE returned_at IS NULL;
CREATE INDEX checkouts_open_by_member ON checkouts (member_id) WHERE returned_at IS NULL;
