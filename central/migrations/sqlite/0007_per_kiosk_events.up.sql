-- Event ids are minted by kiosks, so they are unique per kiosk only: idempotency is keyed
-- by (kiosk, event id). Keyed by event id alone, a kiosk sending another kiosk's event id
-- got that kiosk's verdict back, and an honest scan whose id another kiosk used first was
-- never decided. SQLite cannot change a primary key in place: the table is rebuilt.
CREATE TABLE scan_events_by_kiosk (
    event_id   TEXT NOT NULL,
    kiosk_id   TEXT NOT NULL,
    code_hash  TEXT,
    scanned_at TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    reason     TEXT NOT NULL,
    verdict    TEXT NOT NULL,
    PRIMARY KEY (kiosk_id, event_id)
);
INSERT INTO scan_events_by_kiosk
SELECT event_id, kiosk_id, code_hash, scanned_at, decided_at, reason, verdict FROM scan_events;
DROP TABLE scan_events;
ALTER TABLE scan_events_by_kiosk RENAME TO scan_events;
CREATE INDEX scan_events_decided_at ON scan_events (decided_at);
CREATE INDEX scan_events_by_kiosk_time ON scan_events (kiosk_id, decided_at);
-- Checkouts remember the event that opened and closed them; those ids are unique per
-- kiosk too (the same rebuild, the same columns, the same indexes).
CREATE TABLE checkouts_by_kiosk (
    checkout_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id         TEXT NOT NULL REFERENCES items (item_id),
    member_id       TEXT NOT NULL REFERENCES members (member_id),
    session_id      INTEGER NOT NULL REFERENCES sessions (session_id),
    kiosk_id        TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    checked_out_at  TEXT NOT NULL,
    due_at          TEXT NOT NULL,
    returned_at     TEXT,
    return_event_id TEXT,
    return_kiosk_id TEXT,
    UNIQUE (kiosk_id, event_id),
    UNIQUE (return_kiosk_id, return_event_id)
);
INSERT INTO checkouts_by_kiosk
SELECT checkout_id, item_id, member_id, session_id, kiosk_id, event_id, checked_out_at, due_at,
       returned_at, return_event_id, return_kiosk_id
FROM checkouts;
DROP TABLE checkouts;
ALTER TABLE checkouts_by_kiosk RENAME TO checkouts;
CREATE UNIQUE INDEX checkouts_one_open_per_item ON checkouts (item_id) WHERE returned_at IS NULL;
CREATE INDEX checkouts_open_by_member ON checkouts (member_id) WHERE returned_at IS NULL;
-- A kiosk that takes returns of any shelf's items (a front desk, a drop box); others take
-- returns of their own shelf's items only.
ALTER TABLE kiosks ADD COLUMN return_point INTEGER NOT NULL DEFAULT 0 CHECK (return_point IN (0, 1));
