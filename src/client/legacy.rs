//! The deprecated event stream and initial syncs: `GET /events`, `GET /initialSync` and
//! `GET /rooms/{roomId}/initialSync`. Clients use `/sync`; these are thin wrappers over its code
//! for the clients and tests (Sytest) that still call them. They serve rooms the user is or was
//! in; peeking into a world-readable room is not supported.
//!
//! Events come in the old client format: with `room_id`, `user_id` (the sender) and, in
//! presence, `content.user_id`. Tokens are sync tokens.

use ruma_common::OwnedRoomId;
use serde_json::{json, Value};

use crate::context::Ctx;
use crate::durable_objects::user_sync::Positions;
use crate::error::{forbidden, Result};
use crate::http::Reply;
use crate::storage::streams;

use super::filter::Filter;
use super::room_access::{parse_bool, parse_limit, stream_token};
use super::rooms::room_id_param;
use super::sync::{options, parse_sync_token, sync_once, sync_token, sync_waiting, SyncResponse};

/// The messages per room of an initial sync when `limit` is not given, as Synapse.
const DEFAULT_LIMIT: u64 = 10;
const MAX_LIMIT: u64 = 100;
/// The events an event stream reads per room and call.
const STREAM_LIMIT: u64 = 1000;

/// `GET /events`: what happened since `from` (without one, since now), waiting up to `timeout`
/// for something; `room_id` narrows it to one of the user's rooms.
pub async fn get_events(cx: Ctx) -> Result<Reply> {
    let timeout_ms = parse_limit(cx.req.query("timeout"), 0, u64::MAX >> 11)?;
    let from = match cx.req.query("from") {
        Some(raw) => parse_sync_token(raw)?,
        None => Positions::from_array(streams::heads(&cx.db).await?),
    };
    let mut filter = Filter::default();
    if let Some(room_id) = cx.req.query("room_id") {
        filter.room.rooms = Some(vec![super::rooms::parse_room_id(room_id)?]);
    }
    let mut options = options(filter, false);
    options.stream_only = true;
    options.timeline_limit = STREAM_LIMIT;
    let user = cx.requester()?.user_id.to_string();
    // The old event stream sets no presence: only `/sync` and `PUT /presence` do.
    let response = sync_waiting(&cx, &user, Some(from), &options, timeout_ms, false).await?;
    let mut chunk = Vec::new();
    for (room_id, room) in response.rooms.join.iter().chain(&response.rooms.leave) {
        for section in ["timeline", "ephemeral", "account_data"] {
            chunk.extend(events_of(room, section).into_iter().map(|e| in_room(e, room_id)));
        }
    }
    chunk.extend(response.presence.iter().cloned().map(old_presence));
    chunk.extend(response.account_data.iter().cloned());
    let end = sync_token(&response.next.max_with(&from));
    Reply::json(&json!({"start": sync_token(&from), "end": end, "chunk": chunk}))
}

/// `GET /initialSync`: every room with its state and latest messages, presence, account data
/// and receipts; `archived=true` adds the rooms the user left.
pub async fn initial_sync(cx: Ctx) -> Result<Reply> {
    let archived = parse_bool("archived", cx.req.query("archived"))?.unwrap_or(false);
    let mut filter = Filter::default();
    filter.room.include_leave = archived;
    let response = initial(&cx, filter).await?;
    let end = sync_token(&response.next);
    let mut rooms = Vec::new();
    let mut receipts = Vec::new();
    for (membership, section) in [("join", &response.rooms.join), ("leave", &response.rooms.leave)] {
        for (room_id, room) in section {
            receipts.extend(receipts_of(room, room_id));
            rooms.push(room_json(room_id, membership, room, &end));
        }
    }
    for (room_id, room) in &response.rooms.invite {
        let state: Vec<Value> = events_of(&room["invite_state"], "").into_iter().map(|e| in_room(e, room_id)).collect();
        rooms.push(json!({"room_id": room_id, "membership": "invite", "state": state}));
    }
    Reply::json(&json!({
        "end": end,
        "rooms": rooms,
        "presence": response.presence.iter().cloned().map(old_presence).collect::<Vec<_>>(),
        "account_data": response.account_data,
        "receipts": receipts,
    }))
}

/// `GET /rooms/{roomId}/initialSync`: one room the user is or was in, as `/initialSync` shows it.
pub async fn room_initial_sync(cx: Ctx) -> Result<Reply> {
    let room_id: OwnedRoomId = room_id_param(&cx)?;
    let mut filter = Filter::default();
    filter.room.rooms = Some(vec![room_id.clone()]);
    filter.room.include_leave = true;
    let response = initial(&cx, filter).await?;
    let end = sync_token(&response.next);
    let key = room_id.as_str();
    let (membership, room) = match (response.rooms.join.get(key), response.rooms.leave.get(key)) {
        (Some(room), _) => ("join", room),
        (None, Some(room)) => ("leave", room),
        (None, None) => return Err(forbidden("You are not in this room")),
    };
    let mut reply = room_json(key, membership, room, &end);
    reply["presence"] = Value::Array(response.presence.iter().cloned().map(old_presence).collect());
    reply["receipts"] = Value::Array(receipts_of(room, key));
    Reply::json(&reply)
}

/// An initial sync with the `limit` of messages per room.
async fn initial(cx: &Ctx, filter: Filter) -> Result<SyncResponse> {
    let limit = parse_limit(cx.req.query("limit"), DEFAULT_LIMIT, MAX_LIMIT)?;
    let mut options = options(filter, false);
    // With no messages, the newest is still read, so that the state is the current one.
    options.timeline_limit = limit.max(1);
    let user = cx.requester()?.user_id.to_string();
    let mut response = sync_once(cx, &user, None, &options).await?;
    if limit == 0 {
        for room in response.rooms.join.values_mut().chain(response.rooms.leave.values_mut()) {
            let events = std::mem::take(&mut room["timeline"]["events"]);
            // Its state still counts: it is part of the room's current state.
            let state: Vec<Value> = events_of(&json!({"x": {"events": events}}), "x")
                .into_iter()
                .filter(|e| e.get("state_key").is_some())
                .collect();
            if let Some(list) = room["state"]["events"].as_array_mut() {
                list.extend(state);
            }
            room["timeline"]["events"] = json!([]);
        }
    }
    Ok(response)
}

/// A room as `/initialSync` shows it: its messages, its current state (the state before the
/// timeline and the state events in it) and its account data.
fn room_json(room_id: &str, membership: &str, room: &Value, end: &str) -> Value {
    let timeline: Vec<Value> = events_of(room, "timeline").into_iter().map(|e| in_room(e, room_id)).collect();
    let mut state: Vec<Value> = Vec::new();
    for event in events_of(room, "state").into_iter().chain(timeline.iter().cloned()) {
        let Some(key) = event.get("state_key").cloned() else { continue };
        state.retain(|e| !(e["type"] == event["type"] && e["state_key"] == key));
        state.push(in_room(event, room_id));
    }
    let start = room["timeline"]["prev_batch"].as_str().map(str::to_owned).unwrap_or_else(|| stream_token(0));
    let account_data: Vec<Value> = events_of(room, "account_data").into_iter().map(|e| in_room(e, room_id)).collect();
    json!({
        "room_id": room_id,
        "membership": membership,
        "messages": {"chunk": timeline, "start": start, "end": end},
        "state": state,
        "account_data": account_data,
    })
}

/// The `m.receipt` events of a synced room, with its ID.
fn receipts_of(room: &Value, room_id: &str) -> Vec<Value> {
    events_of(room, "ephemeral").into_iter().filter(|e| e["type"] == "m.receipt").map(|e| in_room(e, room_id)).collect()
}

/// The events of a section of a synced room (`""`: the value itself holds `events`).
fn events_of(room: &Value, section: &str) -> Vec<Value> {
    let holder = if section.is_empty() { room } else { &room[section] };
    holder["events"].as_array().cloned().unwrap_or_default()
}

/// An event with its room's ID and, as the old format had it, its sender as `user_id`.
fn in_room(mut event: Value, room_id: &str) -> Value {
    if let Some(object) = event.as_object_mut() {
        object.insert("room_id".into(), room_id.into());
        if let Some(sender) = object.get("sender").cloned() {
            object.insert("user_id".into(), sender);
        }
    }
    event
}

/// A presence event as the old format had it: the user also in `content.user_id`.
fn old_presence(mut event: Value) -> Value {
    let sender = event.get("sender").cloned().unwrap_or(Value::Null);
    if let Some(content) = event.get_mut("content").and_then(Value::as_object_mut) {
        content.insert("user_id".into(), sender);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_of_a_room_is_its_state_then_its_timeline() {
        let room = json!({
            "timeline": {"events": [
                {"type": "m.room.name", "state_key": "", "sender": "@a:hs", "content": {"name": "new"}},
                {"type": "m.room.message", "sender": "@b:hs", "content": {"body": "hi"}},
            ], "prev_batch": "s5"},
            "state": {"events": [
                {"type": "m.room.name", "state_key": "", "sender": "@a:hs", "content": {"name": "old"}},
                {"type": "m.room.topic", "state_key": "", "sender": "@a:hs", "content": {"topic": "t"}},
            ]},
            "account_data": {"events": [{"type": "m.tag", "content": {"tags": {}}}]},
        });
        let out = room_json("!r:hs", "join", &room, "s9");
        let names: Vec<&Value> = out["state"].as_array().unwrap().iter().map(|e| &e["content"]).collect();
        assert_eq!(names, vec![&json!({"topic": "t"}), &json!({"name": "new"})]);
        assert_eq!(out["messages"]["start"], "s5");
        assert_eq!(out["messages"]["end"], "s9");
        assert_eq!(out["messages"]["chunk"][1]["user_id"], "@b:hs");
        assert_eq!(out["messages"]["chunk"][1]["room_id"], "!r:hs");
        assert_eq!(out["account_data"][0]["room_id"], "!r:hs");
        let presence =
            old_presence(json!({"type": "m.presence", "sender": "@a:hs", "content": {"presence": "online"}}));
        assert_eq!(presence["content"]["user_id"], "@a:hs");
    }
}
