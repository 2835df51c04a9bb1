-- Server administration: admins and user types, puppet tokens, client addresses, monthly active
-- users (as Synapse keeps them), third-party IDs set by admins, registration tokens, the
-- shared-secret registration's nonces and the server notices rooms.

ALTER TABLE users ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN user_type TEXT;            -- NULL, 'support' or 'bot'
ALTER TABLE users ADD COLUMN appservice_id TEXT;        -- the service that registered the user

-- A puppet token acts as `user_id` for the admin `puppeted_by`; it has no device (device_id '').
ALTER TABLE access_tokens ADD COLUMN puppeted_by TEXT;
ALTER TABLE access_tokens ADD COLUMN expires_ms INTEGER;
-- When the token's use was last recorded (client address, last seen, monthly activity): at most
-- once a minute.
ALTER TABLE access_tokens ADD COLUMN last_used_ms INTEGER;

-- Client addresses, as Synapse's `user_ips`: one row per user, device, address and user agent.
CREATE TABLE user_ips (
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    ip           TEXT NOT NULL,
    user_agent   TEXT NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id, ip, user_agent)
) WITHOUT ROWID;

-- Users active in the last 30 days, as Synapse's `monthly_active_users`.
CREATE TABLE monthly_active_users (
    user_id   TEXT PRIMARY KEY,
    timestamp INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX monthly_active_users_by_age ON monthly_active_users (timestamp);

-- Third-party IDs, set through the admin API.
CREATE TABLE user_threepids (
    user_id      TEXT NOT NULL,
    medium       TEXT NOT NULL,
    address      TEXT NOT NULL,
    validated_ms INTEGER NOT NULL,
    added_ms     INTEGER NOT NULL,
    PRIMARY KEY (medium, address)
) WITHOUT ROWID;
CREATE INDEX user_threepids_by_user ON user_threepids (user_id);

CREATE TABLE registration_tokens (
    token        TEXT PRIMARY KEY,
    uses_allowed INTEGER,                     -- NULL: unlimited
    pending      INTEGER NOT NULL DEFAULT 0,  -- registrations started with it and not finished
    completed    INTEGER NOT NULL DEFAULT 0,
    expiry_time  INTEGER                      -- ms; NULL: never
) WITHOUT ROWID;

-- Nonces of `/_synapse/admin/v1/register`, each good once, for a minute.
CREATE TABLE admin_register_nonces (
    nonce      TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- Each user's server notices room, and whether the usage-limit notice is pinned in it.
CREATE TABLE server_notice_rooms (
    user_id          TEXT PRIMARY KEY,
    room_id          TEXT NOT NULL,
    limit_notice_id  TEXT                     -- the pinned m.server_notice.usage_limit_reached
) WITHOUT ROWID;

-- The registration token a registration's auth session used, counted when it completes.
ALTER TABLE uia_sessions ADD COLUMN registration_token TEXT;

-- Rooms an admin blocked (or purged): nobody may join, knock or be invited.
CREATE TABLE blocked_rooms (
    room_id    TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,                 -- the admin
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- Room deletions of the admin API and how they ended (`delete_status`).
CREATE TABLE room_deletions (
    delete_id  TEXT PRIMARY KEY,
    room_id    TEXT NOT NULL,
    status     TEXT NOT NULL,                 -- 'complete' or 'failed'
    result     TEXT NOT NULL,                 -- JSON: Synapse's `shutdown_room`
    error      TEXT,
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX room_deletions_by_room ON room_deletions (room_id);
