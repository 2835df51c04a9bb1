//! PDUs: how a new event is built from a template (auth and prev events, depth, content hash,
//! signature, and the event ID: a reference hash, or in room versions 1 and 2 a random one) and how a
//! stored one is read back.

use ruma_common::room_version_rules::{EventIdFormatVersion, RoomVersionRules};
use ruma_common::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId,
    OwnedUserId, RoomId, UserId,
};
use ruma_events::TimelineEventType;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::signing::ServerKey;
use super::versions::RoomVersion;

/// The spec's bound on a whole PDU, in bytes of canonical JSON.
pub const MAX_PDU_BYTES: usize = 65_536;
/// The spec's bound on `depth` and other integers: JSON-safe.
const MAX_DEPTH: u64 = (1 << 53) - 1;

/// What a client (or the server on its behalf) asks to send; the Room fills in the rest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventTemplate {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub state_key: Option<String>,
    pub sender: OwnedUserId,
    pub content: CanonicalJsonObject,
    /// The event a redaction redacts; placed where the room version wants it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub redacts: Option<OwnedEventId>,
}

/// Why an event could not be built.
#[derive(Debug, PartialEq)]
pub enum BuildError {
    TooLarge,
    DepthExhausted,
    Invalid(String),
}

/// An accepted event: the fields the authorization rules and the server read, and its JSON.
#[derive(Debug, Clone)]
pub struct Pdu {
    pub event_id: OwnedEventId,
    pub room_id: Option<OwnedRoomId>,
    pub sender: OwnedUserId,
    pub origin_server_ts: MilliSecondsSinceUnixEpoch,
    pub kind: TimelineEventType,
    pub content: Box<RawValue>,
    pub state_key: Option<String>,
    pub prev_events: Vec<OwnedEventId>,
    pub auth_events: Vec<OwnedEventId>,
    /// The target of a redaction, from the top level (v10) or the content (v11 and later).
    pub redacts: Option<OwnedEventId>,
    pub depth: u64,
    /// The full signed PDU as canonical JSON.
    pub json: String,
}

#[derive(Deserialize)]
struct Wire {
    room_id: Option<OwnedRoomId>,
    sender: OwnedUserId,
    origin_server_ts: MilliSecondsSinceUnixEpoch,
    #[serde(rename = "type")]
    kind: TimelineEventType,
    content: Box<RawValue>,
    state_key: Option<String>,
    #[serde(default)]
    prev_events: Vec<EventReference>,
    #[serde(default)]
    auth_events: Vec<EventReference>,
    redacts: Option<OwnedEventId>,
    depth: u64,
}

/// An event named in `prev_events` or `auth_events`: its ID, or in room versions 1 and 2 an
/// `[event ID, hashes]` pair.
#[derive(Deserialize)]
#[serde(untagged)]
enum EventReference {
    Id(OwnedEventId),
    WithHashes(OwnedEventId, serde::de::IgnoredAny),
}

impl EventReference {
    fn id(self) -> OwnedEventId {
        match self {
            EventReference::Id(id) | EventReference::WithHashes(id, _) => id,
        }
    }
}

#[derive(Deserialize)]
struct ContentRedacts {
    redacts: Option<OwnedEventId>,
}

impl Pdu {
    /// Reads a stored PDU back; `event_id` is not part of the JSON of room versions 3 and up.
    pub fn from_json(event_id: OwnedEventId, json: String) -> Result<Self, String> {
        let wire: Wire = serde_json::from_str(&json).map_err(|e| format!("{event_id}: {e}"))?;
        let redacts = match wire.redacts {
            Some(id) => Some(id),
            None if wire.kind == TimelineEventType::RoomRedaction => {
                serde_json::from_str::<ContentRedacts>(wire.content.get()).ok().and_then(|c| c.redacts)
            }
            None => None,
        };
        Ok(Self {
            event_id,
            room_id: wire.room_id,
            sender: wire.sender,
            origin_server_ts: wire.origin_server_ts,
            kind: wire.kind,
            content: wire.content,
            state_key: wire.state_key,
            prev_events: wire.prev_events.into_iter().map(EventReference::id).collect(),
            auth_events: wire.auth_events.into_iter().map(EventReference::id).collect(),
            redacts,
            depth: wire.depth,
            json,
        })
    }

    /// The same event with its content redacted by the room version's rules: what the
    /// authorization rules see of a state event once it is redacted.
    pub fn redacted(&self, rules: &RoomVersionRules) -> Pdu {
        let mut content: CanonicalJsonObject = serde_json::from_str(self.content.get()).unwrap_or_default();
        ruma_common::canonical_json::redact_content_in_place(&mut content, &rules.redaction, self.kind.to_string());
        let raw = serde_json::value::to_raw_value(&content).unwrap_or_else(|_| self.content.clone());
        Pdu { content: raw, ..self.clone() }
    }

    /// The content as a JSON value.
    pub fn content_value(&self) -> Value {
        serde_json::from_str(self.content.get()).unwrap_or(Value::Null)
    }

    /// The content's `membership`, for `m.room.member` events.
    pub fn membership(&self) -> Option<String> {
        if self.kind != TimelineEventType::RoomMember {
            return None;
        }
        self.content_value().get("membership").and_then(Value::as_str).map(str::to_owned)
    }
}

/// Where a new event goes: the room and what precedes it.
pub struct Position<'a> {
    /// `None` only for the create event of a room whose ID is that event's hash.
    pub room_id: Option<&'a RoomId>,
    pub prev_events: Vec<OwnedEventId>,
    pub auth_events: Vec<OwnedEventId>,
    pub depth: u64,
}

/// Builds and signs a PDU; the event ID is its reference hash.
pub fn build(
    version: &RoomVersion,
    template: &EventTemplate,
    at: Position<'_>,
    origin_server_ts: u64,
    key: &ServerKey,
    server_name: &str,
) -> Result<Pdu, BuildError> {
    if at.depth > MAX_DEPTH {
        return Err(BuildError::DepthExhausted);
    }
    let mut content = template.content.clone();
    let mut object = CanonicalJsonObject::new();
    if let Some(redacts) = &template.redacts {
        if version.redacts_in_content() {
            content.insert("redacts".into(), CanonicalJsonValue::String(redacts.to_string()));
        } else {
            object.insert("redacts".into(), CanonicalJsonValue::String(redacts.to_string()));
        }
    }
    // Room versions 1 and 2 name an event by a random ID in its JSON, and the events it follows by
    // `[ID, hashes]` pairs; the hashes are left empty, as Synapse leaves them.
    let named_by_hash = version.rules.event_id_format != EventIdFormatVersion::V1;
    let ids = |ids: &[OwnedEventId]| {
        let reference = |id: &OwnedEventId| match named_by_hash {
            true => CanonicalJsonValue::String(id.to_string()),
            false => CanonicalJsonValue::Array(vec![
                CanonicalJsonValue::String(id.to_string()),
                CanonicalJsonValue::Object(CanonicalJsonObject::new()),
            ]),
        };
        CanonicalJsonValue::Array(ids.iter().map(reference).collect())
    };
    let random_id = match named_by_hash {
        true => None,
        false => Some(random_event_id(server_name)?),
    };
    if let Some(id) = &random_id {
        object.insert("event_id".into(), CanonicalJsonValue::String(id.to_string()));
    }
    object.insert("auth_events".into(), ids(&at.auth_events));
    object.insert("prev_events".into(), ids(&at.prev_events));
    object.insert("content".into(), CanonicalJsonValue::Object(content));
    object.insert("depth".into(), int(at.depth));
    object.insert("origin_server_ts".into(), int(origin_server_ts));
    if let Some(room_id) = at.room_id {
        object.insert("room_id".into(), CanonicalJsonValue::String(room_id.to_string()));
    }
    object.insert("sender".into(), CanonicalJsonValue::String(template.sender.to_string()));
    if let Some(state_key) = &template.state_key {
        object.insert("state_key".into(), CanonicalJsonValue::String(state_key.clone()));
    }
    object.insert("type".into(), CanonicalJsonValue::String(template.kind.clone()));

    key.hash_and_sign_event(server_name, &mut object, &version.rules.redaction).map_err(|e| {
        if e.contains("too large") || e.contains("PDU") {
            BuildError::TooLarge
        } else {
            BuildError::Invalid(e)
        }
    })?;
    let json = serde_json::to_string(&object).map_err(|e| BuildError::Invalid(e.to_string()))?;
    if json.len() > MAX_PDU_BYTES {
        return Err(BuildError::TooLarge);
    }
    let event_id = match random_id {
        Some(id) => id,
        None => event_id_of(&object, &version.rules)?,
    };
    Pdu::from_json(event_id, json).map_err(BuildError::Invalid)
}

/// `$`, 18 random letters, `:` and the server name: an event ID of room versions 1 and 2.
fn random_event_id(server_name: &str) -> Result<OwnedEventId, BuildError> {
    let letters = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let localpart = crate::tokens::random_string(18, letters).map_err(|e| BuildError::Invalid(format!("{e:?}")))?;
    EventId::parse(format!("${localpart}:{server_name}")).map_err(|e| BuildError::Invalid(e.to_string()))
}

fn int(n: u64) -> CanonicalJsonValue {
    CanonicalJsonValue::Integer(js_int::Int::try_from(n).unwrap_or(js_int::Int::MAX))
}

/// `$` and the reference hash: the event ID of room versions 3 (standard base64) and 4 and up
/// (URL-safe).
pub fn event_id_of(object: &CanonicalJsonObject, rules: &RoomVersionRules) -> Result<OwnedEventId, BuildError> {
    let hash = ruma_signatures::reference_hash(object, rules).map_err(|e| BuildError::Invalid(e.to_string()))?;
    EventId::parse(format!("${hash}")).map_err(|e| BuildError::Invalid(e.to_string()))
}

/// The room ID a v12 create event gives its room.
pub fn room_id_from_create_event(create: &Pdu) -> Result<OwnedRoomId, String> {
    RoomId::new_v2(create.event_id.localpart()).map_err(|e| e.to_string())
}

impl ruma_state_res::Event for Pdu {
    type Id = OwnedEventId;

    fn event_id(&self) -> &OwnedEventId {
        &self.event_id
    }

    fn room_id(&self) -> Option<&RoomId> {
        self.room_id.as_deref()
    }

    fn sender(&self) -> &UserId {
        &self.sender
    }

    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.origin_server_ts
    }

    fn event_type(&self) -> &TimelineEventType {
        &self.kind
    }

    fn content(&self) -> &RawValue {
        &self.content
    }

    fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }

    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &OwnedEventId> + '_> {
        Box::new(self.prev_events.iter())
    }

    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &OwnedEventId> + '_> {
        Box::new(self.auth_events.iter())
    }

    fn redacts(&self) -> Option<&OwnedEventId> {
        self.redacts.as_ref()
    }

    fn rejected(&self) -> bool {
        // Rejected events are never stored, so every event the rules look up was accepted.
        false
    }
}
