-- End-to-end encryption: device keys, one-time and fallback keys, cross-signing keys and the
-- signatures uploaded for them, the device list stream, and server-side key backups. The server
-- never sees plaintext: every key here is public, or encrypted by the client.

-- Each device's identity keys: the signed object of `/keys/upload`, as uploaded.
CREATE TABLE e2e_device_keys (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_json  TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;

-- One-time keys not yet claimed. The rowid grows with each upload, so a claim takes the lowest
-- of a (user, device, algorithm) and deletes it in the same statement: handed out once, in
-- upload order.
CREATE TABLE e2e_one_time_keys (
    id        INTEGER PRIMARY KEY,
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    key_json  TEXT NOT NULL,                  -- the key: a JSON string or a signed object
    UNIQUE (user_id, device_id, algorithm, key_id)
);
CREATE INDEX e2e_one_time_keys_by_age ON e2e_one_time_keys (user_id, device_id, algorithm, id);

-- One fallback key per (user, device, algorithm): handed out when no one-time key is left, and
-- then marked used until the device uploads another.
CREATE TABLE e2e_fallback_keys (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    key_json  TEXT NOT NULL,
    used      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id, algorithm)
) WITHOUT ROWID;

-- Each user's cross-signing keys as uploaded, one per usage.
CREATE TABLE e2e_cross_signing_keys (
    user_id  TEXT NOT NULL,
    usage    TEXT NOT NULL,                   -- master, self_signing or user_signing
    key_json TEXT NOT NULL,
    PRIMARY KEY (user_id, usage)
) WITHOUT ROWID;

-- Verified signatures from `/keys/signatures/upload`, merged into the signed key when it is
-- served: devices signed by their user's self-signing key, master keys signed by their user's
-- devices, and other users' master keys signed by a user-signing key (shown to its signer only).
CREATE TABLE e2e_cross_signing_signatures (
    target_user_id TEXT NOT NULL,
    target_key_id  TEXT NOT NULL,             -- a device ID, or a master key's public key
    signer_user_id TEXT NOT NULL,
    signer_key_id  TEXT NOT NULL,             -- "ed25519:<device ID or public key>"
    signature      TEXT NOT NULL,
    PRIMARY KEY (target_user_id, target_key_id, signer_user_id, signer_key_id)
) WITHOUT ROWID;

-- The device list stream: a user whose devices or keys changed, at a new AUTOINCREMENT position
-- (INSERT OR REPLACE moves the user's row). `visible_to` is '' for a change that everyone who
-- shares a room with the user sees, or the one user who sees it (their own signature of
-- another's master key).
CREATE TABLE device_lists_stream (
    stream_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT NOT NULL,
    visible_to TEXT NOT NULL DEFAULT '',
    UNIQUE (user_id, visible_to)
);

-- Every path that adds, renames or deletes a device changes the device list, and a deleted
-- device's keys and the signatures of them go with it, in the statement that deletes it. (A
-- trigger moves the user's row by DELETE and INSERT: an upsert into `devices` would impose its
-- conflict policy on an INSERT OR REPLACE here.)
CREATE TRIGGER devices_added AFTER INSERT ON devices BEGIN
    DELETE FROM device_lists_stream WHERE user_id = NEW.user_id AND visible_to = '';
    INSERT INTO device_lists_stream (user_id, visible_to) VALUES (NEW.user_id, '');
END;
CREATE TRIGGER devices_renamed AFTER UPDATE OF display_name ON devices
WHEN OLD.display_name IS NOT NEW.display_name BEGIN
    DELETE FROM device_lists_stream WHERE user_id = NEW.user_id AND visible_to = '';
    INSERT INTO device_lists_stream (user_id, visible_to) VALUES (NEW.user_id, '');
END;
CREATE TRIGGER devices_deleted AFTER DELETE ON devices BEGIN
    DELETE FROM e2e_device_keys WHERE user_id = OLD.user_id AND device_id = OLD.device_id;
    DELETE FROM e2e_one_time_keys WHERE user_id = OLD.user_id AND device_id = OLD.device_id;
    DELETE FROM e2e_fallback_keys WHERE user_id = OLD.user_id AND device_id = OLD.device_id;
    DELETE FROM e2e_cross_signing_signatures WHERE target_user_id = OLD.user_id AND target_key_id = OLD.device_id;
    DELETE FROM device_lists_stream WHERE user_id = OLD.user_id AND visible_to = '';
    INSERT INTO device_lists_stream (user_id, visible_to) VALUES (OLD.user_id, '');
END;

-- Server-side key backups: each user's versions, numbered from 1. Only the newest version that
-- is not deleted takes keys. `etag` changes whenever the version's keys do.
CREATE TABLE e2e_room_keys_versions (
    user_id   TEXT NOT NULL,
    version   INTEGER NOT NULL,
    algorithm TEXT NOT NULL,
    auth_data TEXT NOT NULL,                  -- JSON object
    etag      INTEGER NOT NULL DEFAULT 0,
    deleted   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, version)
) WITHOUT ROWID;

-- The backed-up sessions of each version; session_data is the client's encrypted JSON object.
CREATE TABLE e2e_room_keys (
    user_id             TEXT NOT NULL,
    version             INTEGER NOT NULL,
    room_id             TEXT NOT NULL,
    session_id          TEXT NOT NULL,
    first_message_index INTEGER NOT NULL,
    forwarded_count     INTEGER NOT NULL,
    is_verified         INTEGER NOT NULL,
    session_data        TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
) WITHOUT ROWID;
