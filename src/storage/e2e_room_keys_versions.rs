//! `e2e_room_keys_versions`: each user's key backup versions. The newest version not deleted is
//! the current one, the only one that takes keys.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

/// Versions are numbered per user, never reusing a deleted one's number.
const CREATE: &str = "INSERT INTO e2e_room_keys_versions (user_id, version, algorithm, auth_data) \
     SELECT ?1, coalesce(max(version), 0) + 1, ?2, ?3 FROM e2e_room_keys_versions WHERE user_id = ?1 \
     RETURNING version";
/// Version ?2 of ?1, or with ?2 NULL the current one, unless deleted; with its key count.
const GET: &str = "SELECT v.version, v.algorithm, v.auth_data, v.etag, \
     (SELECT count(*) FROM e2e_room_keys k WHERE k.user_id = v.user_id AND k.version = v.version) AS count \
     FROM e2e_room_keys_versions v WHERE v.user_id = ?1 AND v.deleted = 0 AND (?2 IS NULL OR v.version = ?2) \
     ORDER BY v.version DESC LIMIT 1";
/// Whether version ?2 of ?1 was ever created, and whether it is deleted.
const STATE: &str = "SELECT deleted FROM e2e_room_keys_versions WHERE user_id = ?1 AND version = ?2";
const SET_AUTH_DATA: &str =
    "UPDATE e2e_room_keys_versions SET auth_data = ?3 WHERE user_id = ?1 AND version = ?2 AND deleted = 0";
const DELETE: &str = "UPDATE e2e_room_keys_versions SET deleted = 1 WHERE user_id = ?1 AND version = ?2";
/// The current version of ?1, for the statements that only write to it.
pub(super) const CURRENT: &str = "(SELECT max(version) FROM e2e_room_keys_versions WHERE user_id = ?1 AND deleted = 0)";

/// A version as `GET /room_keys/version` shows it.
#[derive(Debug, Deserialize)]
pub struct VersionRow {
    pub version: u64,
    pub algorithm: String,
    /// JSON text of an object.
    pub auth_data: String,
    pub etag: u64,
    pub count: u64,
}

/// Creates the user's next version, which becomes the current one; returns its number.
pub async fn create(db: &Db, user_id: &str, algorithm: &str, auth_data: &str) -> Result<u64> {
    #[derive(Deserialize)]
    struct Row {
        version: u64,
    }
    let row: Option<Row> = db.first(CREATE, &[&user_id, &algorithm, &auth_data]).await?;
    Ok(row.map_or(0, |r| r.version))
}

/// A version that is not deleted, or (with `None`) the current one.
pub async fn get(db: &Db, user_id: &str, version: Option<u64>) -> Result<Option<VersionRow>> {
    db.first(GET, &[&user_id, &version]).await
}

/// `None` if the version never existed, else whether it is deleted.
pub async fn deleted(db: &Db, user_id: &str, version: u64) -> Result<Option<bool>> {
    #[derive(Deserialize)]
    struct Row {
        deleted: u8,
    }
    Ok(db.first::<Row>(STATE, &[&user_id, &version]).await?.map(|r| r.deleted == 1))
}

pub fn set_auth_data(db: &Db, user_id: &str, version: u64, auth_data: &str) -> Result<Statement> {
    db.prepare(SET_AUTH_DATA, &[&user_id, &version, &auth_data])
}

/// Marks the version deleted; its keys go with [`super::e2e_room_keys::delete`].
pub fn delete(db: &Db, user_id: &str, version: u64) -> Result<Statement> {
    db.prepare(DELETE, &[&user_id, &version])
}
