-- Each user's presence, a stream like receipts: every change takes a new AUTOINCREMENT position
-- (INSERT OR REPLACE deletes the old row and inserts a new one), so a sync finds changes by it.
CREATE TABLE presence (
    stream_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        TEXT NOT NULL UNIQUE,
    presence       TEXT NOT NULL,              -- online, unavailable or offline
    status_msg     TEXT,                       -- NULL when none is set
    last_active_ts INTEGER NOT NULL            -- ms; the last pro-active event of the user
);
