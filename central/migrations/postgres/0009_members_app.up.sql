-- The members' app: e-mail addresses, sign-in links, passkeys, web sessions, phones.
CREATE TABLE member_emails (
    member_id TEXT PRIMARY KEY REFERENCES members (member_id),
    email     TEXT NOT NULL UNIQUE
);

-- One-time sign-in links (e-mailed) and WebAuthn challenges: only their hash is stored,
-- and used_at is set once (a conditional update), so a replayed one finds nothing.
CREATE TABLE web_tickets (
    ticket_hash TEXT PRIMARY KEY,
    purpose     TEXT NOT NULL CHECK (purpose IN ('link', 'register', 'login')),
    member_id   TEXT REFERENCES members (member_id),
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);

CREATE TABLE passkeys (
    credential_id TEXT PRIMARY KEY,
    member_id     TEXT NOT NULL REFERENCES members (member_id),
    public_key    BYTEA NOT NULL,
    sign_count    BIGINT NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE web_sessions (
    session_hash TEXT PRIMARY KEY,
    member_id    TEXT NOT NULL REFERENCES members (member_id),
    csrf         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);

-- A phone that shows rotating passes; revoked_at stops its codes at the next scan.
CREATE TABLE member_devices (
    device_id  TEXT PRIMARY KEY,
    member_id  TEXT NOT NULL REFERENCES members (member_id),
    label      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX member_devices_by_member ON member_devices (member_id);

-- "Whose session is this verdict?" for the phone's after-scan line: the newest per kiosk.
CREATE INDEX sessions_newest_by_kiosk ON sessions (kiosk_id, session_id);
