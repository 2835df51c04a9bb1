//! `event_push_actions`: what a user's push rules decided for an event that notifies or
//! highlights them, one row per (user, event), and `push_baselines`: where each member's counts
//! start. A room's unread counts are its rows past the user's read receipt that covers them (the
//! newest unthreaded `m.read` or `m.read.private` receipt, or the newest one of the row's
//! thread) and past their latest join. Each row takes a position of its own (the notifications
//! stream), so a sync can tell that a room's counts changed after its token.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Db, Statement};
use crate::error::{internal, Result};

/// The position up to which the row's user has read the row's room or thread: their newest
/// receipt that covers it, or their latest join to the room if that is newer.
const READ_UPTO: &str = "max(coalesce((SELECT max(r.event_stream) FROM receipts r \
     WHERE r.room_id = a.room_id AND r.user_id = a.user_id AND r.receipt_type IN ('m.read', 'm.read.private') \
     AND r.thread_id IN ('', a.thread_id)), 0), coalesce((SELECT b.event_stream FROM push_baselines b \
     WHERE b.user_id = a.user_id AND b.room_id = a.room_id), 0))";
/// Makes a join event the joiner's baseline, unless it only changes a joined member's profile.
const SET_BASELINE: &str = "INSERT OR REPLACE INTO push_baselines (user_id, room_id, event_stream) \
     SELECT e.state_key, e.room_id, e.stream_ordering FROM events e WHERE e.event_id = ?1 AND e.membership = 'join' \
     AND coalesce(json_extract(e.prev_state, '$.content.membership'), '') != 'join'";
/// `?1` is a JSON array of [`NewAction`] objects of one room's event.
const INSERT: &str = "INSERT OR IGNORE INTO event_push_actions \
     (user_id, room_id, event_id, event_stream, thread_id, notify, highlight, actions, ts) \
     SELECT json_extract(value, '$.user_id'), json_extract(value, '$.room_id'), json_extract(value, '$.event_id'), \
     json_extract(value, '$.event_stream'), json_extract(value, '$.thread_id'), json_extract(value, '$.notify'), \
     json_extract(value, '$.highlight'), json_extract(value, '$.actions'), ?2 FROM json_each(?1)";
const ROOMS_CHANGED: &str =
    "SELECT DISTINCT room_id FROM event_push_actions INDEXED BY event_push_actions_by_position \
     WHERE user_id = ?1 AND stream_id > ?2 AND stream_id <= ?3";
pub(super) const MAX_STREAM_ID: &str = "SELECT coalesce(max(stream_id), 0) AS stream_id FROM event_push_actions";

/// One user's actions for one event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewAction {
    pub user_id: String,
    pub room_id: String,
    pub event_id: String,
    pub event_stream: u64,
    /// `main`, or the thread root's event ID.
    pub thread_id: String,
    pub notify: bool,
    pub highlight: bool,
    /// The JSON text of the actions array.
    pub actions: String,
}

/// Records `actions` at time `ts`; a row that exists already is kept, so a retry is harmless.
/// The rows go in as one JSON parameter, whatever their number.
pub fn insert(db: &Db, actions: &[NewAction], ts: u64) -> Result<Statement> {
    let rows = serde_json::to_string(actions).map_err(|e| internal("push actions", e))?;
    db.prepare(INSERT, &[&rows, &ts])
}

/// Starts the joiner's unread counts at `join_event_id`, a committed `m.room.member` join.
pub fn set_baseline(db: &Db, join_event_id: &str) -> Result<Statement> {
    db.prepare(SET_BASELINE, &[&join_event_id])
}

/// The number of the user's joined rooms that have unread notifications: the badge that push
/// gateways get as `counts.unread`, as Synapse counts it.
pub async fn unread_rooms(db: &Db, user_id: &str) -> Result<u64> {
    Ok(unread_rooms_of(db, &[user_id]).await?.get(user_id).copied().unwrap_or(0))
}

/// [`unread_rooms`] of each of `users` (those with none are left out), in one query: the list
/// goes in as one JSON parameter.
pub async fn unread_rooms_of(db: &Db, users: &[&str]) -> Result<BTreeMap<String, u64>> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
        rooms: f64,
    }
    let list = serde_json::to_string(users).map_err(|e| internal("unread users", e))?;
    let sql = format!(
        "SELECT a.user_id, count(DISTINCT a.room_id) AS rooms FROM event_push_actions a \
         WHERE a.user_id IN (SELECT value FROM json_each(?1)) AND a.notify = 1 AND a.event_stream > {READ_UPTO} \
         AND EXISTS (SELECT 1 FROM current_state c WHERE c.room_id = a.room_id AND c.type = 'm.room.member' \
         AND c.state_key = a.user_id AND c.membership = 'join') GROUP BY a.user_id"
    );
    let rows: Vec<Row> = db.all(&sql, &[&list]).await?;
    Ok(rows.into_iter().map(|r| (r.user_id, r.rooms as u64)).collect())
}

/// Reads the head of the notifications stream; in a batch after [`insert`], the position of
/// the rows it wrote: what the writer wakes syncs with.
pub fn max_stream_id(db: &Db) -> Result<Statement> {
    db.prepare(MAX_STREAM_ID, &[])
}

/// The rooms in which the user got notifications at positions in `(after, upto]`.
pub async fn rooms_changed(db: &Db, user_id: &str, after: u64, upto: u64) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        room_id: String,
    }
    let rows: Vec<Row> = db.all(ROOMS_CHANGED, &[&user_id, &after, &upto]).await?;
    Ok(rows.into_iter().map(|r| r.room_id).collect())
}

/// Unread counts of one room's thread (`main` for the main timeline).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub notifications: u64,
    pub highlights: u64,
}

/// The unread counts of the user's `rooms`, per room and thread, counting events up to stream
/// position `upto`. Rooms and threads with nothing unread are absent.
pub async fn unread_counts(
    db: &Db,
    user_id: &str,
    rooms: &[String],
    upto: u64,
) -> Result<BTreeMap<String, BTreeMap<String, Counts>>> {
    #[derive(Deserialize)]
    struct Row {
        room_id: String,
        thread_id: String,
        notifications: f64,
        highlights: f64,
    }
    if rooms.is_empty() {
        return Ok(BTreeMap::new());
    }
    let ids = serde_json::to_string(rooms).map_err(|e| internal("room list", e))?;
    let sql = format!(
        "SELECT a.room_id, a.thread_id, sum(a.notify) AS notifications, sum(a.highlight) AS highlights \
         FROM event_push_actions a INDEXED BY event_push_actions_by_room \
         WHERE a.user_id = ?1 AND a.room_id IN (SELECT value FROM json_each(?2)) AND a.event_stream <= ?3 \
         AND a.event_stream > {READ_UPTO} GROUP BY a.room_id, a.thread_id"
    );
    let rows: Vec<Row> = db.all(&sql, &[&user_id, &ids, &upto]).await?;
    let mut counts: BTreeMap<String, BTreeMap<String, Counts>> = BTreeMap::new();
    for row in rows {
        let thread = Counts { notifications: row.notifications as u64, highlights: row.highlights as u64 };
        counts.entry(row.room_id).or_default().insert(row.thread_id, thread);
    }
    Ok(counts)
}

/// One notification as `GET /notifications` serves it.
#[derive(Debug, Clone, Deserialize)]
pub struct NotificationRow {
    pub event_id: String,
    pub room_id: String,
    pub event_stream: f64,
    /// JSON text of the actions array.
    pub actions: String,
    pub ts: f64,
    /// 1 when the user's receipts cover the event.
    pub read: f64,
}

/// The user's notifications before stream position `before` (all with `None`), newest first;
/// only highlights with `only_highlight`.
pub async fn page(
    db: &Db,
    user_id: &str,
    before: Option<u64>,
    only_highlight: bool,
    limit: u64,
) -> Result<Vec<NotificationRow>> {
    let sql = format!(
        "SELECT a.event_id, a.room_id, a.event_stream, a.actions, a.ts, a.event_stream <= {READ_UPTO} AS read \
         FROM event_push_actions a INDEXED BY event_push_actions_by_user \
         WHERE a.user_id = ?1 AND a.event_stream < ?2 AND (?3 = 0 OR a.highlight = 1) \
         ORDER BY a.event_stream DESC LIMIT ?4"
    );
    let before = before.unwrap_or(1 << 53);
    db.all(&sql, &[&user_id, &before, &only_highlight, &limit]).await
}
