//! `rooms`: one row per room, with its version and whether the public directory lists it.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

const INSERT: &str =
    "INSERT INTO rooms (room_id, room_version, creator, is_public, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)";
const SELECT: &str = "SELECT room_version, creator, is_public FROM rooms WHERE room_id = ?1";
const SET_PUBLIC: &str = "UPDATE rooms SET is_public = ?2 WHERE room_id = ?1";
const PUBLIC_PAGE: &str =
    "SELECT room_id FROM rooms WHERE is_public = 1 AND room_id > ?1 ORDER BY room_id LIMIT ?2";

#[derive(Debug, Deserialize)]
pub struct Room {
    pub room_version: String,
    pub creator: String,
    is_public: f64,
}

impl Room {
    pub fn is_public(&self) -> bool {
        self.is_public != 0.0
    }
}

pub fn insert(db: &Db, room_id: &str, version: &str, creator: &str, is_public: bool, now_ms: u64) -> Result<Statement> {
    db.prepare(INSERT, &[&room_id, &version, &creator, &is_public, &now_ms])
}

pub async fn get(db: &Db, room_id: &str) -> Result<Option<Room>> {
    db.first(SELECT, &[&room_id]).await
}

pub fn set_public(db: &Db, room_id: &str, is_public: bool) -> Result<Statement> {
    db.prepare(SET_PUBLIC, &[&room_id, &is_public])
}

/// Public rooms in room ID order, after `after`.
pub async fn public_page(db: &Db, after: &str, limit: u64) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        room_id: String,
    }
    Ok(db.all::<Row>(PUBLIC_PAGE, &[&after, &limit]).await?.into_iter().map(|r| r.room_id).collect())
}
