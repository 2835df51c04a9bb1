-- Presence, finished: each user's UserSync object owns its presence (state, devices, timers) and
-- writes this table only when what others see changes, as Synapse's `should_notify` decides.
-- `currently_active` is kept as written, since the owner decides when it ends (a timer).
ALTER TABLE presence ADD COLUMN currently_active INTEGER NOT NULL DEFAULT 0;

-- The devices' wishes now live in the owner's memory, with the syncs that make them count.
DROP TABLE presence_devices;

-- Users whose next sync gets a full presence snapshot, as if it were an initial one, when its
-- `since` is before `stream_id` (Synapse's `users_to_send_full_presence_to`).
CREATE TABLE presence_full_sync (
    user_id   TEXT PRIMARY KEY,
    stream_id INTEGER NOT NULL
) WITHOUT ROWID;
