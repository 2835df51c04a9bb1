//! `forgotten_rooms`: rooms a user left and then forgot.

use super::{Db, Statement};
use crate::error::Result;

const INSERT: &str = "INSERT OR IGNORE INTO forgotten_rooms (user_id, room_id) VALUES (?1, ?2)";
const DELETE: &str = "DELETE FROM forgotten_rooms WHERE user_id = ?1 AND room_id = ?2";

pub fn insert(db: &Db, user_id: &str, room_id: &str) -> Result<Statement> {
    db.prepare(INSERT, &[&user_id, &room_id])
}

/// A user who comes back to a room has not forgotten it any more.
pub fn delete(db: &Db, user_id: &str, room_id: &str) -> Result<Statement> {
    db.prepare(DELETE, &[&user_id, &room_id])
}
