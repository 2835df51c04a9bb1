//! `uia_sessions`: user-interactive auth sessions, each bound to the request it authorises.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

const INSERT: &str =
    "INSERT INTO uia_sessions (session_id, method, path, completed, created_ms) VALUES (?1, ?2, ?3, '[]', ?4)";
const SELECT: &str = "SELECT method, path, completed, registration_token, params, registered_user_id \
     FROM uia_sessions WHERE session_id = ?1 AND created_ms > ?2";
const SET_PARAMS: &str = "UPDATE uia_sessions SET params = ?2 WHERE session_id = ?1";
const SET_REGISTERED: &str = "UPDATE uia_sessions SET registered_user_id = ?2 WHERE session_id = ?1";
const SET_COMPLETED: &str = "UPDATE uia_sessions SET completed = ?2, registration_token = ?3 WHERE session_id = ?1";
const DELETE: &str = "DELETE FROM uia_sessions WHERE session_id = ?1";
const DELETE_EXPIRED: &str = "DELETE FROM uia_sessions WHERE created_ms <= ?1";

#[derive(Debug, Deserialize)]
pub struct Session {
    pub method: String,
    pub path: String,
    /// JSON array of stage types.
    pub completed: String,
    /// The registration token the session's token stage took.
    pub registration_token: Option<String>,
    /// A registration's parameters, as JSON.
    pub params: Option<String>,
    /// The user a completed registration created.
    pub registered_user_id: Option<String>,
}

pub fn insert(db: &Db, session_id: &str, method: &str, path: &str, now_ms: u64) -> Result<Statement> {
    db.prepare(INSERT, &[&session_id, &method, &path, &now_ms])
}

/// The session, unless it does not exist or was created at or before `created_after_ms`.
pub async fn get(db: &Db, session_id: &str, created_after_ms: u64) -> Result<Option<Session>> {
    db.first(SELECT, &[&session_id, &created_after_ms]).await
}

pub fn set_completed(
    db: &Db,
    session_id: &str,
    completed_json: &str,
    registration_token: Option<&str>,
) -> Result<Statement> {
    db.prepare(SET_COMPLETED, &[&session_id, &completed_json, &registration_token])
}

pub fn set_params(db: &Db, session_id: &str, params_json: &str) -> Result<Statement> {
    db.prepare(SET_PARAMS, &[&session_id, &params_json])
}

pub fn set_registered(db: &Db, session_id: &str, user_id: &str) -> Result<Statement> {
    db.prepare(SET_REGISTERED, &[&session_id, &user_id])
}

pub fn delete(db: &Db, session_id: &str) -> Result<Statement> {
    db.prepare(DELETE, &[&session_id])
}

pub fn delete_expired(db: &Db, created_before_ms: u64) -> Result<Statement> {
    db.prepare(DELETE_EXPIRED, &[&created_before_ms])
}
