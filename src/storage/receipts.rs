//! `receipts`: the latest `m.read` and `m.read.private` receipt of each (room, receipt type,
//! user, thread), thread '' for an unthreaded one. Every change takes a new stream position, so
//! `/sync` finds changes by it. A receipt only moves forward: one for an event at or before the
//! one it already names is ignored.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{Db, Statement};
use crate::error::{internal, Result};

/// `OR REPLACE` deletes the old row and inserts a new one at the next AUTOINCREMENT position.
/// Nothing is written when the receipt already names an event at or after `?6`.
const ADVANCE: &str = "INSERT OR REPLACE INTO receipts \
     (room_id, receipt_type, user_id, thread_id, event_id, event_stream, ts) \
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE NOT EXISTS (SELECT 1 FROM receipts \
     WHERE room_id = ?1 AND receipt_type = ?2 AND user_id = ?3 AND thread_id = ?4 AND event_stream >= ?6)";
const SINCE: &str = "SELECT room_id, receipt_type, user_id, thread_id, event_id, ts FROM receipts \
     INDEXED BY receipts_by_room WHERE room_id IN (SELECT value FROM json_each(?1)) \
     AND stream_id > ?2 AND stream_id <= ?3 AND (receipt_type != 'm.read.private' OR user_id = ?4) \
     ORDER BY stream_id";
pub(super) const MAX_STREAM_ID: &str = "SELECT coalesce(max(stream_id), 0) AS stream_id FROM receipts";

/// The receipt types stored here. `m.fully_read` is room account data.
pub const READ: &str = "m.read";
pub const READ_PRIVATE: &str = "m.read.private";

/// One receipt to record.
#[derive(Debug, Clone)]
pub struct NewReceipt<'a> {
    pub room_id: &'a str,
    pub receipt_type: &'a str,
    pub user_id: &'a str,
    /// `None` for an unthreaded receipt; `main` or a thread root's event ID otherwise.
    pub thread_id: Option<&'a str>,
    pub event_id: &'a str,
    /// The event's stream position, which orders receipts of one room.
    pub event_stream: u64,
    pub ts: u64,
}

/// Records a receipt unless the stored one is already at this event or a later one: the
/// statement changes 1 row when the receipt moved, 0 when it was ignored.
pub fn advance(db: &Db, r: &NewReceipt<'_>) -> Result<Statement> {
    let thread = r.thread_id.unwrap_or("");
    db.prepare(ADVANCE, &[&r.room_id, &r.receipt_type, &r.user_id, &thread, &r.event_id, &r.event_stream, &r.ts])
}

/// One stored receipt as `/sync` reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct ReceiptRow {
    pub room_id: String,
    pub receipt_type: String,
    pub user_id: String,
    /// '' for an unthreaded receipt.
    pub thread_id: String,
    pub event_id: String,
    pub ts: f64,
}

/// The `m.receipt` content of each of `room_ids` that has receipts written at positions in
/// `(after, upto]` (every receipt when `after` is 0):
/// `{event_id: {receipt_type: {user_id: {ts, thread_id?}}}}`. `m.read.private` receipts are
/// only those of `reader`. Rooms without any are absent.
pub async fn since(
    db: &Db,
    room_ids: &[String],
    reader: &str,
    after: u64,
    upto: u64,
) -> Result<BTreeMap<String, Value>> {
    if room_ids.is_empty() || upto <= after {
        return Ok(BTreeMap::new());
    }
    let ids = serde_json::to_string(room_ids).map_err(|e| internal("room list", e))?;
    let rows: Vec<ReceiptRow> = db.all(SINCE, &[&ids, &after, &upto, &reader]).await?;
    Ok(edu_contents(rows))
}

/// Groups rows, oldest first, into one `m.receipt` content per room. A later row for the same
/// (event, type, user) replaces an earlier one: the format has room for one receipt there.
pub fn edu_contents(rows: Vec<ReceiptRow>) -> BTreeMap<String, Value> {
    let mut rooms: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for row in rows {
        let mut receipt = Map::new();
        receipt.insert("ts".into(), json!(row.ts as u64));
        if !row.thread_id.is_empty() {
            receipt.insert("thread_id".into(), Value::String(row.thread_id));
        }
        let content = rooms.entry(row.room_id).or_default();
        let by_type = content.entry(row.event_id).or_insert_with(|| json!({}));
        let Some(by_type) = by_type.as_object_mut() else { continue };
        let by_user = by_type.entry(row.receipt_type).or_insert_with(|| json!({}));
        let Some(by_user) = by_user.as_object_mut() else { continue };
        by_user.insert(row.user_id, Value::Object(receipt));
    }
    rooms.into_iter().map(|(room, content)| (room, Value::Object(content))).collect()
}

/// The position of the latest receipt change in any room, 0 before the first.
pub async fn max_stream_id(db: &Db) -> Result<u64> {
    #[derive(Deserialize)]
    struct Row {
        stream_id: f64,
    }
    Ok(db.first::<Row>(MAX_STREAM_ID, &[]).await?.map_or(0, |r| r.stream_id as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(room: &str, kind: &str, user: &str, thread: &str, event: &str, ts: u64) -> ReceiptRow {
        ReceiptRow {
            room_id: room.into(),
            receipt_type: kind.into(),
            user_id: user.into(),
            thread_id: thread.into(),
            event_id: event.into(),
            ts: ts as f64,
        }
    }

    #[test]
    fn rows_group_by_room_event_type_and_user() {
        let rows = vec![
            row("!a:hs", READ, "@u:hs", "", "$1", 10),
            row("!a:hs", READ, "@v:hs", "main", "$1", 11),
            row("!a:hs", READ_PRIVATE, "@u:hs", "", "$2", 12),
            row("!b:hs", READ, "@u:hs", "$root", "$3", 13),
        ];
        let contents = edu_contents(rows);
        assert_eq!(contents.len(), 2);
        assert_eq!(
            contents["!a:hs"],
            json!({
                "$1": {"m.read": {"@u:hs": {"ts": 10}, "@v:hs": {"ts": 11, "thread_id": "main"}}},
                "$2": {"m.read.private": {"@u:hs": {"ts": 12}}},
            })
        );
        assert_eq!(contents["!b:hs"], json!({"$3": {"m.read": {"@u:hs": {"ts": 13, "thread_id": "$root"}}}}));
    }

    #[test]
    fn a_later_row_for_the_same_event_type_and_user_wins() {
        let rows = vec![row("!a:hs", READ, "@u:hs", "", "$1", 10), row("!a:hs", READ, "@u:hs", "main", "$1", 20)];
        assert_eq!(edu_contents(rows)["!a:hs"], json!({"$1": {"m.read": {"@u:hs": {"ts": 20, "thread_id": "main"}}}}));
    }

    #[test]
    fn no_rows_no_rooms() {
        assert!(edu_contents(Vec::new()).is_empty());
    }
}
