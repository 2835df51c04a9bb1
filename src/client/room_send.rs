//! Sending events: `PUT /rooms/{roomId}/send/{eventType}/{txnId}` (and the deprecated
//! `POST /rooms/{roomId}/send/{eventType}`, which Synapse still serves),
//! `PUT /rooms/{roomId}/state/{eventType}/{stateKey}` and
//! `PUT /rooms/{roomId}/redact/{eventId}/{txnId}`.

use ruma_common::{CanonicalJsonObject, CanonicalJsonValue, RoomAliasId, RoomId};
use serde_json::json;

use crate::context::Ctx;
use crate::durable_objects::room::{Facts, RedactedState};
use crate::error::{invalid_param, not_found, ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::room::pdu::EventTemplate;
use crate::storage::{aliases, current_state, events};

use super::create_room::validate_power_levels;
use super::rooms::{content_body, parse_event_id, room_id_param, send_event, to_content, txn};

/// The spec's bound on event types and state keys, in bytes.
const MAX_ID_BYTES: usize = 255;

pub async fn send_message_event(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let kind = event_type_param(&cx)?;
    if cx.requester()?.is_guest && kind != "m.room.message" {
        // The spec's guest access lists `send/m.room.message` only.
        return Err(MatrixError::new(ErrorKind::GuestAccessForbidden, "Guests may only send m.room.message").into());
    }
    let content = content_body(&cx)?;
    let redacts = match (kind.as_str(), content.get("redacts")) {
        ("m.room.redaction", Some(CanonicalJsonValue::String(id))) => Some(id.clone()),
        _ => None,
    };
    let facts = match &redacts {
        Some(target) => redaction_facts(&cx, &room_id, target).await?,
        None => Facts::default(),
    };
    let template =
        EventTemplate { kind, state_key: None, sender: cx.requester()?.user_id.clone(), content, redacts: None };
    // The deprecated `POST /send/{eventType}` has no transaction ID: each request is an event.
    let txn = match cx.param("txnId") {
        "" => None,
        _ => Some(txn(&cx, &room_id, "send")?),
    };
    let facts = Facts { origin_server_ts: massaged_ts(&cx)?, ..facts };
    let sent = send_event(&cx, &room_id, template, txn, facts).await?;
    super::presence::activity(&cx);
    Reply::json(&json!({"event_id": sent.event_id}))
}

pub async fn send_state_event(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let kind = event_type_param(&cx)?;
    let state_key = cx.param("stateKey").to_owned();
    if state_key.len() > MAX_ID_BYTES {
        return Err(invalid_param("The state key is longer than 255 bytes"));
    }
    let content = content_body(&cx)?;
    if kind == "m.room.power_levels" {
        let value = serde_json::to_value(&content).unwrap_or_default();
        validate_power_levels(value.as_object().unwrap_or(&serde_json::Map::new()))?;
    }
    if kind == "m.room.canonical_alias" {
        check_canonical_aliases(&cx, &room_id, &content).await?;
    }
    let sender = cx.requester()?.user_id.clone();
    if let Some(event_id) = same_state(&cx, &room_id, &kind, &state_key, sender.as_str(), &content).await? {
        return Reply::json(&json!({ "event_id": event_id }));
    }
    // A join of one's own may be a restricted join: the writer needs the joiner's rooms.
    let own_join = kind == "m.room.member"
        && state_key == sender.as_str()
        && content.get("membership").and_then(CanonicalJsonValue::as_str) == Some("join");
    let facts = match own_join {
        true => Facts {
            joined_rooms: current_state::rooms_with_membership(&cx.db, sender.as_str(), "join").await?,
            ..Facts::default()
        },
        false => Facts::default(),
    };
    let revokes_guest_access = kind == "m.room.guest_access"
        && content.get("guest_access").and_then(CanonicalJsonValue::as_str) != Some("can_join");
    let template = EventTemplate { kind, state_key: Some(state_key), sender, content, redacts: None };
    let facts = Facts { origin_server_ts: massaged_ts(&cx)?, ..facts };
    let sent = send_event(&cx, &room_id, template, None, facts).await?;
    super::presence::activity(&cx);
    if revokes_guest_access {
        remove_guests(&cx, &room_id).await?;
    }
    Reply::json(&json!({"event_id": sent.event_id}))
}

/// An application service's `?ts=`: the `origin_server_ts` of the event it sends (bridges
/// keep the remote network's time). Ignored for everyone else, as Synapse does.
fn massaged_ts(cx: &Ctx) -> Result<Option<u64>> {
    if cx.requester()?.appservice.is_none() {
        return Ok(None);
    }
    match cx.req.query("ts") {
        None => Ok(None),
        Some(raw) => raw.parse::<u64>().map(Some).map_err(|_| invalid_param("ts must be a timestamp in milliseconds")),
    }
}

/// Guests a room kicks out at once when its guest access goes, as Synapse does (each leaves):
/// as many as a request's subrequests allow; the rest stay until they leave.
const MAX_GUESTS_REMOVED: u64 = 32;

/// Has the guests joined to the room leave it, now that guests may not join it.
async fn remove_guests(cx: &Ctx, room_id: &RoomId) -> Result<()> {
    let guests = current_state::joined_guests(&cx.db, room_id.as_str(), MAX_GUESTS_REMOVED).await?;
    let leaves = guests.iter().filter_map(|guest| {
        let guest = ruma_common::UserId::parse(guest.as_str()).ok()?;
        let content = to_content(serde_json::Map::from_iter([("membership".to_owned(), json!("leave"))])).ok()?;
        let template = EventTemplate {
            kind: "m.room.member".into(),
            state_key: Some(guest.to_string()),
            sender: guest,
            content,
            redacts: None,
        };
        Some(send_event(cx, room_id, template, None, Facts::default()))
    });
    for result in futures::future::join_all(leaves).await {
        if let Err(e) = result {
            // The guest access is revoked either way; only this guest stays.
            crate::log::error(&format!("removing a guest from {room_id}: {e:?}"));
        }
    }
    Ok(())
}

/// The current state event at this key if the sender sent it with this very content: sending it
/// again changes nothing, so, as Synapse does, no new event is made and its ID is returned.
pub(super) async fn same_state(
    cx: &Ctx,
    room_id: &RoomId,
    kind: &str,
    state_key: &str,
    sender: &str,
    content: &CanonicalJsonObject,
) -> Result<Option<String>> {
    let Some(current) = events::state_entry_at(&cx.db, room_id.as_str(), kind, state_key, u64::MAX >> 11).await? else {
        return Ok(None);
    };
    if current.sender != sender || current.redaction_id.is_some() {
        return Ok(None);
    }
    let pdu: serde_json::Value = serde_json::from_str(&current.json).unwrap_or_default();
    let wanted = serde_json::to_value(content).unwrap_or_default();
    Ok((pdu.get("content") == Some(&wanted)).then_some(current.event_id))
}

/// The aliases of an `m.room.canonical_alias` must be valid (`M_INVALID_PARAM`) and point to the
/// room (`M_BAD_ALIAS`), as Synapse checks.
async fn check_canonical_aliases(cx: &Ctx, room_id: &RoomId, content: &CanonicalJsonObject) -> Result<()> {
    let mut named = Vec::new();
    match content.get("alias") {
        None | Some(CanonicalJsonValue::Null) => {}
        Some(CanonicalJsonValue::String(alias)) => named.push(alias.as_str()),
        Some(_) => return Err(invalid_param("alias must be a string")),
    }
    match content.get("alt_aliases") {
        None => {}
        Some(CanonicalJsonValue::Array(alt)) => {
            for alias in alt {
                named.push(alias.as_str().ok_or_else(|| invalid_param("alt_aliases must hold strings"))?);
            }
        }
        Some(_) => return Err(invalid_param("alt_aliases must be a list")),
    }
    if named.is_empty() {
        return Ok(());
    }
    for alias in &named {
        RoomAliasId::parse(alias).map_err(|_| invalid_param(format!("{alias:?} is not a room alias")))?;
    }
    let of_room = aliases::for_room(&cx.db, room_id.as_str()).await?;
    match named.iter().find(|a| !of_room.iter().any(|r| r == *a)) {
        Some(alias) => {
            Err(MatrixError::new(ErrorKind::BadAlias, format!("The alias {alias} does not point to this room")).into())
        }
        None => Ok(()),
    }
}

pub async fn redact_event(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let target = cx.param("eventId").to_owned();
    let facts = redaction_facts(&cx, &room_id, &target).await?;
    let mut content = to_content(cx.req.json_or_empty()?)?;
    content.retain(|k, _| k == "reason");
    let template = EventTemplate {
        kind: "m.room.redaction".into(),
        state_key: None,
        sender: cx.requester()?.user_id.clone(),
        content,
        redacts: Some(parse_event_id(&target)?),
    };
    let txn = txn(&cx, &room_id, "redact")?;
    let sent = send_event(&cx, &room_id, template, Some(txn), facts).await?;
    super::presence::activity(&cx);
    Reply::json(&json!({"event_id": sent.event_id}))
}

fn event_type_param(cx: &Ctx) -> Result<String> {
    let kind = cx.param("eventType");
    if kind.len() > MAX_ID_BYTES {
        return Err(invalid_param("The event type is longer than 255 bytes"));
    }
    Ok(kind.to_owned())
}

/// The event a redaction targets must be in the room; the writer needs its sender.
async fn redaction_facts(cx: &Ctx, room_id: &RoomId, target: &str) -> Result<Facts> {
    parse_event_id(target)?;
    let event = events::get(&cx.db, target).await?.ok_or_else(|| not_found("The event to redact was not found"))?;
    if event.room_id != room_id.as_str() {
        // As Synapse answers; the event's room is not told.
        return Err(invalid_param("Cannot redact an event of another room"));
    }
    let redacted_state = match &event.state_key {
        Some(state_key) => {
            let pdu: serde_json::Value = serde_json::from_str(&event.json).unwrap_or_default();
            Some(RedactedState {
                kind: event.kind.clone(),
                state_key: state_key.clone(),
                content: pdu["content"].clone(),
            })
        }
        None => None,
    };
    Ok(Facts { redacted_sender: Some(event.sender), joined_rooms: Vec::new(), redacted_state, origin_server_ts: None })
}
