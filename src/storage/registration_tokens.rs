//! `registration_tokens`: tokens that let someone register where `REGISTRATION_REQUIRES_TOKEN`
//! is set. A use counts when the registration completes, as the spec says; `pending` counts the
//! auth sessions that passed the token stage and are not yet done. As in Synapse, a pending use
//! holds its place: a token is valid while `pending + completed` is below `uses_allowed`, and an
//! auth session that expires unfinished gives its place back (`uia_sessions::delete_expired`).

use serde::{Deserialize, Serialize};

use super::{Db, Statement};
use crate::error::Result;

const INSERT: &str = "INSERT INTO registration_tokens (token, uses_allowed, expiry_time) VALUES (?1, ?2, ?3) \
     ON CONFLICT DO NOTHING";
/// `?1`: NULL for all, 1 for the valid only, 0 for the invalid only; `?2` now.
const LIST: &str = "SELECT token, uses_allowed, pending, completed, expiry_time FROM registration_tokens \
     WHERE ?1 IS NULL OR ?1 = ((expiry_time IS NULL OR expiry_time > ?2) \
     AND (uses_allowed IS NULL OR pending + completed < uses_allowed)) ORDER BY token";
const GET: &str =
    "SELECT token, uses_allowed, pending, completed, expiry_time FROM registration_tokens WHERE token = ?1";
/// `?2`/`?3`: whether to set `uses_allowed`/`expiry_time`, `?4`/`?5`: their values.
const UPDATE: &str = "UPDATE registration_tokens SET \
     uses_allowed = CASE WHEN ?2 THEN ?4 ELSE uses_allowed END, \
     expiry_time = CASE WHEN ?3 THEN ?5 ELSE expiry_time END WHERE token = ?1";
const DELETE: &str = "DELETE FROM registration_tokens WHERE token = ?1";
/// Passes the token stage of a session: one row changed means the token is valid, and the session
/// now holds one of its uses.
const START_USE: &str = "UPDATE registration_tokens SET pending = pending + 1 WHERE token = ?1 \
     AND (expiry_time IS NULL OR expiry_time > ?2) AND (uses_allowed IS NULL OR pending + completed < uses_allowed)";
/// Counts a completed registration, whose use the session held; one row changed means the token
/// still exists.
const COMPLETE_USE: &str =
    "UPDATE registration_tokens SET pending = max(pending - 1, 0), completed = completed + 1 WHERE token = ?1";

#[derive(Debug, Serialize, Deserialize)]
pub struct RegistrationToken {
    pub token: String,
    pub uses_allowed: Option<u64>,
    pub pending: u64,
    pub completed: u64,
    pub expiry_time: Option<u64>,
}

impl RegistrationToken {
    pub fn is_valid(&self, now_ms: u64) -> bool {
        self.expiry_time.is_none_or(|t| t > now_ms)
            && self.uses_allowed.is_none_or(|n| self.pending + self.completed < n)
    }
}

/// False when the token exists already.
pub async fn insert(db: &Db, token: &str, uses_allowed: Option<u64>, expiry_time: Option<u64>) -> Result<bool> {
    Ok(db.run(db.prepare(INSERT, &[&token, &uses_allowed, &expiry_time])?).await? > 0)
}

pub async fn list(db: &Db, valid: Option<bool>, now_ms: u64) -> Result<Vec<RegistrationToken>> {
    db.all(LIST, &[&valid, &now_ms]).await
}

pub async fn get(db: &Db, token: &str) -> Result<Option<RegistrationToken>> {
    db.first(GET, &[&token]).await
}

pub async fn update(
    db: &Db,
    token: &str,
    uses_allowed: Option<Option<u64>>,
    expiry_time: Option<Option<u64>>,
) -> Result<()> {
    let params: [&dyn super::Param; 5] =
        [&token, &uses_allowed.is_some(), &expiry_time.is_some(), &uses_allowed.flatten(), &expiry_time.flatten()];
    db.run(db.prepare(UPDATE, &params)?).await?;
    Ok(())
}

pub async fn delete(db: &Db, token: &str) -> Result<bool> {
    Ok(db.run(db.prepare(DELETE, &[&token])?).await? > 0)
}

pub fn start_use(db: &Db, token: &str, now_ms: u64) -> Result<Statement> {
    db.prepare(START_USE, &[&token, &now_ms])
}

pub fn complete_use(db: &Db, token: &str) -> Result<Statement> {
    db.prepare(COMPLETE_USE, &[&token])
}
