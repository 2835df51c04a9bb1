//! `event_push_actions`: what a user's push rules decided for an event that notifies or
//! highlights them, one row per (user, event). A room's unread counts are its rows past the
//! user's read receipt that covers them: the newest unthreaded `m.read` or `m.read.private`
//! receipt, or the newest one of the row's thread. Each row takes a position of its own (the
//! notifications stream), so a sync can tell that a room's counts changed after its token.

use serde::{Deserialize, Serialize};

use super::{Db, Statement};
use crate::error::{internal, Result};

/// The position up to which the row's user has read the row's room or thread.
const READ_UPTO: &str = "coalesce((SELECT max(r.event_stream) FROM receipts r \
     WHERE r.room_id = a.room_id AND r.user_id = a.user_id AND r.receipt_type IN ('m.read', 'm.read.private') \
     AND r.thread_id IN ('', a.thread_id)), 0)";
/// `?1` is a JSON array of [`NewAction`] objects of one room's event.
const INSERT: &str = "INSERT OR IGNORE INTO event_push_actions \
     (user_id, room_id, event_id, event_stream, thread_id, notify, highlight, actions, ts) \
     SELECT json_extract(value, '$.user_id'), json_extract(value, '$.room_id'), json_extract(value, '$.event_id'), \
     json_extract(value, '$.event_stream'), json_extract(value, '$.thread_id'), json_extract(value, '$.notify'), \
     json_extract(value, '$.highlight'), json_extract(value, '$.actions'), ?2 FROM json_each(?1)";
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

/// The number of the user's joined rooms that have unread notifications: the badge that push
/// gateways get as `counts.unread`, as Synapse counts it.
pub async fn unread_rooms(db: &Db, user_id: &str) -> Result<u64> {
    #[derive(Deserialize)]
    struct Row {
        rooms: f64,
    }
    let sql = format!(
        "SELECT count(DISTINCT a.room_id) AS rooms FROM event_push_actions a \
         WHERE a.user_id = ?1 AND a.notify = 1 AND a.event_stream > {READ_UPTO} \
         AND EXISTS (SELECT 1 FROM current_state c WHERE c.room_id = a.room_id AND c.type = 'm.room.member' \
         AND c.state_key = a.user_id AND c.membership = 'join')"
    );
    Ok(db.first::<Row>(&sql, &[&user_id]).await?.map_or(0, |r| r.rooms as u64))
}
