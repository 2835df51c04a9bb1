-- What /sync serves besides room events: filters, account data and to-device messages.
-- Each stream has its own AUTOINCREMENT position; a sync token carries one position per stream.

CREATE TABLE filters (
    user_id    TEXT NOT NULL,
    filter_id  INTEGER NOT NULL,              -- per user, from 0
    filter     TEXT NOT NULL,                 -- the filter's JSON as stored
    PRIMARY KEY (user_id, filter_id)
) WITHOUT ROWID;

-- Global (room_id '') and per-room account data; each write takes a new stream position.
CREATE TABLE account_data (
    stream_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT NOT NULL,
    room_id    TEXT NOT NULL DEFAULT '',
    type       TEXT NOT NULL,
    content    TEXT NOT NULL,                 -- JSON; '{}' once deleted
    UNIQUE (user_id, room_id, type)
);
CREATE INDEX account_data_by_user ON account_data (user_id, stream_id);

-- To-device messages waiting for their device. A message is deleted once a sync from a token
-- past it shows the device received it.
CREATE TABLE to_device (
    stream_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    sender     TEXT NOT NULL,
    type       TEXT NOT NULL,
    content    TEXT NOT NULL
);
CREATE INDEX to_device_by_device ON to_device (user_id, device_id, stream_id);

-- sendToDevice transaction IDs, for idempotent retries.
CREATE TABLE to_device_txns (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    txn_id     TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
) WITHOUT ROWID;
