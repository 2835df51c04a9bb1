//! `account_data`: each user's global (`room_id` '') and per-room account data, one row per
//! (user, room, type). Every write takes a new stream position, so `/sync` finds changes by it.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

/// `OR REPLACE` deletes the old row and inserts a new one, which takes the next AUTOINCREMENT
/// position: positions only grow, and the row moves to the end of the stream.
const UPSERT: &str = "INSERT OR REPLACE INTO account_data (user_id, room_id, type, content) VALUES (?1, ?2, ?3, ?4)";
/// The same, only if the entry is still at position ?5 (0: still absent): a compare-and-set.
const UPSERT_IF_AT: &str = "INSERT OR REPLACE INTO account_data (user_id, room_id, type, content) \
     SELECT ?1, ?2, ?3, ?4 WHERE coalesce((SELECT stream_id FROM account_data \
     WHERE user_id = ?1 AND room_id = ?2 AND type = ?3), 0) = ?5";
const SELECT_ONE: &str =
    "SELECT stream_id, content FROM account_data WHERE user_id = ?1 AND room_id = ?2 AND type = ?3";
const CHANGED_SINCE: &str = "SELECT stream_id, room_id, type, content FROM account_data \
     WHERE user_id = ?1 AND stream_id > ?2 AND stream_id <= ?3 ORDER BY stream_id";
const GLOBAL_OF_USERS: &str = "SELECT user_id, type, content FROM account_data \
     WHERE user_id IN (SELECT value FROM json_each(?1)) AND room_id = '' AND type IN (SELECT value FROM json_each(?2))";
const ROOM_ENTRIES_OF_TYPE: &str =
    "SELECT room_id, content FROM account_data WHERE user_id = ?1 AND room_id != '' AND type = ?2";
pub(super) const MAX_STREAM_ID: &str = "SELECT coalesce(max(stream_id), 0) AS stream_id FROM account_data";

/// The room ID of global account data.
pub const GLOBAL: &str = "";

/// One account data entry as `/sync` reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountDataRow {
    pub stream_id: u64,
    /// Empty for global account data.
    pub room_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// JSON text of an object.
    pub content: String,
}

/// Sets one entry (`room_id` [`GLOBAL`] for global data) to `content_json`, an object's JSON.
pub fn set(db: &Db, user_id: &str, room_id: &str, kind: &str, content_json: &str) -> Result<Statement> {
    db.prepare(UPSERT, &[&user_id, &room_id, &kind, &content_json])
}

/// Like [`set`], but writes only if the entry is still at `stream_id` (0 if it was absent), so
/// that a read-modify-write loses no concurrent change: 0 rows changed means read again.
pub fn set_if_at(
    db: &Db,
    user_id: &str,
    room_id: &str,
    kind: &str,
    content_json: &str,
    stream_id: u64,
) -> Result<Statement> {
    db.prepare(UPSERT_IF_AT, &[&user_id, &room_id, &kind, &content_json, &stream_id])
}

/// One entry: its position and the JSON text of its content.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    pub stream_id: u64,
    pub content: String,
}

pub async fn get(db: &Db, user_id: &str, room_id: &str, kind: &str) -> Result<Option<Entry>> {
    db.first(SELECT_ONE, &[&user_id, &room_id, &kind]).await
}

/// The user's entries written at positions in `(after, upto]`, oldest first. Only the latest
/// write of each entry is kept, so each (room, type) appears at most once.
pub async fn changed_since(db: &Db, user_id: &str, after: u64, upto: u64) -> Result<Vec<AccountDataRow>> {
    db.all(CHANGED_SINCE, &[&user_id, &after, &upto]).await
}

/// The global entries of the types `kinds` of `users`, as (user ID, type, content JSON). The
/// lists go in as JSON parameters, so their length is not bound by D1's parameter limit.
pub async fn global_of_users(db: &Db, users: &[&str], kinds: &[&str]) -> Result<Vec<(String, String, String)>> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
        #[serde(rename = "type")]
        kind: String,
        content: String,
    }
    if users.is_empty() || kinds.is_empty() {
        return Ok(Vec::new());
    }
    let ids = serde_json::to_string(users).map_err(|e| crate::error::internal("user list", e))?;
    let kinds = serde_json::to_string(kinds).map_err(|e| crate::error::internal("type list", e))?;
    let rows: Vec<Row> = db.all(GLOBAL_OF_USERS, &[&ids, &kinds]).await?;
    Ok(rows.into_iter().map(|r| (r.user_id, r.kind, r.content)).collect())
}

/// The user's per-room entries of type `kind`, as (room ID, content JSON).
pub async fn room_entries_of_type(db: &Db, user_id: &str, kind: &str) -> Result<Vec<(String, String)>> {
    #[derive(Deserialize)]
    struct Row {
        room_id: String,
        content: String,
    }
    let rows: Vec<Row> = db.all(ROOM_ENTRIES_OF_TYPE, &[&user_id, &kind]).await?;
    Ok(rows.into_iter().map(|r| (r.room_id, r.content)).collect())
}

/// The position of the latest write of any user, 0 before the first.
pub async fn max_stream_id(db: &Db) -> Result<u64> {
    #[derive(Deserialize)]
    struct Row {
        stream_id: u64,
    }
    Ok(db.first::<Row>(MAX_STREAM_ID, &[]).await?.map_or(0, |r| r.stream_id))
}
