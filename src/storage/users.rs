//! `users`: one row per account, guests included.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

const INSERT: &str = "INSERT INTO users (user_id, password_hash, is_guest, created_ms) VALUES (?1, ?2, ?3, ?4)";
const SELECT: &str = "SELECT password_hash, deactivated FROM users WHERE user_id = ?1";
const EXISTS: &str = "SELECT 1 AS found FROM users WHERE user_id = ?1";
const SET_PASSWORD: &str = "UPDATE users SET password_hash = ?2 WHERE user_id = ?1";
const UPGRADE_GUEST: &str = "UPDATE users SET password_hash = ?2, is_guest = 0 WHERE user_id = ?1 AND is_guest = 1";
const DEACTIVATE: &str = "UPDATE users SET deactivated = 1, password_hash = NULL WHERE user_id = ?1";

#[derive(Debug, Deserialize)]
pub struct User {
    pub password_hash: Option<String>,
    deactivated: f64,
}

impl User {
    pub fn is_deactivated(&self) -> bool {
        self.deactivated != 0.0
    }
}

pub fn insert(db: &Db, user_id: &str, password_hash: Option<&str>, is_guest: bool, now_ms: u64) -> Result<Statement> {
    db.prepare(INSERT, &[&user_id, &password_hash, &is_guest, &now_ms])
}

pub async fn get(db: &Db, user_id: &str) -> Result<Option<User>> {
    db.first(SELECT, &[&user_id]).await
}

/// Whether the ID is taken, by a live or a deactivated account.
pub async fn exists(db: &Db, user_id: &str) -> Result<bool> {
    Ok(db.first::<serde_json::Value>(EXISTS, &[&user_id]).await?.is_some())
}

pub fn set_password(db: &Db, user_id: &str, password_hash: &str) -> Result<Statement> {
    db.prepare(SET_PASSWORD, &[&user_id, &password_hash])
}

/// Makes a guest a full user with a password; changes nothing for anyone else.
pub fn upgrade_guest(db: &Db, user_id: &str, password_hash: &str) -> Result<Statement> {
    db.prepare(UPGRADE_GUEST, &[&user_id, &password_hash])
}

pub fn deactivate(db: &Db, user_id: &str) -> Result<Statement> {
    db.prepare(DEACTIVATE, &[&user_id])
}
