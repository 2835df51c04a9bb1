//! `e2e_device_keys`: each device's identity keys, the signed object of `/keys/upload`.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

const UPSERT: &str = "INSERT INTO e2e_device_keys (user_id, device_id, key_json) VALUES (?1, ?2, ?3) \
     ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json";
const GET: &str = "SELECT key_json FROM e2e_device_keys WHERE user_id = ?1 AND device_id = ?2";
/// The keys of the users in the JSON array ?1, with each device's display name.
const OF_USERS: &str = "SELECT k.user_id, k.device_id, k.key_json, d.display_name FROM e2e_device_keys k \
     JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id \
     WHERE k.user_id IN (SELECT value FROM json_each(?1)) ORDER BY k.user_id, k.device_id";

/// A device's keys, as `/keys/query` serves them.
#[derive(Debug, Deserialize)]
pub struct DeviceKeysRow {
    pub user_id: String,
    pub device_id: String,
    /// JSON text of the uploaded object.
    pub key_json: String,
    pub display_name: Option<String>,
}

pub fn upsert(db: &Db, user_id: &str, device_id: &str, key_json: &str) -> Result<Statement> {
    db.prepare(UPSERT, &[&user_id, &device_id, &key_json])
}

/// The JSON text of a device's keys, if it uploaded any.
pub async fn get(db: &Db, user_id: &str, device_id: &str) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Row {
        key_json: String,
    }
    Ok(db.first::<Row>(GET, &[&user_id, &device_id]).await?.map(|r| r.key_json))
}

/// The device keys of every device of the users in `users_json`, a JSON array of user IDs.
pub async fn of_users(db: &Db, users_json: &str) -> Result<Vec<DeviceKeysRow>> {
    db.all(OF_USERS, &[&users_json]).await
}
