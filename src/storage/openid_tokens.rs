//! `openid_tokens`: the OpenID tokens users asked for, stored as their SHA-256, until they expire.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

const INSERT: &str = "INSERT INTO openid_tokens (token_hash, user_id, expires_ms) VALUES (?1, ?2, ?3)";
const DELETE_EXPIRED: &str = "DELETE FROM openid_tokens WHERE expires_ms <= ?1";
const OWNER: &str = "SELECT user_id FROM openid_tokens WHERE token_hash = ?1 AND expires_ms > ?2";

pub fn insert(db: &Db, token_hash: &str, user_id: &str, expires_ms: u64) -> Result<Statement> {
    db.prepare(INSERT, &[&token_hash, &user_id, &expires_ms])
}

pub fn delete_expired(db: &Db, now_ms: u64) -> Result<Statement> {
    db.prepare(DELETE_EXPIRED, &[&now_ms])
}

/// The user of an unexpired token.
pub async fn owner(db: &Db, token_hash: &str, now_ms: u64) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
    }
    Ok(db.first::<Row>(OWNER, &[&token_hash, &now_ms]).await?.map(|r| r.user_id))
}
