//! `presence`: each user's presence as others see it. Only its owner (the user's `UserSync`
//! object) writes a user's row, and every write takes a new stream position; `/sync` serves the
//! rows of the users the reader shares a joined room with, of the reader, and of whom presence
//! routers add. `presence_full_sync`: users whose next sync gets a full snapshot.

use serde::Deserialize;

use super::{rows, BatchError, Db};
use crate::error::{internal, Result};
use crate::presence::state::{Shown, State};

/// Writes a user's presence at a new position (INSERT OR REPLACE takes a new AUTOINCREMENT
/// rowid) and returns the position.
const WRITE: &str =
    "INSERT OR REPLACE INTO presence (user_id, presence, status_msg, last_active_ts, currently_active) \
     VALUES (?1, ?2, ?3, ?4, ?5) RETURNING stream_id";
const GET: &str =
    "SELECT user_id, presence, status_msg, last_active_ts, currently_active FROM presence WHERE user_id = ?1";
/// The users who share a joined room with ?1.
const CO_MEMBERS: &str = "SELECT DISTINCT o.state_key AS user_id FROM current_state m \
     JOIN current_state o ON o.room_id = m.room_id AND o.type = 'm.room.member' AND o.membership = 'join' \
     WHERE m.type = 'm.room.member' AND m.state_key = ?1 AND m.membership = 'join'";
/// Whether ?1's sync from ?2 up to ?3 is a snapshot: an initial sync, or one asked for by
/// `send_online_presence_to`. A snapshot has the current presence of everyone but the offline;
/// otherwise the changes in `(?2, ?3]`.
const SNAPSHOT: &str = "snapshot AS (SELECT ?2 = 0 OR EXISTS (SELECT 1 FROM presence_full_sync \
     WHERE user_id = ?1 AND stream_id > ?2 AND stream_id <= ?3) AS yes)";
/// Written as bounds on the position, so that all users' presence is read by range.
const IN_WINDOW: &str = "p.stream_id <= ?3 AND p.stream_id > (SELECT CASE WHEN yes THEN 0 ELSE ?2 END FROM snapshot) \
     AND (p.presence != 'offline' OR NOT (SELECT yes FROM snapshot))";
/// What ?1 sees: its own, its co-members' and the JSON array ?4's presence, each looked up by
/// user, never a scan of the stream.
const VISIBLE: &str = "interested (user_id) AS (SELECT ?1 UNION SELECT value FROM json_each(?4) UNION";
const COLUMNS: &str = "p.user_id, p.presence, p.status_msg, p.last_active_ts, p.currently_active";
const SHARE_A_ROOM: &str = "SELECT 1 AS shared FROM current_state m \
     JOIN current_state o ON o.room_id = m.room_id AND o.type = 'm.room.member' AND o.state_key = ?2 \
       AND o.membership = 'join' \
     WHERE m.type = 'm.room.member' AND m.state_key = ?1 AND m.membership = 'join' LIMIT 1";
/// The presence of ?1 and of the joined members of the rooms in the JSON array ?2, offline for
/// those who never had any: what the legacy initial syncs show.
const OF_MEMBERS: &str = "WITH users (user_id) AS (SELECT ?1 UNION SELECT state_key FROM current_state \
     WHERE room_id IN (SELECT value FROM json_each(?2)) AND type = 'm.room.member' AND membership = 'join') \
     SELECT u.user_id, coalesce(p.presence, 'offline') AS presence, p.status_msg, \
       coalesce(p.last_active_ts, 0) AS last_active_ts, coalesce(p.currently_active, 0) AS currently_active \
     FROM users u LEFT JOIN presence p ON p.user_id = u.user_id";
pub(super) const MAX_STREAM_ID: &str = "SELECT coalesce(max(stream_id), 0) AS stream_id FROM presence";
/// Copies the newest row to a new position in one statement, so that the stream moves on (and
/// a sync from before it is told of the snapshot) without changing anyone's presence.
const BUMP: &str = "INSERT OR REPLACE INTO presence (user_id, presence, status_msg, last_active_ts, currently_active) \
     SELECT user_id, presence, status_msg, last_active_ts, currently_active FROM presence \
     ORDER BY stream_id DESC LIMIT 1";
const MARK_FULL_SYNC: &str = "INSERT OR REPLACE INTO presence_full_sync (user_id, stream_id) \
     SELECT value, (SELECT coalesce(max(stream_id), 0) FROM presence) FROM json_each(?1) \
     RETURNING stream_id";

/// One user's stored presence.
#[derive(Debug, Clone, Deserialize)]
pub struct PresenceRow {
    pub user_id: String,
    pub presence: String,
    pub status_msg: Option<String>,
    pub last_active_ts: f64,
    pub currently_active: f64,
}

impl PresenceRow {
    pub fn shown(&self) -> Result<Shown> {
        Ok(Shown {
            state: State::parse(&self.presence).ok_or_else(|| internal("stored presence", &self.presence))?,
            status_msg: self.status_msg.clone(),
            last_active_ts: self.last_active_ts as u64,
            currently_active: self.currently_active != 0.0,
        })
    }
}

#[derive(Deserialize)]
struct Position {
    stream_id: u64,
}

#[derive(Deserialize)]
struct User {
    user_id: String,
}

/// Writes what others see of `user_id` at a new position, and reads who shares a room with
/// the user, in one call. Returns the position and those users.
pub async fn write(db: &Db, user_id: &str, shown: &Shown) -> Result<(u64, Vec<String>)> {
    let write = db.prepare(
        WRITE,
        &[&user_id, &shown.state.as_str(), &shown.status_msg, &shown.last_active_ts, &shown.currently_active],
    )?;
    let co_members = db.prepare(CO_MEMBERS, &[&user_id])?;
    let results = db.batch_rows(vec![write, co_members]).await.map_err(|e| match e {
        BatchError::Conflict(msg) => internal("presence write", msg),
        BatchError::Failed(e) => e,
    })?;
    let position = results.first().map(rows::<Position>).transpose()?.and_then(|r| r.first().map(|p| p.stream_id));
    let users = results.get(1).map(rows::<User>).transpose()?.unwrap_or_default();
    Ok((position.unwrap_or(0), users.into_iter().map(|u| u.user_id).collect()))
}

pub async fn get(db: &Db, user_id: &str) -> Result<Option<PresenceRow>> {
    db.first(GET, &[&user_id]).await
}

/// The users who share a joined room with `user_id`; the user is among them if joined anywhere.
pub async fn co_members(db: &Db, user_id: &str) -> Result<Vec<String>> {
    let rows: Vec<User> = db.all(CO_MEMBERS, &[&user_id]).await?;
    Ok(rows.into_iter().map(|r| r.user_id).collect())
}

/// The presence of `user_id` and of the joined members of `rooms`, in one query.
pub async fn of_members(db: &Db, user_id: &str, rooms: &[&str]) -> Result<Vec<PresenceRow>> {
    let rooms = serde_json::to_string(rooms).map_err(|e| internal("rooms", e))?;
    db.all(OF_MEMBERS, &[&user_id, &rooms]).await
}

/// Whether two users share a joined room.
pub async fn share_a_room(db: &Db, a: &str, b: &str) -> Result<bool> {
    Ok(db.first::<serde_json::Value>(SHARE_A_ROOM, &[&a, &b]).await?.is_some())
}

/// The presence `reader` gets in a sync from `after` up to `upto`, oldest first: its own, its
/// co-members' and `routed`'s (all users' with `None`). From 0, or after a snapshot was asked
/// for, the current presence of those who are not offline; else the changes in between.
pub async fn visible(
    db: &Db,
    reader: &str,
    after: u64,
    upto: u64,
    routed: Option<&[String]>,
) -> Result<Vec<PresenceRow>> {
    match routed {
        Some(users) => {
            let users = serde_json::to_string(users).map_err(|e| internal("routed users", e))?;
            let sql = format!(
                "WITH {VISIBLE} {CO_MEMBERS}), {SNAPSHOT} SELECT {COLUMNS} FROM interested i \
                 JOIN presence p ON p.user_id = i.user_id WHERE {IN_WINDOW} ORDER BY p.stream_id"
            );
            db.all(&sql, &[&reader, &after, &upto, &users]).await
        }
        None => {
            let sql =
                format!("WITH {SNAPSHOT} SELECT {COLUMNS} FROM presence p WHERE {IN_WINDOW} ORDER BY p.stream_id");
            db.all(&sql, &[&reader, &after, &upto]).await
        }
    }
}

/// The presence of the users who joined one of ?1's joined rooms in `(?2, ?3]`
/// (from another membership), and of every member of those of them that ?1 itself joined, but
/// ?1's own: what an incremental sync adds, changed or not, as Synapse's does.
const NEWLY_JOINED: &str = "WITH joins AS (SELECT e.room_id, e.state_key FROM events e \
     WHERE e.room_id IN (SELECT room_id FROM current_state WHERE type = 'm.room.member' AND state_key = ?1 \
     AND membership = 'join') AND e.stream_ordering > ?2 AND e.stream_ordering <= ?3 \
     AND e.type = 'm.room.member' AND e.membership = 'join' \
     AND coalesce(json_extract(e.prev_state, '$.content.membership'), '') != 'join'), \
     users (user_id) AS (SELECT state_key FROM joins UNION SELECT c.state_key FROM current_state c \
     WHERE c.room_id IN (SELECT room_id FROM joins WHERE state_key = ?1) AND c.type = 'm.room.member' \
     AND c.membership = 'join') \
     SELECT p.user_id, p.presence, p.status_msg, p.last_active_ts, p.currently_active FROM users u \
     JOIN presence p ON p.user_id = u.user_id WHERE p.user_id != ?1 ORDER BY p.stream_id";

/// The current presence of who newly shares a room with `reader` between two positions of the
/// event stream (see [`NEWLY_JOINED`]), oldest change first.
pub async fn newly_joined(db: &Db, reader: &str, after: u64, upto: u64) -> Result<Vec<PresenceRow>> {
    db.all(NEWLY_JOINED, &[&reader, &after, &upto]).await
}

/// Marks `users` for a full snapshot at their next sync, at a new position of the stream.
/// Returns the position.
pub async fn send_full_snapshot(db: &Db, users: &[String]) -> Result<u64> {
    let users = serde_json::to_string(users).map_err(|e| internal("users", e))?;
    let statements = vec![db.prepare(BUMP, &[])?, db.prepare(MARK_FULL_SYNC, &[&users])?];
    let results = db.batch_rows(statements).await.map_err(|e| match e {
        BatchError::Conflict(msg) => internal("presence snapshot", msg),
        BatchError::Failed(e) => e,
    })?;
    let marked = results.get(1).map(rows::<Position>).transpose()?.unwrap_or_default();
    Ok(marked.first().map_or(0, |p| p.stream_id))
}
