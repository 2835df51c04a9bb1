//! Room creation: `POST /createRoom`.
//!
//! The worker builds and signs the create event (in v12 its hash is the room ID, which names the
//! room's writer), then hands the writer every initial event in the spec's order; the writer
//! authorizes them in turn and commits the room in one batch.

use ruma_common::{OwnedRoomId, OwnedUserId, RoomAliasId, RoomId, UserId};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::appservice::exclusive;
use crate::context::Ctx;
use crate::durable_objects::room::{self, RoomRequest};
use crate::error::{bad_json, internal, invalid_param, ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::room::pdu::EventTemplate;
use crate::room::state::{self, Refusal};
use crate::room::versions::{self, RoomVersion};
use crate::server_keys::signing_key;
use crate::storage::{aliases, profiles};
use crate::time::now_ms;
use crate::tokens::random_string;

use super::rooms::to_content;

/// The spec's preset names.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    PrivateChat,
    TrustedPrivateChat,
    PublicChat,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Visibility {
    Public,
    Private,
}

#[derive(Debug, Deserialize)]
pub struct StateEvent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub state_key: String,
    pub content: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CreateRoomBody {
    visibility: Option<Visibility>,
    room_alias_name: Option<String>,
    name: Option<String>,
    topic: Option<String>,
    #[serde(default)]
    invite: Vec<String>,
    #[serde(default)]
    invite_3pid: Vec<Value>,
    room_version: Option<String>,
    creation_content: Option<Map<String, Value>>,
    #[serde(default)]
    initial_state: Vec<StateEvent>,
    preset: Option<Preset>,
    #[serde(default)]
    is_direct: bool,
    power_level_content_override: Option<Map<String, Value>>,
}

/// Everything a new room starts with; shared with room upgrades.
pub struct NewRoom {
    pub version: RoomVersion,
    pub creator: OwnedUserId,
    pub creation_content: Map<String, Value>,
    /// The events after the create event, in the order the spec gives.
    pub events: Vec<EventTemplate>,
    pub is_public: bool,
    pub alias: Option<String>,
}

pub async fn create_room(cx: Ctx) -> Result<Reply> {
    let body: CreateRoomBody = cx.req.json()?;
    crate::auth_blocking::check_requester(&cx.db, &cx.config, cx.requester()?).await?;
    let creator = cx.requester()?.user_id.clone();
    let version = RoomVersion::parse(body.room_version.as_deref().unwrap_or(versions::DEFAULT))?;
    if !body.invite_3pid.is_empty() {
        return Err(MatrixError::new(ErrorKind::Unrecognized, "Third-party invites are not supported").into());
    }
    let alias = match &body.room_alias_name {
        Some(name) => Some(local_alias(name, cx.config.server_name.as_str())?),
        None => None,
    };
    if let Some(alias) = &alias {
        exclusive::check_alias(&cx.db, cx.config.server_name.as_str(), cx.requester()?, alias).await?;
        if aliases::get(&cx.db, alias).await?.is_some() {
            return Err(MatrixError::new(ErrorKind::RoomInUse, "The room alias is already taken").into());
        }
    }
    let invitees = body
        .invite
        .iter()
        .map(|u| UserId::parse(u.as_str()).map_err(|_| invalid_param(format!("{u:?} in invite is not a user ID"))))
        .collect::<Result<Vec<_>>>()?;
    let is_public = matches!(body.visibility, Some(Visibility::Public));
    let preset = body.preset.unwrap_or(if is_public { Preset::PublicChat } else { Preset::PrivateChat });
    let trusted = matches!(preset, Preset::TrustedPrivateChat);
    let mut creation_content = body.creation_content.unwrap_or_default();
    if version.rules.authorization.additional_room_creators && trusted && !invitees.is_empty() {
        let mut creators: Vec<Value> = match creation_content.remove("additional_creators") {
            Some(Value::Array(list)) => list,
            Some(_) => return Err(bad_json("creation_content.additional_creators must be a list of user IDs")),
            None => Vec::new(),
        };
        for invitee in &invitees {
            let id = Value::String(invitee.to_string());
            if !creators.contains(&id) {
                creators.push(id);
            }
        }
        creation_content.insert("additional_creators".into(), Value::Array(creators));
    }

    let mut events = Vec::new();
    let member = |user: &UserId, content: Value| template("m.room.member", Some(user.as_str()), &creator, content);
    let mut join = json!({"membership": "join"});
    for field in ["displayname", "avatar_url"] {
        if let Some(value) = profiles::get(&cx.db, creator.as_str(), field).await? {
            if let Ok(v) = serde_json::from_str::<Value>(&value.value) {
                join[field] = v;
            }
        }
    }
    events.push(member(&creator, join)?);
    let power_levels = default_power_levels(&version, &creator, if trusted { &invitees } else { &[] });
    let power_levels = merge(power_levels, body.power_level_content_override)?;
    events.push(template("m.room.power_levels", Some(""), &creator, Value::Object(power_levels))?);
    if let Some(alias) = &alias {
        events.push(template("m.room.canonical_alias", Some(""), &creator, json!({"alias": alias}))?);
    }
    let (join_rule, guest_access) = match preset {
        Preset::PublicChat => ("public", "forbidden"),
        Preset::PrivateChat | Preset::TrustedPrivateChat => ("invite", "can_join"),
    };
    let preset_events = [
        ("m.room.join_rules", json!({"join_rule": join_rule})),
        ("m.room.history_visibility", json!({"history_visibility": "shared"})),
        ("m.room.guest_access", json!({"guest_access": guest_access})),
    ];
    for (kind, content) in preset_events {
        // An `initial_state` event of the same type and key replaces the preset's.
        if !body.initial_state.iter().any(|e| e.kind == kind && e.state_key.is_empty()) {
            events.push(template(kind, Some(""), &creator, content)?);
        }
    }
    for event in body.initial_state {
        if matches!(event.kind.as_str(), "m.room.create" | "m.room.member") {
            return Err(MatrixError::new(
                ErrorKind::InvalidRoomState,
                format!("initial_state cannot set {}", event.kind),
            )
            .into());
        }
        events.push(EventTemplate {
            kind: event.kind,
            state_key: Some(event.state_key),
            sender: creator.clone(),
            content: to_content(event.content)?,
            redacts: None,
        });
    }
    if let Some(name) = body.name {
        events.push(template("m.room.name", Some(""), &creator, json!({"name": name}))?);
    }
    if let Some(topic) = body.topic {
        let content = json!({"topic": topic, "m.topic": {"m.text": [{"body": topic}]}});
        events.push(template("m.room.topic", Some(""), &creator, content)?);
    }
    for invitee in &invitees {
        let mut content = json!({"membership": "invite"});
        if body.is_direct {
            content["is_direct"] = true.into();
        }
        events.push(member(invitee, content)?);
    }

    let room = NewRoom { version, creator, creation_content, events, is_public, alias };
    let room_id = create(&cx, room).await?;
    Reply::json(&json!({"room_id": room_id}))
}

/// Creates a room: builds its create event here and has its writer commit everything.
pub async fn create(cx: &Ctx, room: NewRoom) -> Result<OwnedRoomId> {
    create_as(cx, room, fresh_room_id(cx)).await
}

/// A new random room ID, for versions whose room IDs do not hash the create event.
pub fn fresh_room_id(cx: &Ctx) -> OwnedRoomId {
    let localpart = random_string(18, b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ").unwrap_or_default();
    RoomId::parse(format!("!{localpart}:{}", cx.config.server_name))
        .unwrap_or_else(|_| RoomId::new_v1(&cx.config.server_name))
}

/// Creates the room under `room_id` where its version does not hash the create event into the
/// ID (an upgrade names the new room in the tombstone before creating it).
pub async fn create_as(cx: &Ctx, room: NewRoom, room_id: OwnedRoomId) -> Result<OwnedRoomId> {
    let key = signing_key(&cx.db).await?;
    let server_name = cx.config.server_name.as_str();
    let mut content = room.creation_content;
    content.insert("room_version".into(), room.version.id.as_str().into());
    if !room.version.rules.authorization.use_room_create_sender {
        content.insert("creator".into(), room.creator.as_str().into());
    }
    let create = template("m.room.create", Some(""), &room.creator, Value::Object(content))?;
    let (room_id, create) = state::create_event(&room.version, &create, || room_id, now_ms(), &key, server_name)
        .map_err(|r| match r {
            Refusal::Forbidden(message) => MatrixError::new(ErrorKind::InvalidRoomState, message).into(),
            Refusal::Build(e) => bad_json(format!("The create event is invalid: {e:?}")),
        })?;
    let request = RoomRequest::Create {
        version: room.version.id.to_string(),
        create_event_id: create.event_id.clone(),
        create_json: create.json,
        events: room.events,
        is_public: room.is_public,
        alias: room.alias,
    };
    room::call(&cx.env, room_id.as_str(), &request).await?;
    Ok(room_id)
}

/// A template from the server's own JSON.
pub fn template(kind: &str, state_key: Option<&str>, sender: &UserId, content: Value) -> Result<EventTemplate> {
    let Value::Object(content) = content else { return Err(internal("template", "content is not an object")) };
    Ok(EventTemplate {
        kind: kind.to_owned(),
        state_key: state_key.map(str::to_owned),
        sender: sender.to_owned(),
        content: to_content(content)?,
        redacts: None,
    })
}

/// `#name:server` from a `room_alias_name`.
fn local_alias(name: &str, server_name: &str) -> Result<String> {
    if name.is_empty() || name.contains(':') || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid_param("room_alias_name may not be empty or contain ':', whitespace or control characters"));
    }
    let alias = format!("#{name}:{server_name}");
    RoomAliasId::parse(alias.as_str()).map_err(|_| invalid_param(format!("{alias:?} is not a valid room alias")))?;
    if alias.len() > 255 {
        return Err(invalid_param("The room alias is longer than 255 bytes"));
    }
    Ok(alias)
}

/// The spec's default power levels for a new room.
pub fn default_power_levels(version: &RoomVersion, creator: &UserId, peers: &[OwnedUserId]) -> Map<String, Value> {
    let creators_privileged = version.rules.authorization.explicitly_privilege_room_creators;
    let mut users = Map::new();
    if !creators_privileged {
        users.insert(creator.to_string(), 100.into());
        for peer in peers {
            users.insert(peer.to_string(), 100.into());
        }
    }
    // From v12 the tombstone must need more than `state_default`, since creators outrank all.
    let tombstone = if creators_privileged { 150 } else { 100 };
    let value = json!({
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": tombstone,
            "m.room.server_acl": 100,
            "m.room.encryption": 100
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
        "historical": 100
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The override's top-level keys replace the defaults'; its values must be power levels.
fn merge(mut defaults: Map<String, Value>, over: Option<Map<String, Value>>) -> Result<Map<String, Value>> {
    for (key, value) in over.unwrap_or_default() {
        defaults.insert(key, value);
    }
    validate_power_levels(&defaults)?;
    Ok(defaults)
}

/// Power-level content must hold integers where the spec puts levels: `M_BAD_JSON` otherwise.
pub fn validate_power_levels(content: &Map<String, Value>) -> Result<()> {
    let is_level = |v: &Value| v.as_i64().is_some_and(|n| n.unsigned_abs() < (1 << 53));
    for field in ["users_default", "events_default", "state_default", "ban", "kick", "redact", "invite"] {
        if let Some(v) = content.get(field) {
            if !is_level(v) {
                return Err(bad_json(format!("Power level {field:?} must be an integer")));
            }
        }
    }
    for field in ["users", "events", "notifications"] {
        match content.get(field) {
            None => {}
            Some(Value::Object(map)) => {
                if let Some((k, _)) = map.iter().find(|(_, v)| !is_level(v)) {
                    return Err(bad_json(format!("Power level {field}.{k} must be an integer")));
                }
                if field == "users" {
                    if let Some(k) = map.keys().find(|k| UserId::parse(k.as_str()).is_err()) {
                        return Err(bad_json(format!("{k:?} in power level users is not a user ID")));
                    }
                }
            }
            Some(_) => return Err(bad_json(format!("Power level {field:?} must be an object"))),
        }
    }
    Ok(())
}
