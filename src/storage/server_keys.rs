//! `server_signing_keys`: the server's ed25519 signing keys. The oldest is the one in use; a key
//! is created once, by whichever isolate asks first.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

const CURRENT: &str = "SELECT key_id, seed FROM server_signing_keys ORDER BY created_ms, key_id LIMIT 1";
const INSERT_FIRST: &str = "INSERT INTO server_signing_keys (key_id, seed, created_ms) \
     SELECT ?1, ?2, ?3 WHERE NOT EXISTS (SELECT 1 FROM server_signing_keys)";

#[derive(Debug, Deserialize)]
pub struct StoredKey {
    pub key_id: String,
    pub seed: String,
}

pub async fn current(db: &Db) -> Result<Option<StoredKey>> {
    db.first(CURRENT, &[]).await
}

/// Stores the key unless one exists; racing creators end up agreeing on [`current`].
pub fn insert_first(db: &Db, key_id: &str, seed: &str, now_ms: u64) -> Result<Statement> {
    db.prepare(INSERT_FIRST, &[&key_id, &seed, &now_ms])
}
