//! The heads of the streams a sync token covers, read together: one query instead of one per
//! stream. Each table's own statement stays in its module.

use serde::Deserialize;

use super::{account_data, device_lists, event_push_actions, events, presence, receipts, to_device, typing, Db};
use crate::error::Result;

/// The highest position of each stream, in sync-token order: events, account data, to-device,
/// receipts, typing, presence, notifications, device lists.
pub async fn heads(db: &Db) -> Result<[u64; 8]> {
    #[derive(Deserialize)]
    struct Row {
        events: f64,
        account_data: f64,
        to_device: f64,
        receipts: f64,
        typing: f64,
        presence: f64,
        notifications: f64,
        device_lists: f64,
    }
    let sql = format!(
        "SELECT ({}) AS events, ({}) AS account_data, ({}) AS to_device, ({}) AS receipts, ({}) AS typing, \
         ({}) AS presence, ({}) AS notifications, ({}) AS device_lists",
        events::MAX_STREAM,
        account_data::MAX_STREAM_ID,
        to_device::MAX_STREAM_ID,
        receipts::MAX_STREAM_ID,
        typing::MAX_STREAM_ID,
        presence::MAX_STREAM_ID,
        event_push_actions::MAX_STREAM_ID,
        device_lists::MAX_STREAM_ID,
    );
    let row: Option<Row> = db.first(&sql, &[]).await?;
    Ok(row.map_or([0; 8], |r| {
        [r.events, r.account_data, r.to_device, r.receipts, r.typing, r.presence, r.notifications, r.device_lists]
            .map(|p| p as u64)
    }))
}
