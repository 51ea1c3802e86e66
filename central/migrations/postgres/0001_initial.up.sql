-- Library data, passes, sessions, checkouts, scan events and the audit log.
CREATE TABLE shelves (
    shelf_id   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE kiosks (
    kiosk_id          TEXT PRIMARY KEY,
    shelf_id          TEXT NOT NULL REFERENCES shelves (shelf_id),
    retired           BOOLEAN NOT NULL DEFAULT FALSE,
    blocked_until     TIMESTAMPTZ,
    config_version    INTEGER NOT NULL DEFAULT 1,
    session_timeout_s DOUBLE PRECISION NOT NULL DEFAULT 60
                      CHECK (session_timeout_s > 0 AND session_timeout_s <= 3600),
    created_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE members (
    member_id      TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    suspended      BOOLEAN NOT NULL DEFAULT FALSE,
    checkout_limit INTEGER NOT NULL DEFAULT 5 CHECK (checkout_limit >= 0),
    created_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE items (
    item_id          TEXT PRIMARY KEY,
    shelf_id         TEXT NOT NULL REFERENCES shelves (shelf_id),
    name             TEXT NOT NULL,
    label_version    INTEGER NOT NULL DEFAULT 1,
    state            TEXT NOT NULL DEFAULT 'available'
                     CHECK (state IN ('available', 'maintenance', 'retired')),
    loan_days        INTEGER NOT NULL DEFAULT 14 CHECK (loan_days > 0),
    availability_seq BIGINT NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ NOT NULL
);

-- Member passes (the seed plan's qr_codes): single use is consumed_at set once.
CREATE TABLE qr_codes (
    pass_id        TEXT PRIMARY KEY,
    member_id      TEXT NOT NULL REFERENCES members (member_id),
    issued_at      TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    consumed_at    TIMESTAMPTZ,
    consumed_by    TEXT,
    invalidated_at TIMESTAMPTZ
);

CREATE TABLE sessions (
    session_id BIGSERIAL PRIMARY KEY,
    kiosk_id   TEXT NOT NULL REFERENCES kiosks (kiosk_id),
    member_id  TEXT NOT NULL REFERENCES members (member_id),
    -- A pass opens at most one session, whatever the code above does.
    pass_id    TEXT NOT NULL UNIQUE REFERENCES qr_codes (pass_id),
    opened_at  TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    closed_at  TIMESTAMPTZ
);
CREATE UNIQUE INDEX sessions_one_open_per_kiosk ON sessions (kiosk_id) WHERE closed_at IS NULL;

CREATE TABLE checkouts (
    checkout_id     BIGSERIAL PRIMARY KEY,
    item_id         TEXT NOT NULL REFERENCES items (item_id),
    member_id       TEXT NOT NULL REFERENCES members (member_id),
    session_id      BIGINT NOT NULL REFERENCES sessions (session_id),
    kiosk_id        TEXT NOT NULL,
    event_id        TEXT NOT NULL UNIQUE,
    checked_out_at  TIMESTAMPTZ NOT NULL,
    due_at          TIMESTAMPTZ NOT NULL,
    returned_at     TIMESTAMPTZ,
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
    scanned_at TIMESTAMPTZ NOT NULL,
    decided_at TIMESTAMPTZ NOT NULL,
    reason     TEXT NOT NULL,
    verdict    TEXT NOT NULL
);

CREATE TABLE qr_audit_log (
    seq       BIGSERIAL PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    reason    TEXT,
    kiosk_id  TEXT,
    member_id TEXT,
    item_id   TEXT,
    event_id  TEXT,
    detail    TEXT NOT NULL DEFAULT '{}'
);
CREATE FUNCTION qr_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'qr_audit_log is append-only';
END;
$$;
CREATE TRIGGER qr_audit_log_no_change BEFORE UPDATE OR DELETE ON qr_audit_log
FOR EACH ROW EXECUTE FUNCTION qr_audit_log_append_only();
CREATE TRIGGER qr_audit_log_no_truncate BEFORE TRUNCATE ON qr_audit_log
FOR EACH STATEMENT EXECUTE FUNCTION qr_audit_log_append_only();
