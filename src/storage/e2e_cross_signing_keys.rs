//! `e2e_cross_signing_keys`: each user's master, self-signing and user-signing keys.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

const UPSERT: &str = "INSERT INTO e2e_cross_signing_keys (user_id, usage, key_json) VALUES (?1, ?2, ?3) \
     ON CONFLICT (user_id, usage) DO UPDATE SET key_json = excluded.key_json";
const OF_USERS: &str = "SELECT user_id, usage, key_json FROM e2e_cross_signing_keys \
     WHERE user_id IN (SELECT value FROM json_each(?1))";

/// The usages, as stored and as the `usage` field names them.
pub const MASTER: &str = "master";
pub const SELF_SIGNING: &str = "self_signing";
pub const USER_SIGNING: &str = "user_signing";

/// One stored key.
#[derive(Debug, Clone, Deserialize)]
pub struct CrossSigningKeyRow {
    pub user_id: String,
    pub usage: String,
    /// JSON text of the uploaded object.
    pub key_json: String,
}

pub fn upsert(db: &Db, user_id: &str, usage: &str, key_json: &str) -> Result<Statement> {
    db.prepare(UPSERT, &[&user_id, &usage, &key_json])
}

/// The keys of the users in `users_json`, a JSON array of user IDs.
pub async fn of_users(db: &Db, users_json: &str) -> Result<Vec<CrossSigningKeyRow>> {
    db.all(OF_USERS, &[&users_json]).await
}
