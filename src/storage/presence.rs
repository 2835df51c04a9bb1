//! `presence`: each user's presence state, status message and last active time. Every change
//! takes a new stream position; `/sync` serves the changes of the users who share a joined room
//! with the reader, and of the reader. `presence_devices`: the state each device's syncs ask for.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

/// Sets the whole presence of a user, at a new position; going online is activity at ?4.
const SET: &str = "INSERT OR REPLACE INTO presence (user_id, presence, status_msg, last_active_ts) \
     SELECT ?1, ?2, ?3, CASE WHEN ?2 = 'online' THEN ?4 \
       ELSE coalesce((SELECT last_active_ts FROM presence WHERE user_id = ?1), ?4) END";
/// Records the state a device's syncs ask for, unless it asked for it already.
const SET_DEVICE_STATE: &str = "INSERT OR REPLACE INTO presence_devices (user_id, device_id, presence) \
     SELECT ?1, ?2, ?3 WHERE NOT EXISTS (SELECT 1 FROM presence_devices \
     WHERE user_id = ?1 AND device_id = ?2 AND presence = ?3)";
/// Puts a user, at a new position, in the most available state its existing devices ask for,
/// unless it is in it already; the status message stays, and going online is activity at ?2.
const FOLLOW_DEVICES: &str = "WITH wanted AS (SELECT CASE max(CASE p.presence WHEN 'online' THEN 2 ELSE 1 END) \
       WHEN 2 THEN 'online' WHEN 1 THEN 'unavailable' END AS presence \
     FROM presence_devices p JOIN devices d ON d.user_id = p.user_id AND d.device_id = p.device_id \
     WHERE p.user_id = ?1) \
     INSERT OR REPLACE INTO presence (user_id, presence, status_msg, last_active_ts) \
     SELECT ?1, w.presence, (SELECT status_msg FROM presence WHERE user_id = ?1), \
       CASE WHEN w.presence = 'online' THEN ?2 \
         ELSE coalesce((SELECT last_active_ts FROM presence WHERE user_id = ?1), ?2) END \
     FROM wanted w WHERE w.presence IS NOT NULL \
     AND NOT EXISTS (SELECT 1 FROM presence WHERE user_id = ?1 AND presence = w.presence)";
const GET: &str = "SELECT user_id, presence, status_msg, last_active_ts FROM presence WHERE user_id = ?1";
/// The users who share a joined room with ?1.
const CO_MEMBERS: &str = "SELECT DISTINCT o.state_key AS user_id FROM current_state m \
     JOIN current_state o ON o.room_id = m.room_id AND o.type = 'm.room.member' AND o.membership = 'join' \
     WHERE m.type = 'm.room.member' AND m.state_key = ?1 AND m.membership = 'join'";
/// Changes in `(?2, ?3]` of ?1's presence and of the users who share a joined room with ?1
/// ([`CO_MEMBERS`] follows).
const VISIBLE_CHANGES: &str = "SELECT user_id, presence, status_msg, last_active_ts FROM presence \
     WHERE stream_id > ?2 AND stream_id <= ?3 AND (user_id = ?1 OR user_id IN";
const SHARE_A_ROOM: &str = "SELECT 1 AS shared FROM current_state m \
     JOIN current_state o ON o.room_id = m.room_id AND o.type = 'm.room.member' AND o.state_key = ?2 \
       AND o.membership = 'join' \
     WHERE m.type = 'm.room.member' AND m.state_key = ?1 AND m.membership = 'join' LIMIT 1";
pub(super) const MAX_STREAM_ID: &str = "SELECT coalesce(max(stream_id), 0) AS stream_id FROM presence";

/// The states a user can be in.
pub const STATES: &[&str] = &["online", "unavailable", "offline"];

/// One user's stored presence.
#[derive(Debug, Clone, Deserialize)]
pub struct PresenceRow {
    pub user_id: String,
    pub presence: String,
    pub status_msg: Option<String>,
    pub last_active_ts: f64,
}

/// Sets a user's state and status message (`None` clears it). Going online is activity at
/// `now_ms`; other states keep the last active time.
pub fn set(db: &Db, user_id: &str, presence: &str, status_msg: Option<&str>, now_ms: u64) -> Result<Statement> {
    db.prepare(SET, &[&user_id, &presence, &status_msg, &now_ms])
}

/// Records that a device's syncs ask for `presence`; the statement changes no row when the
/// device asked for it already.
pub fn set_device_state(db: &Db, user_id: &str, device_id: &str, presence: &str) -> Result<Statement> {
    db.prepare(SET_DEVICE_STATE, &[&user_id, &device_id, &presence])
}

/// Puts a user in the most available state its devices ask for; the statement changes no row
/// when the user is in it already. Going online counts as activity at `now_ms`.
pub fn follow_devices(db: &Db, user_id: &str, now_ms: u64) -> Result<Statement> {
    db.prepare(FOLLOW_DEVICES, &[&user_id, &now_ms])
}

pub async fn get(db: &Db, user_id: &str) -> Result<Option<PresenceRow>> {
    db.first(GET, &[&user_id]).await
}

/// Who sees `user_id`'s presence: the users who share a joined room with it. The user is among
/// them if it is joined anywhere.
pub async fn co_members(db: &Db, user_id: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
    }
    let rows: Vec<Row> = db.all(CO_MEMBERS, &[&user_id]).await?;
    Ok(rows.into_iter().map(|r| r.user_id).collect())
}

/// Whether two users share a joined room.
pub async fn share_a_room(db: &Db, a: &str, b: &str) -> Result<bool> {
    Ok(db.first::<serde_json::Value>(SHARE_A_ROOM, &[&a, &b]).await?.is_some())
}

/// The presence changes at positions in `(after, upto]` that `reader` may see, oldest first.
pub async fn visible_changes(db: &Db, reader: &str, after: u64, upto: u64) -> Result<Vec<PresenceRow>> {
    if upto <= after {
        return Ok(Vec::new());
    }
    db.all(&format!("{VISIBLE_CHANGES} ({CO_MEMBERS})) ORDER BY stream_id"), &[&reader, &after, &upto]).await
}

pub async fn max_stream_id(db: &Db) -> Result<u64> {
    #[derive(Deserialize)]
    struct Row {
        stream_id: u64,
    }
    Ok(db.first::<Row>(MAX_STREAM_ID, &[]).await?.map_or(0, |r| r.stream_id))
}
