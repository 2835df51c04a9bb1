//! `e2e_room_keys`: the sessions backed up in each key backup version.
//!
//! A session uploaded again replaces the stored one only if it is better, by the spec's rules:
//! verified over unverified, then the lower `first_message_index`, then the lower
//! `forwarded_count`. A version's `etag` changes whenever its keys do.

use serde::Deserialize;

use super::e2e_room_keys_versions::CURRENT;
use super::{Db, Statement};
use crate::error::Result;

/// The sessions of the JSON array ?3 as rows named `excluded`, each `[room_id, session_id,
/// first_message_index, forwarded_count, is_verified (0 or 1), session_data]`.
const UPLOADED: &str = "SELECT json_extract(value, '$[0]') AS room_id, json_extract(value, '$[1]') AS session_id, \
     json_extract(value, '$[2]') AS first_message_index, json_extract(value, '$[3]') AS forwarded_count, \
     json_extract(value, '$[4]') AS is_verified, json_extract(value, '$[5]') AS session_data FROM json_each(?3)";
/// Whether the uploaded session `excluded` beats the stored one.
const BETTER: &str = "(excluded.is_verified > e2e_room_keys.is_verified \
     OR (excluded.is_verified = e2e_room_keys.is_verified \
       AND (excluded.first_message_index < e2e_room_keys.first_message_index \
         OR (excluded.first_message_index = e2e_room_keys.first_message_index \
           AND excluded.forwarded_count < e2e_room_keys.forwarded_count))))";
const STATUS: &str = "SELECT etag, (SELECT count(*) FROM e2e_room_keys WHERE user_id = ?1 AND version = ?2) AS count \
     FROM e2e_room_keys_versions WHERE user_id = ?1 AND version = ?2";
const BUMP: &str = "UPDATE e2e_room_keys_versions SET etag = etag + 1 WHERE user_id = ?1 AND version = ?2";
/// Sessions of version ?2 of ?1, in room ?3 unless NULL, with session ID ?4 unless NULL.
const SELECT: &str = "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data \
     FROM e2e_room_keys WHERE user_id = ?1 AND version = ?2 AND (?3 IS NULL OR room_id = ?3) \
     AND (?4 IS NULL OR session_id = ?4) ORDER BY room_id, session_id";
const DELETE: &str = "DELETE FROM e2e_room_keys WHERE user_id = ?1 AND version = ?2 \
     AND (?3 IS NULL OR room_id = ?3) AND (?4 IS NULL OR session_id = ?4)";

/// Which sessions of a version a read or delete covers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    pub room_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
pub struct SessionRow {
    pub room_id: String,
    pub session_id: String,
    pub first_message_index: u64,
    pub forwarded_count: u64,
    pub is_verified: u8,
    /// JSON text of an object.
    pub session_data: String,
}

/// A version's etag and key count.
#[derive(Debug, Deserialize)]
pub struct Status {
    pub etag: u64,
    pub count: u64,
}

/// The statements that store `sessions_json` (see [`UPLOADED`]) in `version` if it is the current
/// version, each session unless the stored one is as good, and bump its etag if any was stored;
/// the last one reads the version's [`Status`].
pub fn put(db: &Db, user_id: &str, version: u64, sessions_json: &str) -> Result<Vec<Statement>> {
    // The etag first: it sees the stored sessions the insert compares with.
    let bump = format!(
        "{BUMP} AND version = {CURRENT} AND EXISTS (SELECT 1 FROM ({UPLOADED}) AS excluded \
         LEFT JOIN e2e_room_keys ON e2e_room_keys.user_id = ?1 AND e2e_room_keys.version = ?2 \
         AND e2e_room_keys.room_id = excluded.room_id AND e2e_room_keys.session_id = excluded.session_id \
         WHERE e2e_room_keys.session_id IS NULL OR {BETTER})"
    );
    let insert = format!(
        "INSERT INTO e2e_room_keys (user_id, version, room_id, session_id, first_message_index, forwarded_count, \
         is_verified, session_data) SELECT ?1, ?2, room_id, session_id, first_message_index, forwarded_count, \
         is_verified, session_data FROM ({UPLOADED}) WHERE ?2 = {CURRENT} \
         ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET \
         first_message_index = excluded.first_message_index, forwarded_count = excluded.forwarded_count, \
         is_verified = excluded.is_verified, session_data = excluded.session_data WHERE {BETTER}"
    );
    Ok(vec![
        db.prepare(&bump, &[&user_id, &version, &sessions_json])?,
        db.prepare(&insert, &[&user_id, &version, &sessions_json])?,
        status(db, user_id, version)?,
    ])
}

/// Deletes the sessions of `scope` from `version`.
pub fn delete(db: &Db, user_id: &str, version: u64, scope: Scope<'_>) -> Result<Statement> {
    db.prepare(DELETE, &[&user_id, &version, &scope.room_id, &scope.session_id])
}

/// Bumps the version's etag: its keys changed.
pub fn bump(db: &Db, user_id: &str, version: u64) -> Result<Statement> {
    db.prepare(BUMP, &[&user_id, &version])
}

/// Reads the version's [`Status`].
pub fn status(db: &Db, user_id: &str, version: u64) -> Result<Statement> {
    db.prepare(STATUS, &[&user_id, &version])
}

pub async fn get(db: &Db, user_id: &str, version: u64, scope: Scope<'_>) -> Result<Vec<SessionRow>> {
    db.all(SELECT, &[&user_id, &version, &scope.room_id, &scope.session_id]).await
}
