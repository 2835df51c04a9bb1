-- The admin API's media quarantine, as Synapse's: who quarantined a file (`quarantined` stays the
-- flag every download checks), and files protected from quarantine.
ALTER TABLE media ADD COLUMN quarantined_by TEXT;
ALTER TABLE media ADD COLUMN safe_from_quarantine INTEGER NOT NULL DEFAULT 0;

-- Users deactivated with `erase`, as Synapse's `erased_users`: their events are served redacted
-- to whoever was not in the room when they were sent.
CREATE TABLE erased_users (
    user_id TEXT PRIMARY KEY
) WITHOUT ROWID;

-- A deletion's status is also 'shutting_down' while its members leave (room_deletion.rs).
