//! `user_threepids`: third-party IDs (email addresses, phone numbers), set through the admin API.

use serde::{Deserialize, Serialize};

use super::{Db, Statement};
use crate::error::Result;

const OF_USER: &str =
    "SELECT medium, address, added_ms, validated_ms FROM user_threepids WHERE user_id = ?1 ORDER BY medium, address";
const INSERT: &str = "INSERT INTO user_threepids (user_id, medium, address, validated_ms, added_ms) \
     VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (medium, address) DO UPDATE SET validated_ms = excluded.validated_ms \
     WHERE user_id = excluded.user_id";
const DELETE_ALL: &str = "DELETE FROM user_threepids WHERE user_id = ?1";
const OWNER: &str = "SELECT user_id FROM user_threepids WHERE medium = ?1 AND address = ?2";

#[derive(Debug, Serialize, Deserialize)]
pub struct Threepid {
    pub medium: String,
    pub address: String,
    pub added_ms: f64,
    pub validated_ms: f64,
}

pub async fn of_user(db: &Db, user_id: &str) -> Result<Vec<Threepid>> {
    db.all(OF_USER, &[&user_id]).await
}

pub async fn owner(db: &Db, medium: &str, address: &str) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
    }
    Ok(db.first::<Row>(OWNER, &[&medium, &address]).await?.map(|r| r.user_id))
}

/// Adds one (or keeps it, if the user has it already).
pub fn insert(db: &Db, user_id: &str, medium: &str, address: &str, now_ms: u64) -> Result<Statement> {
    db.prepare(INSERT, &[&user_id, &medium, &address, &now_ms])
}

pub fn delete_all(db: &Db, user_id: &str) -> Result<Statement> {
    db.prepare(DELETE_ALL, &[&user_id])
}
