//! `room_deletions`, `blocked_rooms` and the purge of a room: what the admin API's room deletion
//! writes (see `durable_objects/room_deletion.rs`). The purge removes the room's rows from every table that has them, in one batch.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

const INSERT: &str = "INSERT INTO room_deletions (delete_id, room_id, status, result, error, created_ms) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const UPDATE: &str = "UPDATE room_deletions SET status = ?2, result = ?3, error = ?4 WHERE delete_id = ?1";
const BY_ROOM: &str =
    "SELECT delete_id, room_id, status, result, error FROM room_deletions WHERE room_id = ?1 ORDER BY created_ms";
const BY_ID: &str = "SELECT delete_id, room_id, status, result, error FROM room_deletions WHERE delete_id = ?1";
const BLOCK: &str =
    "INSERT INTO blocked_rooms (room_id, user_id, created_ms) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";
const BLOCKED: &str = "SELECT 1 AS found FROM blocked_rooms WHERE room_id = ?1";
const PURGE: &[&str] = &[
    "DELETE FROM events WHERE room_id = ?1",
    "DELETE FROM current_state WHERE room_id = ?1",
    "DELETE FROM rooms WHERE room_id = ?1",
    "DELETE FROM room_aliases WHERE room_id = ?1",
    "DELETE FROM receipts WHERE room_id = ?1",
    "DELETE FROM typing WHERE room_id = ?1",
    "DELETE FROM event_push_actions WHERE room_id = ?1",
    "DELETE FROM push_baselines WHERE room_id = ?1",
    "DELETE FROM forgotten_rooms WHERE room_id = ?1",
    "DELETE FROM account_data WHERE room_id = ?1",
];

/// Synapse's statuses of a deletion: members are leaving, then it ended one way or the other.
pub const SHUTTING_DOWN: &str = "shutting_down";
pub const COMPLETE: &str = "complete";
pub const FAILED: &str = "failed";

#[derive(Debug, Deserialize)]
pub struct Deletion {
    pub delete_id: String,
    pub room_id: String,
    pub status: String,
    /// JSON text.
    pub result: String,
    pub error: Option<String>,
}

pub fn insert(
    db: &Db,
    delete_id: &str,
    room_id: &str,
    status: &str,
    result_json: &str,
    error: Option<&str>,
    now_ms: u64,
) -> Result<Statement> {
    db.prepare(INSERT, &[&delete_id, &room_id, &status, &result_json, &error, &now_ms])
}

pub fn update(db: &Db, delete_id: &str, status: &str, result_json: &str, error: Option<&str>) -> Result<Statement> {
    db.prepare(UPDATE, &[&delete_id, &status, &result_json, &error])
}

pub async fn of_room(db: &Db, room_id: &str) -> Result<Vec<Deletion>> {
    db.all(BY_ROOM, &[&room_id]).await
}

pub async fn get(db: &Db, delete_id: &str) -> Result<Option<Deletion>> {
    db.first(BY_ID, &[&delete_id]).await
}

pub fn block(db: &Db, room_id: &str, admin: &str, now_ms: u64) -> Result<Statement> {
    db.prepare(BLOCK, &[&room_id, &admin, &now_ms])
}

pub async fn is_blocked(db: &Db, room_id: &str) -> Result<bool> {
    Ok(db.first::<serde_json::Value>(BLOCKED, &[&room_id]).await?.is_some())
}

pub fn purge(db: &Db, room_id: &str) -> Result<Vec<Statement>> {
    PURGE.iter().map(|sql| db.prepare(sql, &[&room_id])).collect()
}
