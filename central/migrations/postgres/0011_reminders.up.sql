-- E-mail reminders: settings, the delivery log, the claims that make "nothing twice", unsubscribes.

-- One row: what staff set (cs-admin reminders settings set).
CREATE TABLE reminder_settings (
    name          TEXT PRIMARY KEY CHECK (name = 'reminders'),
    enabled       BOOLEAN NOT NULL DEFAULT TRUE,
    digest_hour   INTEGER NOT NULL DEFAULT 8 CHECK (digest_hour BETWEEN 0 AND 23),
    timezone      TEXT NOT NULL DEFAULT 'UTC',
    due_soon_days INTEGER NOT NULL DEFAULT 2 CHECK (due_soon_days BETWEEN 0 AND 30),
    overdue_days  TEXT NOT NULL DEFAULT '1,7,14',
    changed_by    TEXT NOT NULL DEFAULT 'system:migration',
    changed_at    TIMESTAMPTZ NOT NULL DEFAULT '1970-01-01T00:00:00Z'
);
INSERT INTO reminder_settings (name) VALUES ('reminders');

-- Every mail claimed, and what became of it; ``lines`` (JSON) are the loans or holds it names.
CREATE TABLE reminder_deliveries (
    delivery_id     BIGSERIAL PRIMARY KEY,
    member_id       TEXT NOT NULL REFERENCES members (member_id),
    kind            TEXT NOT NULL CHECK (kind IN ('digest', 'hold_ready', 'overdue')),
    step            INTEGER,
    email           TEXT,
    lines           TEXT NOT NULL,
    status          TEXT NOT NULL
                    CHECK (status IN ('queued', 'sent', 'failed', 'bounced', 'no_address',
                                      'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    next_attempt_at TIMESTAMPTZ,
    sent_at         TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX reminder_deliveries_pending ON reminder_deliveries (status, next_attempt_at);
CREATE INDEX reminder_deliveries_by_member ON reminder_deliveries (member_id, delivery_id);

-- The primary key is the guard: a mail (member + kind + local day) and each line in it
-- (loan + kind + escalation day, or hold) is claimed once, in the transaction that queues it.
CREATE TABLE reminder_claims (
    claim       TEXT PRIMARY KEY,
    delivery_id BIGINT NOT NULL REFERENCES reminder_deliveries (delivery_id),
    claimed_at  TIMESTAMPTZ NOT NULL
);

-- The token in each mail's unsubscribe link; unsubscribed_at stops digests and overdue mail.
CREATE TABLE reminder_subscriptions (
    member_id       TEXT PRIMARY KEY REFERENCES members (member_id),
    token           TEXT NOT NULL UNIQUE,
    unsubscribed_at TIMESTAMPTZ
);
