-- Broker accounts (Mosquitto users) and one-time enrolment claims for zero-touch kiosks.
CREATE TABLE broker_accounts (
    username      TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('kiosk', 'central')),
    password_hash TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE enrolments (
    claim_id   TEXT PRIMARY KEY,
    kiosk_id   TEXT NOT NULL,
    shelf_id   TEXT NOT NULL REFERENCES shelves (shelf_id),
    issued_at  TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    claimed_at TEXT
);
