-- Simplified sliding sync (MSC4186): what each connection of a device was sent, per position.
-- A request names the position it continues from; the server answers with a new one and forgets
-- the ones before the position named (the client holds the newer answer).
CREATE TABLE sliding_sync_positions (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    conn_id    TEXT NOT NULL,
    pos        INTEGER NOT NULL,              -- per connection, increasing
    streams    TEXT NOT NULL,                 -- the sync token of the streams the response covered
    rooms      TEXT NOT NULL,                 -- JSON: what each room was sent, see src/client/sliding_sync/
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id, conn_id, pos)
) WITHOUT ROWID;

CREATE TRIGGER sliding_sync_device_deleted AFTER DELETE ON devices BEGIN
    DELETE FROM sliding_sync_positions WHERE user_id = OLD.user_id AND device_id = OLD.device_id;
END;
