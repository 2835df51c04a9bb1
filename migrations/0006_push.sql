-- Push notifications: what push rules decided for each user and event, and the pushers that
-- deliver it to push gateways. Push rules themselves are the user's `m.push_rules` account data.

-- One row per (user, event) whose push actions notify or highlight, written after the event's
-- commit by the room's writer. A row takes a new AUTOINCREMENT position of its own, the
-- notifications stream, so that a sync whose token predates the row shows the room's counts
-- again. A room's counts are its rows past the user's latest read receipt that covers them (an
-- unthreaded one, or one of the row's thread) and past the user's baseline in the room.
CREATE TABLE event_push_actions (
    stream_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         TEXT NOT NULL,
    room_id         TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    event_stream    INTEGER NOT NULL,           -- the event's stream_ordering
    thread_id       TEXT NOT NULL,              -- 'main', or the thread root's event ID
    notify          INTEGER NOT NULL,           -- 1 when the actions include `notify`
    highlight       INTEGER NOT NULL,           -- 1 when they set the `highlight` tweak
    actions         TEXT NOT NULL,              -- the JSON array of actions
    ts              INTEGER NOT NULL,           -- ms; when the notification was made
    UNIQUE (user_id, event_id)
);
CREATE INDEX event_push_actions_by_room ON event_push_actions (user_id, room_id, event_stream);
CREATE INDEX event_push_actions_by_user ON event_push_actions (user_id, event_stream);
CREATE INDEX event_push_actions_by_position ON event_push_actions (user_id, stream_id);

-- Where each member's unread counts start: the position of their latest join to the room (from
-- a membership other than join). Notifications before it, like the invite that brought them,
-- are read.
CREATE TABLE push_baselines (
    user_id      TEXT NOT NULL,
    room_id      TEXT NOT NULL,
    event_stream INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id)
) WITHOUT ROWID;

-- A user's pushers: where to deliver their notifications. (app_id, pushkey) is unique per user.
CREATE TABLE pushers (
    user_id             TEXT NOT NULL,
    app_id              TEXT NOT NULL,
    pushkey             TEXT NOT NULL,
    kind                TEXT NOT NULL,          -- 'http'
    app_display_name    TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag         TEXT,
    lang                TEXT NOT NULL,
    data                TEXT NOT NULL,          -- JSON object: url, format and the client's keys
    device_id           TEXT,                   -- the device that set it; deleting it removes the pusher
    pushkey_ts          INTEGER NOT NULL,       -- ms; when it was set
    PRIMARY KEY (user_id, app_id, pushkey)
) WITHOUT ROWID;
CREATE INDEX pushers_by_key ON pushers (app_id, pushkey);
CREATE INDEX pushers_by_device ON pushers (user_id, device_id);
