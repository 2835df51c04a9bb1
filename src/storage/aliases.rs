//! `room_aliases`: local room aliases and the rooms they point to.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

const INSERT: &str = "INSERT INTO room_aliases (alias, room_id, creator, created_ms) VALUES (?1, ?2, ?3, ?4)";
const SELECT: &str = "SELECT room_id, creator FROM room_aliases WHERE alias = ?1";
const BY_ROOM: &str = "SELECT alias FROM room_aliases WHERE room_id = ?1 ORDER BY alias";
const DELETE: &str = "DELETE FROM room_aliases WHERE alias = ?1";
const MOVE_ROOM: &str = "UPDATE room_aliases SET room_id = ?2 WHERE room_id = ?1";

#[derive(Debug, Deserialize)]
pub struct Alias {
    pub room_id: String,
    pub creator: String,
}

/// Fails with a UNIQUE conflict when the alias is taken.
pub fn insert(db: &Db, alias: &str, room_id: &str, creator: &str, now_ms: u64) -> Result<Statement> {
    db.prepare(INSERT, &[&alias, &room_id, &creator, &now_ms])
}

pub async fn get(db: &Db, alias: &str) -> Result<Option<Alias>> {
    db.first(SELECT, &[&alias]).await
}

pub async fn for_room(db: &Db, room_id: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        alias: String,
    }
    Ok(db.all::<Row>(BY_ROOM, &[&room_id]).await?.into_iter().map(|r| r.alias).collect())
}

/// Removes an alias; the statement changes no row when the alias did not exist.
pub fn delete(db: &Db, alias: &str) -> Result<Statement> {
    db.prepare(DELETE, &[&alias])
}

/// Points every alias of a room at another room (a room upgrade).
pub fn move_to(db: &Db, from_room_id: &str, to_room_id: &str) -> Result<Statement> {
    db.prepare(MOVE_ROOM, &[&from_room_id, &to_room_id])
}
