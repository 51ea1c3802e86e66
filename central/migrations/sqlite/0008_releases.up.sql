-- Fleet updates: kiosk releases (the signed artifact itself, so every central instance
-- serves it), their staged rollouts, and each kiosk's part in a rollout.
CREATE TABLE releases (
    version     TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL UNIQUE,
    size        INTEGER NOT NULL CHECK (size > 0),
    signature   TEXT NOT NULL,
    artifact    BLOB NOT NULL,
    notes       TEXT NOT NULL DEFAULT '',
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE release_rollouts (
    rollout_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    version        TEXT NOT NULL REFERENCES releases (version),
    state          TEXT NOT NULL
                   CHECK (state IN ('running', 'paused', 'halted', 'aborted', 'done')),
    percent        INTEGER NOT NULL CHECK (percent BETWEEN 0 AND 100),
    kiosks         TEXT NOT NULL DEFAULT '[]',
    abort_percent  INTEGER NOT NULL CHECK (abort_percent BETWEEN 1 AND 100),
    abort_min      INTEGER NOT NULL CHECK (abort_min >= 1),
    reason         TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    changed_at     TEXT NOT NULL,
    halt_reason    TEXT
);
-- One rollout in flight at a time: two at once would offer a kiosk two versions.
CREATE UNIQUE INDEX release_rollouts_one_active ON release_rollouts ((state IN ('running', 'paused')))
    WHERE state IN ('running', 'paused');

CREATE TABLE kiosk_updates (
    rollout_id  INTEGER NOT NULL REFERENCES release_rollouts (rollout_id),
    kiosk_id    TEXT NOT NULL REFERENCES kiosks (kiosk_id),
    state       TEXT NOT NULL CHECK (state IN ('offered', 'downloading', 'installed', 'healthy',
                                               'rolled_back', 'refused')),
    reason      TEXT,
    offers      INTEGER NOT NULL DEFAULT 0,
    offered_at  TEXT,
    changed_at  TEXT NOT NULL,
    PRIMARY KEY (rollout_id, kiosk_id)
);
