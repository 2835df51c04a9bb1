//! `to_device` and `to_device_txns`: send-to-device messages waiting for their device, and the
//! transaction IDs that make `sendToDevice` idempotent.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

/// Queues one request's messages in one statement. ?3 is a JSON array of
/// `[user_id, device_id or "*", content]`; only devices that exist receive a message, and `*`
/// stands for all of the user's devices. Rows are numbered in the order of the array.
const INSERT_MESSAGES: &str = "INSERT INTO to_device (user_id, device_id, sender, type, content) \
     SELECT d.user_id, d.device_id, ?1, ?2, json_extract(m.value, '$[2]') \
     FROM json_each(?3) m JOIN devices d ON d.user_id = json_extract(m.value, '$[0]') \
       AND (json_extract(m.value, '$[1]') = '*' OR d.device_id = json_extract(m.value, '$[1]')) \
     ORDER BY m.key, d.device_id";
const INSERT_TXN: &str = "INSERT INTO to_device_txns (user_id, device_id, txn_id, created_ms) VALUES (?1, ?2, ?3, ?4)";
/// The device's messages past ?3, oldest first: at most ?4, and only those that start within ?5
/// bytes of content. The first starts at 0, so it comes however large it is. Only sizes are
/// summed; no content past the cut is read out.
const PENDING: &str = "SELECT stream_id, sender, type, content FROM to_device \
     WHERE user_id = ?1 AND device_id = ?2 AND stream_id > ?3 AND stream_id <= \
       (SELECT max(stream_id) FROM (SELECT stream_id, sum(size) OVER (ORDER BY stream_id) - size AS before \
         FROM (SELECT stream_id, length(CAST(content AS BLOB)) AS size FROM to_device \
           WHERE user_id = ?1 AND device_id = ?2 AND stream_id > ?3 ORDER BY stream_id LIMIT ?4)) \
        WHERE before < ?5) \
     ORDER BY stream_id";
const DELETE_UPTO: &str = "DELETE FROM to_device WHERE user_id = ?1 AND device_id = ?2 AND stream_id <= ?3";
pub(super) const MAX_STREAM_ID: &str = "SELECT coalesce(max(stream_id), 0) AS stream_id FROM to_device";

/// A message waiting for a device, as `/sync` reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct ToDeviceRow {
    pub stream_id: u64,
    pub sender: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// JSON text of an object.
    pub content: String,
}

/// Queues messages: `messages_json` is a JSON array of `[user_id, device_id or "*", content]`.
pub fn insert_messages(db: &Db, sender: &str, kind: &str, messages_json: &str) -> Result<Statement> {
    db.prepare(INSERT_MESSAGES, &[&sender, &kind, &messages_json])
}

/// Records a transaction; it fails with a UNIQUE conflict when the device used the ID before.
pub fn insert_txn(db: &Db, user_id: &str, device_id: &str, txn_id: &str, now_ms: u64) -> Result<Statement> {
    db.prepare(INSERT_TXN, &[&user_id, &device_id, &txn_id, &now_ms])
}

/// The device's messages past position `after`, oldest first: at most `limit`, and as many as
/// start within `max_bytes` of content (always the first).
pub async fn pending(
    db: &Db,
    user_id: &str,
    device_id: &str,
    after: u64,
    limit: u64,
    max_bytes: u64,
) -> Result<Vec<ToDeviceRow>> {
    db.all(PENDING, &[&user_id, &device_id, &after, &limit, &max_bytes]).await
}

/// Forgets the device's messages up to position `upto`, once it has received them.
pub fn delete_upto(db: &Db, user_id: &str, device_id: &str, upto: u64) -> Result<Statement> {
    db.prepare(DELETE_UPTO, &[&user_id, &device_id, &upto])
}

/// The position of the latest message queued for anyone, 0 before the first.
pub async fn max_stream_id(db: &Db) -> Result<u64> {
    #[derive(Deserialize)]
    struct Row {
        stream_id: u64,
    }
    Ok(db.first::<Row>(MAX_STREAM_ID, &[]).await?.map_or(0, |r| r.stream_id))
}
