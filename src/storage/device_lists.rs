//! `device_lists_stream`: the users whose devices or keys changed, each at the position of their
//! latest change. Devices added, renamed or deleted are recorded by the `devices` triggers of
//! the migration; key uploads record themselves here.
//!
//! [`changes`] finds what a sync or `/keys/changes` reports: the users whose device lists
//! changed, or whom the reader now shares a room with (`changed`), and those it no longer
//! shares any room with (`left`).

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

const RECORD: &str = "INSERT OR REPLACE INTO device_lists_stream (user_id, visible_to) VALUES (?1, ?2)";
/// Records a change of each user of the JSON array ?1 that only ?2 sees.
const RECORD_FOR: &str = "INSERT OR REPLACE INTO device_lists_stream (user_id, visible_to) \
     SELECT value, ?2 FROM json_each(?1)";
pub(super) const MAX_STREAM_ID: &str = "SELECT coalesce(max(stream_id), 0) AS stream_id FROM device_lists_stream";
/// For reader ?1, between event positions (?2, ?3] and device list positions (?4, ?5]: the users
/// to put in `changed` (`is_left` = 0) and in `left` (`is_left` = 1). Changed are the users who share a
/// joined room with the reader now (the reader included) and changed their devices, joined one
/// of the reader's rooms, or are in a room the reader joined; and those whose keys the reader's
/// own signatures changed. Left are the users who left one of the reader's rooms, or were in a
/// room the reader left, and share no joined room with it now. A membership counts as a join or
/// leave only if it changed (`prev_state` holds the membership it replaced).
const CHANGES: &str = "WITH \
     mine(room_id) AS (SELECT room_id FROM current_state \
       WHERE type = 'm.room.member' AND state_key = ?1 AND membership = 'join'), \
     shared(user_id) AS (SELECT state_key FROM current_state \
       WHERE room_id IN (SELECT * FROM mine) AND type = 'm.room.member' AND membership = 'join'), \
     my_moves(room_id, membership, before) AS (SELECT room_id, membership, \
       json_extract(prev_state, '$.content.membership') FROM events \
       WHERE state_key = ?1 AND type = 'm.room.member' AND stream_ordering > ?2 AND stream_ordering <= ?3), \
     joined_rooms(room_id) AS (SELECT room_id FROM my_moves WHERE membership = 'join' AND before IS NOT 'join'), \
     left_rooms(room_id) AS (SELECT room_id FROM my_moves WHERE membership IN ('leave', 'ban')), \
     moves(user_id, membership, before) AS (SELECT state_key, membership, \
       json_extract(prev_state, '$.content.membership') FROM events \
       WHERE room_id IN (SELECT room_id FROM mine UNION SELECT room_id FROM left_rooms) \
       AND type = 'm.room.member' AND stream_ordering > ?2 AND stream_ordering <= ?3), \
     changed(user_id) AS ( \
       SELECT user_id FROM device_lists_stream WHERE stream_id > ?4 AND stream_id <= ?5 AND visible_to = '' \
       UNION SELECT user_id FROM moves WHERE membership = 'join' AND before IS NOT 'join' \
       UNION SELECT state_key FROM current_state \
         WHERE room_id IN (SELECT * FROM joined_rooms) AND type = 'm.room.member' AND membership = 'join'), \
     gone(user_id) AS ( \
       SELECT user_id FROM moves WHERE membership IN ('leave', 'ban') \
       UNION SELECT state_key FROM current_state \
         WHERE room_id IN (SELECT * FROM left_rooms) AND type = 'm.room.member' AND membership = 'join') \
     SELECT user_id, 0 AS is_left FROM changed WHERE user_id = ?1 OR user_id IN (SELECT * FROM shared) \
     UNION SELECT user_id, 0 FROM device_lists_stream WHERE stream_id > ?4 AND stream_id <= ?5 AND visible_to = ?1 \
     UNION SELECT user_id, 1 FROM gone WHERE user_id != ?1 AND user_id NOT IN (SELECT * FROM shared) \
     ORDER BY user_id";

/// Records that `user_id`'s devices or keys changed, for everyone who shares a room with them.
pub fn record(db: &Db, user_id: &str) -> Result<Statement> {
    db.prepare(RECORD, &[&user_id, &""])
}

/// Records that the keys of each user of `users_json` (a JSON array) changed for `viewer` only.
pub fn record_for(db: &Db, users_json: &str, viewer: &str) -> Result<Statement> {
    db.prepare(RECORD_FOR, &[&users_json, &viewer])
}

/// The stream's head, 0 before the first change.
pub async fn max_stream_id(db: &Db) -> Result<u64> {
    #[derive(Deserialize)]
    struct Row {
        stream_id: u64,
    }
    Ok(db.first::<Row>(MAX_STREAM_ID, &[]).await?.map_or(0, |r| r.stream_id))
}

/// The positions a device list query covers: events and device list changes after `from`, up to
/// `upto`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub events: (u64, u64),
    pub device_lists: (u64, u64),
}

/// `changed` and `left` for `reader` in `window`, each sorted.
pub async fn changes(db: &Db, reader: &str, window: Window) -> Result<(Vec<String>, Vec<String>)> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
        is_left: u8,
    }
    let (from_events, upto_events) = window.events;
    let (from_lists, upto_lists) = window.device_lists;
    let rows: Vec<Row> = db.all(CHANGES, &[&reader, &from_events, &upto_events, &from_lists, &upto_lists]).await?;
    let (left, changed): (Vec<Row>, Vec<Row>) = rows.into_iter().partition(|r| r.is_left == 1);
    let left: Vec<String> = left.into_iter().map(|r| r.user_id).collect();
    // A user both changed (for the reader only) and left is left.
    let changed = changed.into_iter().map(|r| r.user_id).filter(|u| !left.contains(u)).collect();
    Ok((changed, left))
}
