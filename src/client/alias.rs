//! Room aliases: `GET`, `PUT` and `DELETE /directory/room/{roomAlias}`, and
//! `GET /rooms/{roomId}/aliases`.
//!
//! Aliases live in D1 (`room_aliases`), beside the rooms; only local aliases exist, since this
//! server does not federate. Who may do what follows Synapse: an alias is created by a member of
//! its room, and deleted by its creator or by a member who may send `m.room.canonical_alias`.

use ruma_common::{OwnedRoomAliasId, RoomAliasId, RoomId, UserId};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::appservice::exclusive;
use crate::appservice::query::{self, Kind};
use crate::context::Ctx;
use crate::durable_objects::room::Facts;
use crate::error::{forbidden, invalid_param, not_found, ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::room::state::RoomState;
use crate::room::versions::RoomVersion;
use crate::storage::{aliases, current_state, events};
use crate::time::now_ms;

use super::create_room::template;
use super::rooms::{parse_room_id, room_id_param, room_version, rules_view, send_event};

/// A stream position past every event (D1 numbers are exact up to 2^53).
const LATEST: u64 = 1 << 53;

#[derive(Debug, Deserialize)]
struct AliasBody {
    room_id: String,
}

pub async fn get_alias(cx: Ctx) -> Result<Reply> {
    let alias = alias_param(&cx)?;
    if alias.server_name() != cx.config.server_name {
        return Err(not_found(format!("Room alias {alias} not found: this server does not federate")));
    }
    let found = lookup(&cx, alias.as_str()).await?;
    let found = found.ok_or_else(|| not_found(format!("Room alias {alias} not found")))?;
    Reply::json(&json!({"room_id": found.room_id, "servers": [cx.config.server_name.as_str()]}))
}

/// A local alias, once an application service whose namespace holds it was asked.
pub async fn lookup(cx: &Ctx, alias: &str) -> Result<Option<aliases::Alias>> {
    if let Some(found) = aliases::get(&cx.db, alias).await? {
        return Ok(Some(found));
    }
    if query::ask(&cx.db, cx.config.server_name.as_str(), Kind::Alias, alias).await? {
        return aliases::get(&cx.db, alias).await;
    }
    Ok(None)
}

pub async fn create_alias(cx: Ctx) -> Result<Reply> {
    let alias = alias_param(&cx)?;
    if alias.server_name() != cx.config.server_name {
        return Err(invalid_param(format!(
            "Room alias must be local: this server only hosts aliases on {}",
            cx.config.server_name
        )));
    }
    let localpart = alias.alias();
    if localpart.is_empty() || localpart.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid_param("A room alias may not be empty or contain whitespace or control characters"));
    }
    let body: AliasBody = cx.req.json()?;
    let room_id = parse_room_id(&body.room_id)?;
    room_version(&cx, &room_id).await?;
    exclusive::check_alias(&cx.db, cx.config.server_name.as_str(), cx.requester()?, alias.as_str()).await?;
    let user = cx.requester()?.user_id.clone();
    if !is_joined(&cx, &room_id, &user).await? {
        return Err(forbidden("You must be in the room to create an alias for it"));
    }
    let taken = || -> crate::error::Error {
        MatrixError::new(ErrorKind::Conflict, format!("Room alias {alias} already exists")).into()
    };
    if aliases::get(&cx.db, alias.as_str()).await?.is_some() {
        return Err(taken());
    }
    let insert = aliases::insert(&cx.db, alias.as_str(), room_id.as_str(), user.as_str(), now_ms())?;
    match cx.db.try_batch(vec![insert]).await? {
        Some(_) => Ok(Reply::empty()),
        None => Err(taken()),
    }
}

pub async fn delete_alias(cx: Ctx) -> Result<Reply> {
    let alias = alias_param(&cx)?;
    let not_there = || not_found(format!("Room alias {alias} not found"));
    if alias.server_name() != cx.config.server_name {
        return Err(not_there());
    }
    let found = aliases::get(&cx.db, alias.as_str()).await?.ok_or_else(not_there)?;
    let user = cx.requester()?.user_id.clone();
    let room_id = parse_room_id(&found.room_id)?;
    if found.creator != user.as_str() {
        let room = power_view(&cx, &room_id, &user).await?;
        if !may_send_state(&room, &user, "m.room.canonical_alias") {
            return Err(forbidden(
                "Only the alias's creator or a room member who may send m.room.canonical_alias can delete it",
            ));
        }
    }
    if cx.db.run(aliases::delete(&cx.db, alias.as_str())?).await? == 0 {
        // Someone else deleted it between the checks and now.
        return Err(not_there());
    }
    drop_from_canonical_alias(&cx, &room_id, &user, alias.as_str()).await;
    Ok(Reply::empty())
}

pub async fn get_room_aliases(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let user = cx.requester()?.user_id.clone();
    // An unknown room answers like a room one is not in: the spec has no 404 here.
    if !is_joined(&cx, &room_id, &user).await? {
        let visibility = current_state::content_of(&cx.db, room_id.as_str(), "m.room.history_visibility", "").await?;
        let visibility = visibility.as_ref().and_then(|c| c.get("history_visibility")).and_then(Value::as_str);
        if visibility != Some("world_readable") {
            return Err(forbidden("You are not a member of the room"));
        }
    }
    let aliases = aliases::for_room(&cx.db, room_id.as_str()).await?;
    Reply::json(&json!({"aliases": aliases}))
}

/// The `roomAlias` path parameter: `M_INVALID_PARAM` when it is not a room alias.
fn alias_param(cx: &Ctx) -> Result<OwnedRoomAliasId> {
    let raw = cx.param("roomAlias");
    RoomAliasId::parse(raw).map_err(|_| invalid_param(format!("{raw:?} is not a valid room alias")))
}

async fn is_joined(cx: &Ctx, room_id: &RoomId, user: &UserId) -> Result<bool> {
    let membership = current_state::membership(&cx.db, room_id.as_str(), user.as_str()).await?;
    Ok(membership.is_some_and(|(m, _)| m == "join"))
}

/// The part of a room's current state that decides a user's power: its create event, its power
/// levels and the user's membership, as the room's writer would judge them.
pub async fn power_view(cx: &Ctx, room_id: &RoomId, user: &UserId) -> Result<RoomState> {
    let version: RoomVersion = room_version(cx, room_id).await?;
    rules_view(version, room_id, &current_state::power_state(&cx.db, room_id.as_str(), user.as_str()).await?)
}

/// Whether a user is joined to the room and has the power to send a state event of a type.
pub fn may_send_state(room: &RoomState, user: &UserId, kind: &str) -> bool {
    room.membership(user.as_str()).as_deref() == Some("join")
        && room.user_power(user.as_str()) >= room.event_power(kind, true)
}

/// After an alias is deleted, takes it out of the room's `m.room.canonical_alias`, as Synapse
/// does. The alias is gone either way: a user without the power to change the event only leaves
/// a stale entry there, which the spec allows.
async fn drop_from_canonical_alias(cx: &Ctx, room_id: &RoomId, user: &UserId, alias: &str) {
    // The newest event of a room's state key is its current state: a room's events form a chain.
    let current = events::state_entry_at(&cx.db, room_id.as_str(), "m.room.canonical_alias", "", LATEST).await;
    let Ok(Some(current)) = current else { return };
    if current.redaction_json.is_some() {
        // A redacted canonical alias names no alias.
        return;
    }
    let pdu: Value = serde_json::from_str(&current.json).unwrap_or(Value::Null);
    let Some(Value::Object(content)) = pdu.get("content") else { return };
    let Some(updated) = without_alias(content, alias) else { return };
    let sent = match template("m.room.canonical_alias", Some(""), user, Value::Object(updated)) {
        Ok(event) => send_event(cx, room_id, event, None, Facts::default()).await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = sent {
        let reason = e.matrix().map(|m| m.message.to_string()).unwrap_or_default();
        crate::log::error(&format!("not updating the canonical alias of {room_id} after deleting {alias}: {reason}"));
    }
}

/// A canonical alias content without `alias`, or `None` when it does not mention it.
fn without_alias(content: &Map<String, Value>, alias: &str) -> Option<Map<String, Value>> {
    let mut updated = content.clone();
    let mut changed = false;
    if updated.get("alias").and_then(Value::as_str) == Some(alias) {
        updated.remove("alias");
        changed = true;
    }
    if let Some(Value::Array(alt)) = updated.get_mut("alt_aliases") {
        let before = alt.len();
        alt.retain(|a| a.as_str() != Some(alias));
        changed |= alt.len() != before;
        if alt.is_empty() {
            updated.remove("alt_aliases");
        }
    }
    changed.then_some(updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_deleted_alias_leaves_the_canonical_alias_event() {
        let content = object(json!({"alias": "#a:hs", "alt_aliases": ["#a:hs", "#b:hs"]}));
        assert_eq!(without_alias(&content, "#a:hs"), Some(object(json!({"alt_aliases": ["#b:hs"]}))));
        assert_eq!(without_alias(&content, "#b:hs"), Some(object(json!({"alias": "#a:hs", "alt_aliases": ["#a:hs"]}))));
        let only_alt = object(json!({"alt_aliases": ["#c:hs"]}));
        assert_eq!(without_alias(&only_alt, "#c:hs"), Some(Map::new()));
        assert_eq!(without_alias(&content, "#other:hs"), None);
        // A malformed `alt_aliases` is left alone.
        let odd = object(json!({"alias": "#x:hs", "alt_aliases": "#a:hs"}));
        assert_eq!(without_alias(&odd, "#a:hs"), None);
    }
}
