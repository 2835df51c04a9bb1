//! `rooms`: one row per room, with its version and whether the public directory lists it.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

const INSERT: &str =
    "INSERT INTO rooms (room_id, room_version, creator, is_public, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)";
const SELECT: &str = "SELECT room_version, is_public FROM rooms WHERE room_id = ?1";
const SET_PUBLIC: &str = "UPDATE rooms SET is_public = ?2 WHERE room_id = ?1";
const PUBLIC_COUNT: &str = "SELECT count(*) AS n FROM rooms WHERE is_public = 1";
/// A window of public rooms in room ID order, each joined with its joined-member count and the
/// state a directory entry shows (one row per state event, or one row of NULLs for none).
const DIRECTORY_AFTER: &str = "SELECT r.room_id, r.room_version, (SELECT count(*) FROM current_state m \
     WHERE m.room_id = r.room_id AND m.type = 'm.room.member' AND m.membership = 'join') AS joined, \
     cs.type AS type, json_extract(e.json, '$.content') AS content, e.redacted_by \
     FROM (SELECT room_id, room_version FROM rooms WHERE is_public = 1 AND room_id > ?1 \
           ORDER BY room_id LIMIT ?2) r \
     LEFT JOIN current_state cs ON cs.room_id = r.room_id AND cs.state_key = '' AND cs.type IN \
       ('m.room.create', 'm.room.name', 'm.room.topic', 'm.room.canonical_alias', 'm.room.avatar', \
        'm.room.join_rules', 'm.room.history_visibility', 'm.room.guest_access') \
     LEFT JOIN events e ON e.event_id = cs.event_id ORDER BY r.room_id ASC";
/// The same, for the window of public rooms just before a room ID, nearest first.
const DIRECTORY_BEFORE: &str = "SELECT r.room_id, r.room_version, (SELECT count(*) FROM current_state m \
     WHERE m.room_id = r.room_id AND m.type = 'm.room.member' AND m.membership = 'join') AS joined, \
     cs.type AS type, json_extract(e.json, '$.content') AS content, e.redacted_by \
     FROM (SELECT room_id, room_version FROM rooms WHERE is_public = 1 AND room_id < ?1 \
           ORDER BY room_id DESC LIMIT ?2) r \
     LEFT JOIN current_state cs ON cs.room_id = r.room_id AND cs.state_key = '' AND cs.type IN \
       ('m.room.create', 'm.room.name', 'm.room.topic', 'm.room.canonical_alias', 'm.room.avatar', \
        'm.room.join_rules', 'm.room.history_visibility', 'm.room.guest_access') \
     LEFT JOIN events e ON e.event_id = cs.event_id ORDER BY r.room_id DESC";

#[derive(Debug, Deserialize)]
pub struct Room {
    pub room_version: String,
    is_public: f64,
}

impl Room {
    pub fn is_public(&self) -> bool {
        self.is_public != 0.0
    }
}

pub fn insert(db: &Db, room_id: &str, version: &str, creator: &str, is_public: bool, now_ms: u64) -> Result<Statement> {
    db.prepare(INSERT, &[&room_id, &version, &creator, &is_public, &now_ms])
}

pub async fn get(db: &Db, room_id: &str) -> Result<Option<Room>> {
    db.first(SELECT, &[&room_id]).await
}

pub fn set_public(db: &Db, room_id: &str, is_public: bool) -> Result<Statement> {
    db.prepare(SET_PUBLIC, &[&room_id, &is_public])
}

/// How many rooms the public directory lists.
pub async fn public_count(db: &Db) -> Result<u64> {
    #[derive(Deserialize)]
    struct Row {
        n: f64,
    }
    Ok(db.first::<Row>(PUBLIC_COUNT, &[]).await?.map_or(0, |r| r.n as u64))
}

/// A public room as the directory shows it: its joined members and the contents of its
/// directory-relevant state events (each with whether a redaction applies to it).
#[derive(Debug, Clone, PartialEq)]
pub struct DirectoryRoom {
    pub room_id: String,
    pub room_version: String,
    pub joined_members: u64,
    /// `(type, content JSON, redacted)` for each state event present, with an empty state key.
    pub state: Vec<(String, String, bool)>,
}

/// Up to `limit` public rooms after `room_id` (ascending), or before it (`before`, descending).
pub async fn directory_window(db: &Db, room_id: &str, before: bool, limit: u64) -> Result<Vec<DirectoryRoom>> {
    #[derive(Deserialize)]
    struct Row {
        room_id: String,
        room_version: String,
        joined: f64,
        #[serde(rename = "type")]
        kind: Option<String>,
        content: Option<String>,
        redacted_by: Option<String>,
    }
    let sql = if before { DIRECTORY_BEFORE } else { DIRECTORY_AFTER };
    let rows: Vec<Row> = db.all(sql, &[&room_id, &limit]).await?;
    let mut rooms: Vec<DirectoryRoom> = Vec::new();
    for row in rows {
        if rooms.last().is_none_or(|r| r.room_id != row.room_id) {
            rooms.push(DirectoryRoom {
                room_id: row.room_id,
                room_version: row.room_version,
                joined_members: row.joined as u64,
                state: Vec::new(),
            });
        }
        if let (Some(room), Some(kind), Some(content)) = (rooms.last_mut(), row.kind, row.content) {
            room.state.push((kind, content, row.redacted_by.is_some()));
        }
    }
    Ok(rooms)
}
