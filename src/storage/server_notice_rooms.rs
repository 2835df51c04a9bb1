//! `server_notice_rooms`: each user's server notices room, and the pinned usage-limit notice.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

const SELECT: &str = "SELECT room_id FROM server_notice_rooms WHERE user_id = ?1";
/// The first room stored wins; a racing creator reads it back.
const INSERT: &str = "INSERT INTO server_notice_rooms (user_id, room_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING";
const SET_LIMIT_NOTICE: &str = "UPDATE server_notice_rooms SET limit_notice_id = ?2 WHERE user_id = ?1";

pub async fn get(db: &Db, user_id: &str) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Row {
        room_id: String,
    }
    Ok(db.first::<Row>(SELECT, &[&user_id]).await?.map(|r| r.room_id))
}

pub fn insert(db: &Db, user_id: &str, room_id: &str) -> Result<Statement> {
    db.prepare(INSERT, &[&user_id, &room_id])
}

pub fn set_limit_notice(db: &Db, user_id: &str, event_id: Option<&str>) -> Result<Statement> {
    db.prepare(SET_LIMIT_NOTICE, &[&user_id, &event_id])
}
