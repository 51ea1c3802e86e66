-- Library data, passes, sessions, checkouts, scan events and the audit log.
CREATE TABLE shelves (
    shelf_id   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE kiosks (
    kiosk_id          TEXT PRIMARY KEY,
    shelf_id          TEXT NOT NULL REFERENCES shelves (shelf_id),
    retired           INTEGER NOT NULL DEFAULT 0 CHECK (retired IN (0, 1)),
    blocked_until     TEXT,
    config_version    INTEGER NOT NULL DEFAULT 1,
    session_timeout_s REAL NOT NULL DEFAULT 60 CHECK (session_timeout_s > 0 AND session_timeout_s <= 3600),
    created_at        TEXT NOT NULL
);

CREATE TABLE members (
    member_id      TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    suspended      INTEGER NOT NULL DEFAULT 0 CHECK (suspended IN (0, 1)),
    checkout_limit INTEGER NOT NULL DEFAULT 5 CHECK (checkout_limit >= 0),
    created_at     TEXT NOT NULL
);

CREATE TABLE items (
    item_id          TEXT PRIMARY KEY,
    shelf_id         TEXT NOT NULL REFERENCES shelves (shelf_id),
    name             TEXT NOT NULL,
    label_version    INTEGER NOT NULL DEFAULT 1,
    state            TEXT NOT NULL DEFAULT 'available'
                     CHECK (state IN ('available', 'maintenance', 'retired')),
    loan_days        INTEGER NOT NULL DEFAULT 14 CHECK (loan_days > 0),
    availability_seq INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL
);

-- Member passes (the seed plan's qr_codes): single use is consumed_at set once.
CREATE TABLE qr_codes (
    pass_id        TEXT PRIMARY KEY,
    member_id      TEXT NOT NULL REFERENCES members (member_id),
    issued_at      TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    consumed_at    TEXT,
    consumed_by    TEXT,
    invalidated_at TEXT
);

CREATE TABLE sessions (
    session_id INTEGER PRIMARY KEY AUTOINCREMENT,
    kiosk_id   TEXT NOT NULL REFERENCES kiosks (kiosk_id),
    member_id  TEXT NOT NULL REFERENCES members (member_id),
    -- A pass opens at most one session, whatever the code above does.
    pass_id    TEXT NOT NULL UNIQUE REFERENCES qr_codes (pass_id),
    opened_at  TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    closed_at  TEXT
);
CREATE UNIQUE INDEX sessions_one_open_per_kiosk ON sessions (kiosk_id) WHERE closed_at IS NULL;

CREATE TABLE checkouts (
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
-- An item has at most one open checkout: the database refuses a second.
CREATE UNIQUE INDEX checkouts_one_open_per_item ON checkouts (item_id) WHERE returned_at IS NULL;
CREATE INDEX checkouts_open_by_member ON checkouts (member_id) WHERE returned_at IS NULL;

-- Every event id is decided once; a redelivery reads the stored verdict back.
CREATE TABLE scan_events (
    event_id   TEXT PRIMARY KEY,
    kiosk_id   TEXT NOT NULL,
    code_hash  TEXT,
    scanned_at TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    reason     TEXT NOT NULL,
    verdict    TEXT NOT NULL
);

CREATE TABLE qr_audit_log (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    reason    TEXT,
    kiosk_id  TEXT,
    member_id TEXT,
    item_id   TEXT,
    event_id  TEXT,
    detail    TEXT NOT NULL DEFAULT '{}'
);
CREATE TRIGGER qr_audit_log_no_update BEFORE UPDATE ON qr_audit_log
BEGIN SELECT RAISE(ABORT, 'qr_audit_log is append-only'); END;
CREATE TRIGGER qr_audit_log_no_delete BEFORE DELETE ON qr_audit_log
BEGIN SELECT RAISE(ABORT, 'qr_audit_log is append-only'); END;
