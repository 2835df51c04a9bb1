//! What the room endpoints share: reading room IDs from paths, and sending an event through the
//! room's writer.

use std::cell::RefCell;
use std::collections::BTreeMap;

use ruma_common::{CanonicalJsonObject, EventId, OwnedEventId, OwnedRoomId, RoomId};

use crate::context::Ctx;
use crate::durable_objects::room::{self, Facts, RoomRequest, Sent};
use crate::error::{internal, invalid_param, not_found, Result};
use crate::room::client_format::Reader;
use crate::room::pdu::{EventTemplate, Pdu};
use crate::room::state::RoomState;
use crate::room::versions::RoomVersion;
use crate::storage::event_txns::Txn;
use crate::storage::events::StoredEvent;
use crate::storage::rooms;

/// The `roomId` path parameter: `M_INVALID_PARAM` when it is not a room ID.
pub fn room_id_param(cx: &Ctx) -> Result<OwnedRoomId> {
    parse_room_id(cx.param("roomId"))
}

pub fn parse_room_id(raw: &str) -> Result<OwnedRoomId> {
    let invalid = || invalid_param(format!("{raw:?} is not a room ID"));
    if raw.len() < 2 || raw.len() > 255 {
        return Err(invalid());
    }
    <&RoomId>::try_from(raw).map(ToOwned::to_owned).map_err(|_| invalid())
}

/// An event ID: `M_INVALID_PARAM` when it is not one (ruma takes a bare `$`; we don't).
pub fn parse_event_id(raw: &str) -> Result<OwnedEventId> {
    let invalid = || invalid_param(format!("{raw:?} is not an event ID"));
    if raw.len() < 2 || raw.len() > 255 {
        return Err(invalid());
    }
    EventId::parse(raw).map_err(|_| invalid())
}

thread_local! {
    /// Rooms whose version this isolate has read. A room's version never changes, so the cache
    /// is never stale; it only forgets, when it grows past [`MAX_CACHED_VERSIONS`].
    static VERSIONS: RefCell<BTreeMap<String, RoomVersion>> = const { RefCell::new(BTreeMap::new()) };
}
const MAX_CACHED_VERSIONS: usize = 4096;

/// The version of a room this server has: `M_NOT_FOUND` for one it does not.
pub async fn room_version(cx: &Ctx, room_id: &RoomId) -> Result<RoomVersion> {
    if let Some(version) = VERSIONS.with(|v| v.borrow().get(room_id.as_str()).cloned()) {
        return Ok(version);
    }
    let room = rooms::get(&cx.db, room_id.as_str()).await?.ok_or_else(|| not_found("Room not found"))?;
    let version = RoomVersion::parse(&room.room_version)?;
    VERSIONS.with(|v| {
        let mut versions = v.borrow_mut();
        if versions.len() >= MAX_CACHED_VERSIONS {
            versions.clear();
        }
        versions.insert(room_id.to_string(), version.clone());
    });
    Ok(version)
}

/// Sends one event through the room's writer and returns it once it is durable.
pub async fn send_event(
    cx: &Ctx,
    room_id: &RoomId,
    template: EventTemplate,
    txn: Option<Txn>,
    facts: Facts,
) -> Result<Sent> {
    crate::auth_blocking::check_requester(&cx.db, &cx.config, cx.requester()?).await?;
    let request = RoomRequest::Send { room_id: room_id.to_owned(), template, txn, facts };
    room::call(&cx.env, room_id.as_str(), &request)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| internal("room", "a send committed no event"))
}

/// A room's state as the writer's rules see it, from its stored current state events: a
/// redacted one redacted, as the writer loads it.
pub fn rules_view(version: RoomVersion, room_id: &RoomId, stored: &[StoredEvent]) -> Result<RoomState> {
    let mut room = RoomState::new(version.clone(), room_id.to_owned());
    for e in stored {
        let id = OwnedEventId::try_from(e.event_id.as_str()).map_err(|e| internal("stored event ID", e))?;
        let pdu = Pdu::from_json(id, e.json.clone()).map_err(|e| internal("stored event", e))?;
        room.apply(if e.redaction_id.is_some() { pdu.redacted(&version.rules) } else { pdu });
    }
    Ok(room)
}

/// A transaction of the requester's device on one endpoint of one room.
pub fn txn(cx: &Ctx, room_id: &RoomId, endpoint: &str) -> Result<Txn> {
    let requester = cx.requester()?;
    Ok(Txn {
        user_id: requester.user_id.to_string(),
        device_id: requester.device_id.clone(),
        scope: format!("{room_id}/{endpoint}"),
        txn_id: cx.param("txnId").to_owned(),
    })
}

/// The requester as a reader of events.
pub fn reader(cx: &Ctx) -> Result<Reader<'_>> {
    let requester = cx.requester()?;
    Ok(Reader { user_id: requester.user_id.as_str(), device_id: Some(requester.device_id.as_str()), joined: None })
}

/// A JSON object body as event content: integers only, within the canonical JSON range.
pub fn content_body(cx: &Ctx) -> Result<CanonicalJsonObject> {
    let value: serde_json::Map<String, serde_json::Value> = cx.req.json()?;
    to_content(value)
}

pub fn to_content(value: serde_json::Map<String, serde_json::Value>) -> Result<CanonicalJsonObject> {
    serde_json::from_value::<CanonicalJsonObject>(serde_json::Value::Object(value)).map_err(|e| {
        crate::error::bad_json(format!("Event content must be canonical JSON (integers in range, no floats): {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(event_id: &str, pdu: serde_json::Value, redacted: bool) -> StoredEvent {
        StoredEvent {
            stream_ordering: 1.0,
            event_id: event_id.into(),
            room_id: "!r:hs".into(),
            kind: pdu["type"].as_str().unwrap().into(),
            state_key: pdu["state_key"].as_str().map(Into::into),
            sender: pdu["sender"].as_str().unwrap().into(),
            origin_server_ts: 1.0,
            membership: None,
            txn_device_id: None,
            txn_id: None,
            prev_state: None,
            json: pdu.to_string(),
            redaction_json: redacted.then(|| "{}".into()),
            redaction_id: redacted.then(|| "$redaction".into()),
            sender_erased: 0.0,
        }
    }

    #[test]
    fn the_rules_view_sees_redacted_state_redacted() {
        // v10's redaction drops `invite` from the power levels: the level falls back to 0.
        let pdu = |kind: &str, content: serde_json::Value| {
            json!({"type": kind, "state_key": "", "sender": "@a:hs", "room_id": "!r:hs", "content": content,
                   "origin_server_ts": 1, "depth": 1, "prev_events": [], "auth_events": []})
        };
        let create = stored("$c", pdu("m.room.create", json!({"creator": "@a:hs", "room_version": "10"})), false);
        let power = pdu("m.room.power_levels", json!({"users": {"@a:hs": 100}, "invite": 100}));
        let room_id = <&RoomId>::try_from("!r:hs").unwrap();
        let version = RoomVersion::parse("10").unwrap();
        let plain =
            rules_view(version.clone(), room_id, &[create.clone(), stored("$p", power.clone(), false)]).unwrap();
        assert_eq!(plain.action_power("invite"), 100);
        let redacted = rules_view(version, room_id, &[create, stored("$p", power, true)]).unwrap();
        assert_eq!(redacted.action_power("invite"), 0);
        assert_eq!(redacted.user_power("@a:hs"), 100, "users survive a redaction");
    }
}
