-- Ephemeral room data that /sync serves under `ephemeral`: read receipts and typing.
-- Each table is its own stream: a row takes a new AUTOINCREMENT position on every change
-- (INSERT OR REPLACE deletes the old row and inserts a new one), so positions only grow and a
-- sync token can carry one position per stream. The fully read marker is room account data.

-- The latest receipt of each (room, type, user, thread): `m.read` and `m.read.private`.
CREATE TABLE receipts (
    stream_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id      TEXT NOT NULL,
    receipt_type TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    thread_id    TEXT NOT NULL DEFAULT '',    -- '' for an unthreaded receipt
    event_id     TEXT NOT NULL,
    event_stream INTEGER NOT NULL,            -- the event's stream_ordering: receipts only move forward
    ts           INTEGER NOT NULL,
    UNIQUE (room_id, receipt_type, user_id, thread_id)
);
CREATE INDEX receipts_by_room ON receipts (room_id, stream_id);

-- Who types where. A row is kept after its user stops (expires_ms 0) or its time runs out, so
-- that a stop is a change with a position; at most one row per (room, user).
CREATE TABLE typing (
    stream_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id    TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,              -- typing until then; 0 once stopped
    UNIQUE (room_id, user_id)
);
CREATE INDEX typing_by_room ON typing (room_id, stream_id);
