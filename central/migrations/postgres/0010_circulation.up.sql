-- Circulation: loan policies per category, training records, lending agreements, holds
-- (a waitlist allocated at return), reservations for dates, renewals and repair tickets.
-- One row of library-wide settings; a category's NULL falls back to the item's own
-- loan_days and these defaults.
CREATE TABLE circulation_settings (
    settings_id           INTEGER PRIMARY KEY CHECK (settings_id = 1),
    hold_hours            INTEGER NOT NULL DEFAULT 48 CHECK (hold_hours > 0),
    overdue_block_days    INTEGER NOT NULL DEFAULT 14 CHECK (overdue_block_days >= 0),
    renew_grace_hours     INTEGER NOT NULL DEFAULT 24 CHECK (renew_grace_hours >= 0),
    reservation_min_hours INTEGER NOT NULL DEFAULT 24 CHECK (reservation_min_hours >= 0)
);
INSERT INTO circulation_settings (settings_id) VALUES (1);

CREATE TABLE categories (
    name                TEXT PRIMARY KEY,
    loan_days           INTEGER CHECK (loan_days > 0),
    max_renewals        INTEGER NOT NULL DEFAULT 2 CHECK (max_renewals >= 0),
    max_out             INTEGER CHECK (max_out > 0),
    needs_training      BOOLEAN NOT NULL DEFAULT FALSE,
    needs_agreement     BOOLEAN NOT NULL DEFAULT FALSE,
    inspection_required BOOLEAN NOT NULL DEFAULT FALSE,
    buffer_hours        INTEGER NOT NULL DEFAULT 0 CHECK (buffer_hours >= 0)
);
-- No foreign key: SQLite cannot drop a referencing column (services check the name).
ALTER TABLE items ADD COLUMN category TEXT;
ALTER TABLE checkouts ADD COLUMN renewals INTEGER NOT NULL DEFAULT 0;

CREATE TABLE member_training (
    member_id   TEXT NOT NULL REFERENCES members (member_id),
    category    TEXT NOT NULL REFERENCES categories (name),
    recorded_by TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (member_id, category)
);

-- The lending agreement: at most one version is current; a member must accept it.
CREATE TABLE agreements (
    version    INTEGER PRIMARY KEY,
    text       TEXT NOT NULL,
    current    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX agreements_one_current ON agreements (current) WHERE current;
CREATE TABLE member_agreements (
    member_id   TEXT NOT NULL REFERENCES members (member_id),
    version     INTEGER NOT NULL REFERENCES agreements (version),
    accepted_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (member_id, version)
);

-- The waitlist. notified_at is set by the reminders when the hold-ready mail went out; a
-- ready hold never expires before someone told the member (central/circulation.py).
CREATE TABLE holds (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id    TEXT NOT NULL REFERENCES items (item_id),
    member_id  TEXT NOT NULL REFERENCES members (member_id),
    placed_at  TIMESTAMPTZ NOT NULL,
    placed_via TEXT NOT NULL CHECK (placed_via IN ('kiosk', 'app', 'admin')),
    state      TEXT NOT NULL DEFAULT 'waiting'
               CHECK (state IN ('waiting', 'ready', 'fulfilled', 'cancelled', 'expired')),
    ready_at    TIMESTAMPTZ,
    notified_at TIMESTAMPTZ,
    closed_at   TIMESTAMPTZ
);
-- One open hold per member and item; one ready hold per item (allocated at most once).
CREATE UNIQUE INDEX holds_one_open ON holds (item_id, member_id)
    WHERE state IN ('waiting', 'ready');
CREATE UNIQUE INDEX holds_one_ready ON holds (item_id) WHERE state = 'ready';

CREATE TABLE reservations (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id    TEXT NOT NULL REFERENCES items (item_id),
    member_id  TEXT NOT NULL REFERENCES members (member_id),
    starts_at  TIMESTAMPTZ NOT NULL,
    ends_at    TIMESTAMPTZ NOT NULL,
    state      TEXT NOT NULL DEFAULT 'booked' CHECK (state IN ('booked', 'cancelled')),
    created_at TIMESTAMPTZ NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX reservations_by_item ON reservations (item_id, starts_at);

-- A problem reported at return (or found by staff): the item waits in maintenance.
CREATE TABLE repair_tickets (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id     TEXT NOT NULL REFERENCES items (item_id),
    kiosk_id    TEXT,
    member_id   TEXT,
    checkout_id BIGINT,
    event_id    TEXT UNIQUE,
    opened_at   TIMESTAMPTZ NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    closed_at   TIMESTAMPTZ,
    closed_by   TEXT
);
