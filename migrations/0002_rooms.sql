-- Rooms, their events and state, transaction IDs, aliases and the server's signing key.
-- Timestamps are milliseconds since the Unix epoch. Booleans are 0 or 1.

-- The server's ed25519 signing keys; the newest is the one in use.
CREATE TABLE server_signing_keys (
    key_id     TEXT PRIMARY KEY,              -- "ed25519:<version>"
    seed       TEXT NOT NULL,                 -- the 32-byte secret seed, unpadded base64
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE rooms (
    room_id      TEXT PRIMARY KEY,
    room_version TEXT NOT NULL,
    creator      TEXT NOT NULL,
    is_public    INTEGER NOT NULL DEFAULT 0,  -- listed in the public room directory
    created_ms   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX rooms_public ON rooms (is_public, room_id) WHERE is_public = 1;

-- Every accepted event. The rowid is the global stream ordering: it grows strictly across all
-- rooms in commit order, so a reader that sees position N sees every position below it.
-- Events of one room form a chain, so (room_id, depth) is unique: a second writer of a room
-- could never commit a fork.
CREATE TABLE events (
    stream_ordering  INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id         TEXT NOT NULL UNIQUE,
    room_id          TEXT NOT NULL,
    depth            INTEGER NOT NULL,
    type             TEXT NOT NULL,
    state_key        TEXT,                    -- NULL for message events
    sender           TEXT NOT NULL,
    origin_server_ts INTEGER NOT NULL,
    membership       TEXT,                    -- content.membership of m.room.member events
    relates_to       TEXT,                    -- content["m.relates_to"].event_id
    rel_type         TEXT,                    -- content["m.relates_to"].rel_type
    contains_url     INTEGER NOT NULL DEFAULT 0,
    txn_device_id    TEXT,                    -- the sending device, when it gave a transaction ID
    txn_id           TEXT,
    prev_state       TEXT,                    -- JSON {event_id, content, sender} of the state replaced
    redacted_by      TEXT,                    -- the redaction event applied to this one
    json             TEXT NOT NULL,           -- the full signed PDU
    UNIQUE (room_id, depth)
);
CREATE INDEX events_by_room ON events (room_id, stream_ordering);
CREATE INDEX events_state ON events (room_id, type, state_key, stream_ordering) WHERE state_key IS NOT NULL;
CREATE INDEX events_memberships ON events (state_key, stream_ordering) WHERE type = 'm.room.member';
CREATE INDEX events_relations ON events (relates_to, stream_ordering) WHERE relates_to IS NOT NULL;
CREATE INDEX events_threads ON events (room_id, rel_type, stream_ordering) WHERE rel_type IS NOT NULL;
CREATE INDEX events_by_time ON events (room_id, origin_server_ts);

-- The state of each room after its newest event.
CREATE TABLE current_state (
    room_id         TEXT NOT NULL,
    type            TEXT NOT NULL,
    state_key       TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    stream_ordering INTEGER NOT NULL,
    membership      TEXT,                     -- for m.room.member
    PRIMARY KEY (room_id, type, state_key)
) WITHOUT ROWID;
CREATE INDEX current_memberships ON current_state (state_key, membership) WHERE type = 'm.room.member';

-- Transaction IDs of sends and redactions, for idempotent retries. Scoped per device and per
-- endpoint: `scope` is the room and the endpoint kind.
CREATE TABLE event_txns (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    txn_id     TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id, scope, txn_id)
) WITHOUT ROWID;

-- Rooms a user has forgotten after leaving.
CREATE TABLE forgotten_rooms (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    PRIMARY KEY (user_id, room_id)
) WITHOUT ROWID;

CREATE TABLE room_aliases (
    alias      TEXT PRIMARY KEY,
    room_id    TEXT NOT NULL,
    creator    TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX room_aliases_by_room ON room_aliases (room_id);
