//! `devices`: a user's logged-in devices.

use serde::{Deserialize, Serialize};

use super::{Db, Statement};
use crate::error::Result;

const UPSERT: &str = "INSERT INTO devices (user_id, device_id, display_name, last_seen_ts, last_seen_ip, created_ms) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?4) \
     ON CONFLICT (user_id, device_id) DO UPDATE SET \
     display_name = coalesce(excluded.display_name, display_name), \
     last_seen_ts = excluded.last_seen_ts, last_seen_ip = excluded.last_seen_ip";
const SELECT_ALL: &str =
    "SELECT device_id, display_name, last_seen_ts, last_seen_ip FROM devices WHERE user_id = ?1 ORDER BY device_id";
const SELECT_ONE: &str =
    "SELECT device_id, display_name, last_seen_ts, last_seen_ip FROM devices WHERE user_id = ?1 AND device_id = ?2";
const SET_DISPLAY_NAME: &str = "UPDATE devices SET display_name = ?3 WHERE user_id = ?1 AND device_id = ?2";
const TOUCH: &str = "UPDATE devices SET last_seen_ts = ?3, last_seen_ip = ?4 WHERE user_id = ?1 AND device_id = ?2";
const DELETE_ONE: &str = "DELETE FROM devices WHERE user_id = ?1 AND device_id = ?2";
const DELETE_ALL: &str = "DELETE FROM devices WHERE user_id = ?1";
const DELETE_ALL_BUT: &str = "DELETE FROM devices WHERE user_id = ?1 AND device_id != ?2";

/// A device as `GET /devices` shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Device {
    pub device_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen_ts: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen_ip: Option<String>,
}

/// Creates the device, or marks an existing one as seen (keeping its name unless one is given).
pub fn upsert(
    db: &Db,
    user_id: &str,
    device_id: &str,
    display_name: Option<&str>,
    now_ms: u64,
    ip: Option<&str>,
) -> Result<Statement> {
    db.prepare(UPSERT, &[&user_id, &device_id, &display_name, &now_ms, &ip])
}

pub async fn list(db: &Db, user_id: &str) -> Result<Vec<Device>> {
    db.all(SELECT_ALL, &[&user_id]).await
}

pub async fn get(db: &Db, user_id: &str, device_id: &str) -> Result<Option<Device>> {
    db.first(SELECT_ONE, &[&user_id, &device_id]).await
}

pub fn set_display_name(db: &Db, user_id: &str, device_id: &str, name: Option<&str>) -> Result<Statement> {
    db.prepare(SET_DISPLAY_NAME, &[&user_id, &device_id, &name])
}

pub fn touch(db: &Db, user_id: &str, device_id: &str, now_ms: u64, ip: Option<&str>) -> Result<Statement> {
    db.prepare(TOUCH, &[&user_id, &device_id, &now_ms, &ip])
}

pub fn delete(db: &Db, user_id: &str, device_id: &str) -> Result<Statement> {
    db.prepare(DELETE_ONE, &[&user_id, &device_id])
}

pub fn delete_all(db: &Db, user_id: &str) -> Result<Statement> {
    db.prepare(DELETE_ALL, &[&user_id])
}

pub fn delete_all_but(db: &Db, user_id: &str, keep_device_id: &str) -> Result<Statement> {
    db.prepare(DELETE_ALL_BUT, &[&user_id, &keep_device_id])
}
