//! `profile_fields`: each profile field of each user, its value as JSON text.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

const SELECT_ALL: &str = "SELECT field, value FROM profile_fields WHERE user_id = ?1 ORDER BY field";
const SELECT_ONE: &str = "SELECT field, value FROM profile_fields WHERE user_id = ?1 AND field = ?2";
const SELECT_MEMBERSHIP_FIELDS: &str = "SELECT field, value FROM profile_fields \
     WHERE user_id = ?1 AND field IN ('displayname', 'avatar_url') ORDER BY field";
const SIZE_WITHOUT: &str =
    "SELECT coalesce(sum(length(CAST(field AS BLOB)) + length(CAST(value AS BLOB))), 0) AS bytes \
     FROM profile_fields WHERE user_id = ?1 AND field != ?2";
const UPSERT: &str = "INSERT INTO profile_fields (user_id, field, value) VALUES (?1, ?2, ?3) \
     ON CONFLICT (user_id, field) DO UPDATE SET value = excluded.value";
const DELETE_ONE: &str = "DELETE FROM profile_fields WHERE user_id = ?1 AND field = ?2";
const DELETE_ALL: &str = "DELETE FROM profile_fields WHERE user_id = ?1";

#[derive(Debug, Deserialize)]
pub struct Field {
    pub field: String,
    /// JSON text.
    pub value: String,
}

pub async fn all(db: &Db, user_id: &str) -> Result<Vec<Field>> {
    db.all(SELECT_ALL, &[&user_id]).await
}

pub async fn get(db: &Db, user_id: &str, field: &str) -> Result<Option<Field>> {
    db.first(SELECT_ONE, &[&user_id, &field]).await
}

/// The fields a membership event carries, `avatar_url` and `displayname`, those that are set.
pub async fn membership_fields(db: &Db, user_id: &str) -> Result<Vec<(String, serde_json::Value)>> {
    let rows: Vec<Field> = db.all(SELECT_MEMBERSHIP_FIELDS, &[&user_id]).await?;
    Ok(rows.into_iter().filter_map(|f| Some((f.field, serde_json::from_str(&f.value).ok()?))).collect())
}

/// The bytes the profile takes without `field`: keys plus JSON values.
pub async fn size_without(db: &Db, user_id: &str, field: &str) -> Result<u64> {
    #[derive(Deserialize)]
    struct Row {
        bytes: f64,
    }
    Ok(db.first::<Row>(SIZE_WITHOUT, &[&user_id, &field]).await?.map_or(0, |r| r.bytes as u64))
}

pub fn set(db: &Db, user_id: &str, field: &str, value_json: &str) -> Result<Statement> {
    db.prepare(UPSERT, &[&user_id, &field, &value_json])
}

pub fn delete(db: &Db, user_id: &str, field: &str) -> Result<Statement> {
    db.prepare(DELETE_ONE, &[&user_id, &field])
}

pub fn delete_all(db: &Db, user_id: &str) -> Result<Statement> {
    db.prepare(DELETE_ALL, &[&user_id])
}
