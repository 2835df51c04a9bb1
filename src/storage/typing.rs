//! `typing`: who types in which room, until when. A user who starts typing, or stops, takes a
//! new stream position; one who keeps typing only pushes the expiry, as the list of typing users
//! does not change. An entry past its expiry is not typing any more; the first sync that sees it
//! marks it stopped at a new position ([`expire`]), and waiting syncs wake at the earliest expiry.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::{internal, Result};

/// Starts typing (a new position) unless the user is typing already.
const START: &str = "INSERT OR REPLACE INTO typing (room_id, user_id, expires_ms) \
     SELECT ?1, ?2, ?3 WHERE NOT EXISTS (SELECT 1 FROM typing \
     WHERE room_id = ?1 AND user_id = ?2 AND expires_ms > ?4)";
/// Pushes the expiry of a user who is typing; runs after [`START`], so it also covers a start.
const EXTEND: &str = "UPDATE typing SET expires_ms = ?3 WHERE room_id = ?1 AND user_id = ?2 AND expires_ms > ?4";
/// Stops typing (a new position) if the user is typing.
const STOP: &str = "INSERT OR REPLACE INTO typing (room_id, user_id, expires_ms) \
     SELECT ?1, ?2, 0 WHERE EXISTS (SELECT 1 FROM typing \
     WHERE room_id = ?1 AND user_id = ?2 AND expires_ms > ?3)";
/// Who is typing now, among users still joined.
const IN_ROOMS: &str = "SELECT t.room_id, t.user_id FROM typing t \
     WHERE t.room_id IN (SELECT value FROM json_each(?1)) AND t.expires_ms > ?2 \
     AND EXISTS (SELECT 1 FROM current_state cs WHERE cs.room_id = t.room_id AND cs.type = 'm.room.member' \
     AND cs.state_key = t.user_id AND cs.membership = 'join') ORDER BY t.room_id, t.stream_id";
const CHANGED_SINCE: &str = "SELECT DISTINCT room_id FROM typing INDEXED BY typing_by_room \
     WHERE room_id IN (SELECT value FROM json_each(?1)) AND stream_id > ?2 AND stream_id <= ?3 ORDER BY room_id";
const NEXT_EXPIRY: &str = "SELECT min(expires_ms) AS expires_ms FROM typing \
     WHERE room_id IN (SELECT value FROM json_each(?1)) AND expires_ms > ?2";
pub(super) const MAX_STREAM_ID: &str = "SELECT coalesce(max(stream_id), 0) AS stream_id FROM typing";
/// Rooms with entries past their expiry that no position marks as stopped yet.
const EXPIRED_ROOMS: &str = "SELECT DISTINCT room_id FROM typing WHERE expires_ms > 0 AND expires_ms <= ?1";
/// Marks those entries stopped, each with a new position, so that syncs see the change.
const EXPIRE: &str = "INSERT OR REPLACE INTO typing (room_id, user_id, expires_ms) \
     SELECT room_id, user_id, 0 FROM typing WHERE expires_ms > 0 AND expires_ms <= ?1";

/// The statements that mark `user_id` as typing in `room_id` until `expires_ms`, as of `now_ms`.
/// Run them in one batch, in this order.
pub fn start(db: &Db, room_id: &str, user_id: &str, expires_ms: u64, now_ms: u64) -> Result<Vec<Statement>> {
    Ok(vec![
        db.prepare(START, &[&room_id, &user_id, &expires_ms, &now_ms])?,
        db.prepare(EXTEND, &[&room_id, &user_id, &expires_ms, &now_ms])?,
    ])
}

/// Marks `user_id` as no longer typing in `room_id`; changes nothing when they were not.
pub fn stop(db: &Db, room_id: &str, user_id: &str, now_ms: u64) -> Result<Statement> {
    db.prepare(STOP, &[&room_id, &user_id, &now_ms])
}

/// The rooms with typing that ran out by `now_ms` and is not yet marked stopped.
pub async fn expired_rooms(db: &Db, now_ms: u64) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        room_id: String,
    }
    let rows: Vec<Row> = db.all(EXPIRED_ROOMS, &[&now_ms]).await?;
    Ok(rows.into_iter().map(|r| r.room_id).collect())
}

/// Marks all typing that ran out by `now_ms` as stopped, at new positions.
pub fn expire(db: &Db, now_ms: u64) -> Result<Statement> {
    db.prepare(EXPIRE, &[&now_ms])
}

fn room_list(room_ids: &[String]) -> Result<String> {
    serde_json::to_string(room_ids).map_err(|e| internal("room list", e))
}

/// The joined users typing at `now_ms` in each of `room_ids`, in the order they started. Rooms
/// where nobody types are absent.
pub async fn in_rooms(db: &Db, room_ids: &[String], now_ms: u64) -> Result<BTreeMap<String, Vec<String>>> {
    #[derive(Deserialize)]
    struct Row {
        room_id: String,
        user_id: String,
    }
    if room_ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let rows: Vec<Row> = db.all(IN_ROOMS, &[&room_list(room_ids)?, &now_ms]).await?;
    let mut rooms: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        rooms.entry(row.room_id).or_default().push(row.user_id);
    }
    Ok(rooms)
}

/// Which of `room_ids` had someone start or stop typing at positions in `(after, upto]`. Typing
/// that only ran out is not a change here; see [`next_expiry`].
pub async fn changed_since(db: &Db, room_ids: &[String], after: u64, upto: u64) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        room_id: String,
    }
    if room_ids.is_empty() || upto <= after {
        return Ok(Vec::new());
    }
    let rows: Vec<Row> = db.all(CHANGED_SINCE, &[&room_list(room_ids)?, &after, &upto]).await?;
    Ok(rows.into_iter().map(|r| r.room_id).collect())
}

/// The earliest moment after `now_ms` when someone in `room_ids` stops typing by running out of
/// time, if anyone types: when a waiting `/sync` should look again.
pub async fn next_expiry(db: &Db, room_ids: &[String], now_ms: u64) -> Result<Option<u64>> {
    #[derive(Deserialize)]
    struct Row {
        expires_ms: Option<f64>,
    }
    if room_ids.is_empty() {
        return Ok(None);
    }
    let row: Option<Row> = db.first(NEXT_EXPIRY, &[&room_list(room_ids)?, &now_ms]).await?;
    Ok(row.and_then(|r| r.expires_ms).map(|ms| ms as u64))
}

/// The position of the latest start or stop in any room, 0 before the first.
pub async fn max_stream_id(db: &Db) -> Result<u64> {
    #[derive(Deserialize)]
    struct Row {
        stream_id: f64,
    }
    Ok(db.first::<Row>(MAX_STREAM_ID, &[]).await?.map_or(0, |r| r.stream_id as u64))
}
