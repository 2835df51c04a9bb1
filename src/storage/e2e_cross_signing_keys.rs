//! `e2e_cross_signing_keys`: each user's master, self-signing and user-signing keys.

use serde::Deserialize;

use super::Db;
use crate::error::Result;

const OF_USERS: &str = "SELECT user_id, usage, key_id, key_json FROM e2e_cross_signing_keys \
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
    /// `ed25519:<public key>`.
    pub key_id: String,
    /// JSON text of the uploaded object.
    pub key_json: String,
}

/// The keys of the users in `users_json`, a JSON array of user IDs.
pub async fn of_users(db: &Db, users_json: &str) -> Result<Vec<CrossSigningKeyRow>> {
    db.all(OF_USERS, &[&users_json]).await
}
