//! `sliding_sync_positions`: what each sliding sync connection (user, device, `conn_id`) was sent,
//! one row per position the server handed out. A request continues from one position and gets a
//! new one; the positions before the one it named are forgotten, as the client holds a newer one.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

const GET: &str = "SELECT streams, rooms FROM sliding_sync_positions \
     WHERE user_id = ?1 AND device_id = ?2 AND conn_id = ?3 AND pos = ?4";
/// The next position of the connection, past every one it ever had (a reset keeps the newest row
/// until this one is written), so that no position is handed out twice.
const INSERT: &str =
    "INSERT INTO sliding_sync_positions (user_id, device_id, conn_id, pos, streams, rooms, created_ms) \
     SELECT ?1, ?2, ?3, coalesce(max(pos), 0) + 1, ?4, ?5, ?6 FROM sliding_sync_positions \
     WHERE user_id = ?1 AND device_id = ?2 AND conn_id = ?3 RETURNING pos";
/// Positions older than `?4` (the one the request continued from), and those of the device's
/// connections unused since `?5`.
const FORGET_BEFORE: &str = "DELETE FROM sliding_sync_positions WHERE user_id = ?1 AND device_id = ?2 \
     AND ((conn_id = ?3 AND pos < ?4) OR created_ms < ?5)";
/// Every position of the connection but its newest: a request without `pos` starts over.
const FORGET_ALL_BUT_NEWEST: &str = "DELETE FROM sliding_sync_positions WHERE user_id = ?1 AND device_id = ?2 \
     AND ((conn_id = ?3 AND pos < (SELECT max(pos) FROM sliding_sync_positions \
     WHERE user_id = ?1 AND device_id = ?2 AND conn_id = ?3)) OR created_ms < ?4)";

/// One connection as a request names it.
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    pub user_id: &'a str,
    pub device_id: &'a str,
    pub conn_id: &'a str,
}

/// What a position stored: the sync token of the streams its response covered, and the JSON of
/// what each room was sent.
#[derive(Debug, Clone, Deserialize)]
pub struct Stored {
    pub streams: String,
    pub rooms: String,
}

pub async fn get(db: &Db, c: Connection<'_>, pos: u64) -> Result<Option<Stored>> {
    db.first(GET, &[&c.user_id, &c.device_id, &c.conn_id, &pos]).await
}

/// Stores a new position (its one result row is `{pos}`), then forgets the ones before
/// `continued` (all but the new one when `None`) and the device's positions written before
/// `expired_before_ms`. Run them in one batch, in this order.
pub fn advance(
    db: &Db,
    c: Connection<'_>,
    continued: Option<u64>,
    streams: &str,
    rooms: &str,
    now_ms: u64,
    expired_before_ms: u64,
) -> Result<Vec<Statement>> {
    let insert = db.prepare(INSERT, &[&c.user_id, &c.device_id, &c.conn_id, &streams, &rooms, &now_ms])?;
    let forget = match continued {
        Some(pos) => db.prepare(FORGET_BEFORE, &[&c.user_id, &c.device_id, &c.conn_id, &pos, &expired_before_ms])?,
        None => db.prepare(FORGET_ALL_BUT_NEWEST, &[&c.user_id, &c.device_id, &c.conn_id, &expired_before_ms])?,
    };
    Ok(vec![insert, forget])
}

#[derive(Debug, Deserialize)]
pub struct NewPos {
    pub pos: f64,
}
