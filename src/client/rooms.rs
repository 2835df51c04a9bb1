//! What the room endpoints share: reading room IDs from paths, and sending an event through the
//! room's writer.

use std::cell::RefCell;
use std::collections::BTreeMap;

use ruma_common::{CanonicalJsonObject, EventId, OwnedEventId, OwnedRoomId, RoomId};

use crate::durable_objects::room::{self, Facts, RoomRequest, Sent};
use crate::error::{internal, invalid_param, not_found, Result};
use crate::room::client_format::Reader;
use crate::room::pdu::EventTemplate;
use crate::room::versions::RoomVersion;
use crate::router::Ctx;
use crate::storage::event_txns::Txn;
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
    let request = RoomRequest::Send { room_id: room_id.to_owned(), template, txn, facts };
    room::call(&cx.env, room_id.as_str(), &request)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| internal("room", "a send committed no event"))
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
    Ok(Reader { user_id: requester.user_id.as_str(), device_id: Some(requester.device_id.as_str()) })
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
