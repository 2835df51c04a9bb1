//! `admin_register_nonces`: the nonces of shared-secret registration, each good once.

use super::{Db, Statement};
use crate::error::Result;

const INSERT: &str = "INSERT INTO admin_register_nonces (nonce, created_ms) VALUES (?1, ?2)";
const DELETE_EXPIRED: &str = "DELETE FROM admin_register_nonces WHERE created_ms < ?1";
/// Spends a nonce: one row changed means it was live.
const SPEND: &str = "DELETE FROM admin_register_nonces WHERE nonce = ?1 AND created_ms >= ?2";

pub fn insert(db: &Db, nonce: &str, now_ms: u64) -> Result<Statement> {
    db.prepare(INSERT, &[&nonce, &now_ms])
}

pub fn delete_expired(db: &Db, oldest_ms: u64) -> Result<Statement> {
    db.prepare(DELETE_EXPIRED, &[&oldest_ms])
}

pub fn spend(db: &Db, nonce: &str, oldest_ms: u64) -> Result<Statement> {
    db.prepare(SPEND, &[&nonce, &oldest_ms])
}
