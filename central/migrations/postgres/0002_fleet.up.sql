-- Broker accounts (Mosquitto users) and one-time enrolment claims for zero-touch kiosks.
CREATE TABLE broker_accounts (
    username      TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('kiosk', 'central')),
    password_hash TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE enrolments (
    claim_id   TEXT PRIMARY KEY,
    kiosk_id   TEXT NOT NULL,
    shelf_id   TEXT NOT NULL REFERENCES shelves (shelf_id),
    issued_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    claimed_at TIMESTAMPTZ
);
