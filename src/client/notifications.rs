//! `GET /_matrix/client/v3/notifications`: the events the user's push rules notified them of,
//! newest first.
//!
//! Each was visible to the user when it notified them (they were a member), so no visibility
//! check applies; redacted events are served redacted.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::context::Ctx;
use crate::error::{invalid_param, Result};
use crate::http::Reply;
use crate::room::client_format::client_event;
use crate::storage::event_push_actions;
use crate::storage::events;
use crate::time::now_ms;

use super::room_access::parse_limit;
use super::rooms::{parse_room_id, reader, room_version};

/// Synapse's default page, and its largest.
const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 1000;

pub async fn get_notifications(cx: Ctx) -> Result<Reply> {
    let user = cx.requester()?.user_id.to_string();
    let before = match cx.req.query("from") {
        None => None,
        Some(raw) => Some(raw.parse::<u64>().map_err(|_| invalid_param(format!("Unknown from token {raw:?}")))?),
    };
    let limit = parse_limit(cx.req.query("limit"), DEFAULT_LIMIT, MAX_LIMIT)?.max(1);
    let only_highlight = cx.req.query("only").is_some_and(|only| only.contains("highlight"));
    let rows = event_push_actions::page(&cx.db, &user, before, only_highlight, limit).await?;
    let ids: Vec<String> = rows.iter().map(|r| r.event_id.clone()).collect();
    let stored: BTreeMap<String, events::StoredEvent> =
        events::get_many(&cx.db, &ids).await?.into_iter().map(|e| (e.event_id.clone(), e)).collect();
    let reader = reader(&cx)?;
    let now = now_ms();
    let mut notifications = Vec::new();
    for row in &rows {
        let Some(event) = stored.get(&row.event_id) else { continue };
        let version = room_version(&cx, &parse_room_id(&row.room_id)?).await?;
        let actions: Value = serde_json::from_str(&row.actions).unwrap_or_else(|_| json!([]));
        notifications.push(json!({
            "actions": actions,
            "event": client_event(event, &version, reader, now),
            // The spec's profile tag of the rule that matched; as in Synapse, always null.
            "profile_tag": null,
            "read": row.read != 0.0,
            "room_id": row.room_id,
            "ts": row.ts as u64,
        }));
    }
    let mut body = json!({ "notifications": notifications });
    if rows.len() as u64 == limit {
        if let Some(last) = rows.last() {
            body["next_token"] = json!((last.event_stream as u64).to_string());
        }
    }
    Reply::json(&body)
}
