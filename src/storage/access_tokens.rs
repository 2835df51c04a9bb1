//! `access_tokens`: the SHA-256 of each live access token, and whose device it acts for.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

const INSERT: &str = "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ms) VALUES (?1, ?2, ?3, ?4)";
const LOOKUP: &str = "SELECT t.user_id, t.device_id, u.is_guest, u.deactivated, d.last_seen_ts \
     FROM access_tokens t JOIN users u ON u.user_id = t.user_id \
     LEFT JOIN devices d ON d.user_id = t.user_id AND d.device_id = t.device_id \
     WHERE t.token_hash = ?1";
const DELETE_FOR_DEVICE: &str = "DELETE FROM access_tokens WHERE user_id = ?1 AND device_id = ?2";
const DELETE_ALL: &str = "DELETE FROM access_tokens WHERE user_id = ?1";
const DELETE_ALL_BUT: &str = "DELETE FROM access_tokens WHERE user_id = ?1 AND device_id != ?2";

/// The owner of a token, as authentication needs it.
#[derive(Debug, Deserialize)]
pub struct TokenOwner {
    pub user_id: String,
    pub device_id: String,
    is_guest: f64,
    deactivated: f64,
    pub last_seen_ts: Option<f64>,
}

impl TokenOwner {
    pub fn is_guest(&self) -> bool {
        self.is_guest != 0.0
    }

    pub fn is_deactivated(&self) -> bool {
        self.deactivated != 0.0
    }
}

pub fn insert(db: &Db, token_hash: &str, user_id: &str, device_id: &str, now_ms: u64) -> Result<Statement> {
    db.prepare(INSERT, &[&token_hash, &user_id, &device_id, &now_ms])
}

pub async fn lookup(db: &Db, token_hash: &str) -> Result<Option<TokenOwner>> {
    db.first(LOOKUP, &[&token_hash]).await
}

pub fn delete_for_device(db: &Db, user_id: &str, device_id: &str) -> Result<Statement> {
    db.prepare(DELETE_FOR_DEVICE, &[&user_id, &device_id])
}

pub fn delete_all(db: &Db, user_id: &str) -> Result<Statement> {
    db.prepare(DELETE_ALL, &[&user_id])
}

pub fn delete_all_but(db: &Db, user_id: &str, keep_device_id: &str) -> Result<Statement> {
    db.prepare(DELETE_ALL_BUT, &[&user_id, &keep_device_id])
}
