-- Accounts, devices, access tokens, profiles, user-interactive auth sessions and rate limits.
-- Timestamps are milliseconds since the Unix epoch. Booleans are 0 or 1.

CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,
    password_hash TEXT,                       -- a PHC string; NULL when password login is off
    is_guest      INTEGER NOT NULL DEFAULT 0,
    deactivated   INTEGER NOT NULL DEFAULT 0,
    created_ms    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE devices (
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    display_name TEXT,
    last_seen_ts INTEGER,
    last_seen_ip TEXT,
    created_ms   INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;

-- Only the SHA-256 of a token is stored; the token itself is known to its client alone.
CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX access_tokens_by_device ON access_tokens (user_id, device_id);

-- One row per profile field; the value is JSON.
CREATE TABLE profile_fields (
    user_id TEXT NOT NULL,
    field   TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (user_id, field)
) WITHOUT ROWID;

CREATE TABLE uia_sessions (
    session_id TEXT PRIMARY KEY,
    method     TEXT NOT NULL,                 -- the request the session authorises
    path       TEXT NOT NULL,
    completed  TEXT NOT NULL DEFAULT '[]',    -- JSON array of completed stage types
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX uia_sessions_by_age ON uia_sessions (created_ms);

-- Leaky buckets, one per key such as "login:ip:203.0.113.9".
CREATE TABLE rate_limits (
    key        TEXT PRIMARY KEY,
    level      REAL NOT NULL,
    allowed    INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX rate_limits_by_age ON rate_limits (updated_ms);
