-- The staff console: staff accounts with a role, their sign-in links, passkeys and sessions.
-- Tables of their own, not the members' app's with a "kind" column: a member's cookie,
-- passkey or link can never be read as staff by a query that forgot the kind, and a staff
-- account needs no member row.
CREATE TABLE staff (
    staff_id   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    email      TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL CHECK (role IN ('volunteer', 'admin')),
    disabled   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL
);

-- One-time sign-in links and WebAuthn challenges, by hash, spent once (as web_tickets).
CREATE TABLE staff_tickets (
    ticket_hash TEXT PRIMARY KEY,
    purpose     TEXT NOT NULL CHECK (purpose IN ('link', 'register', 'login')),
    staff_id    TEXT REFERENCES staff (staff_id),
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);

CREATE TABLE staff_passkeys (
    credential_id TEXT PRIMARY KEY,
    staff_id      TEXT NOT NULL REFERENCES staff (staff_id),
    public_key    BYTEA NOT NULL,
    sign_count    BIGINT NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE staff_sessions (
    session_hash TEXT PRIMARY KEY,
    staff_id     TEXT NOT NULL REFERENCES staff (staff_id),
    csrf         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);
