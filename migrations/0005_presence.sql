-- Each user's presence, a stream like receipts: every change takes a new AUTOINCREMENT position
-- (INSERT OR REPLACE deletes the old row and inserts a new one), so a sync finds changes by it.
CREATE TABLE presence (
    stream_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        TEXT NOT NULL UNIQUE,
    presence       TEXT NOT NULL,              -- online, unavailable or offline
    status_msg     TEXT,                       -- NULL when none is set
    last_active_ts INTEGER NOT NULL            -- ms; the last pro-active event of the user
);

-- The state each device's syncs ask for (`set_presence`). A user's presence follows the most
-- available of its existing devices when one of them changes, so two devices that ask for
-- different states settle instead of overriding each other at every sync.
CREATE TABLE presence_devices (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    presence  TEXT NOT NULL,                   -- online or unavailable
    PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;
