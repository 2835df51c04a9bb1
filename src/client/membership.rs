//! Room membership: `GET /joined_rooms`, `POST /join/{roomIdOrAlias}`, `POST /rooms/{roomId}/join`,
//! `POST /knock/{roomIdOrAlias}`, and `POST /rooms/{roomId}/invite`, `/leave`, `/forget`, `/kick`,
//! `/ban` and `/unban`.

use ruma_common::{OwnedRoomId, RoomAliasId, UserId};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::durable_objects::room::Facts;
use crate::error::{forbidden, invalid_param, not_found, unknown, ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::room::pdu::EventTemplate;
use crate::storage::{current_state, forgotten_rooms, profiles, room_deletions};

use super::room_send::same_state;
use super::rooms::{parse_room_id, room_id_param, send_event, to_content};

#[derive(Debug, Default, Deserialize)]
struct ReasonBody {
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TargetBody {
    user_id: String,
    reason: Option<String>,
}

pub async fn joined_rooms(cx: Ctx) -> Result<Reply> {
    let user = cx.requester()?.user_id.to_string();
    let rooms = current_state::rooms_with_membership(&cx.db, &user, "join").await?;
    Reply::json(&json!({"joined_rooms": rooms}))
}

pub async fn join_room_by_id(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    join(&cx, room_id).await
}

pub async fn join_room_by_id_or_alias(cx: Ctx) -> Result<Reply> {
    let room_id = resolve_room(&cx, cx.param("roomIdOrAlias")).await?;
    join(&cx, room_id).await
}

pub async fn knock_room(cx: Ctx) -> Result<Reply> {
    let room_id = resolve_room(&cx, cx.param("roomIdOrAlias")).await?;
    let body: ReasonBody = cx.req.json_or_empty()?;
    let user = cx.requester()?.user_id.clone();
    let content = with_profile(&cx, &user, "knock", body.reason).await?;
    send_member(&cx, &room_id, &user, content, Facts::default()).await?;
    Reply::json(&json!({"room_id": room_id}))
}

pub async fn invite_user(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let body: TargetBody = cx.req.json()?;
    let target = existing_local_user(&cx, &body.user_id).await?;
    let content = with_profile(&cx, &target, "invite", body.reason).await?;
    send_member(&cx, &room_id, &target, content, Facts::default()).await?;
    Ok(Reply::empty())
}

pub async fn leave_room(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let body: ReasonBody = cx.req.json_or_empty()?;
    let user = cx.requester()?.user_id.clone();
    send_member(&cx, &room_id, &user, membership("leave", body.reason), Facts::default()).await?;
    Ok(Reply::empty())
}

pub async fn forget_room(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let user = cx.requester()?.user_id.to_string();
    match current_state::membership(&cx.db, room_id.as_str(), &user).await? {
        None => return Err(not_found("You have never been in this room")),
        Some((m, _)) if m == "join" || m == "invite" || m == "knock" => {
            return Err(unknown("You must leave the room before you forget it"))
        }
        Some(_) => {}
    }
    cx.db.run(forgotten_rooms::insert(&cx.db, &user, room_id.as_str())?).await?;
    Ok(Reply::empty())
}

pub async fn kick_user(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let body: TargetBody = cx.req.json()?;
    let target = user_id(&body.user_id)?;
    let current = current_state::membership(&cx.db, room_id.as_str(), target.as_str()).await?;
    if !matches!(current.as_ref().map(|(m, _)| m.as_str()), Some("join" | "invite" | "knock")) {
        return Err(forbidden("The user is not in the room"));
    }
    send_member(&cx, &room_id, &target, membership("leave", body.reason), Facts::default()).await?;
    Ok(Reply::empty())
}

pub async fn ban_user(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let body: TargetBody = cx.req.json()?;
    let target = user_id(&body.user_id)?;
    send_member(&cx, &room_id, &target, membership("ban", body.reason), Facts::default()).await?;
    Ok(Reply::empty())
}

pub async fn unban_user(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let body: TargetBody = cx.req.json()?;
    let target = user_id(&body.user_id)?;
    let current = current_state::membership(&cx.db, room_id.as_str(), target.as_str()).await?;
    if current.as_ref().map(|(m, _)| m.as_str()) != Some("ban") {
        return Err(forbidden("The user is not banned from the room"));
    }
    send_member(&cx, &room_id, &target, membership("leave", body.reason), Facts::default()).await?;
    Ok(Reply::empty())
}

async fn join(cx: &Ctx, room_id: OwnedRoomId) -> Result<Reply> {
    // The body's keys go into the membership event, as Synapse puts them (`reason`, or a client's
    // own); `third_party_signed` is a request parameter, not content.
    let mut body: Map<String, Value> = cx.req.json_or_empty()?;
    body.remove("third_party_signed");
    let requester = cx.requester()?;
    let user = requester.user_id.clone();
    if requester.is_guest {
        let access = current_state::content_of(&cx.db, room_id.as_str(), "m.room.guest_access", "").await?;
        let access = access.as_ref().and_then(|c| c.get("guest_access")).and_then(Value::as_str);
        if access != Some("can_join") {
            return Err(MatrixError::new(ErrorKind::GuestAccessForbidden, "Guests may not join this room").into());
        }
    }
    let mut content = body;
    content.insert("membership".into(), "join".into());
    add_profile(cx, &user, &mut content).await?;
    let content = to_content(content)?;
    // Joining again with the same content changes nothing: no new event, as in Synapse.
    if same_state(cx, &room_id, "m.room.member", user.as_str(), user.as_str(), &content).await?.is_some() {
        return Reply::json(&json!({"room_id": room_id}));
    }
    let joined_rooms = current_state::rooms_with_membership(&cx.db, user.as_str(), "join").await?;
    send_member_content(cx, &room_id, &user, content, Facts { joined_rooms, ..Facts::default() }).await?;
    Reply::json(&json!({"room_id": room_id}))
}

/// A room ID, or a local alias resolved to one.
async fn resolve_room(cx: &Ctx, id_or_alias: &str) -> Result<OwnedRoomId> {
    if id_or_alias.starts_with('#') {
        RoomAliasId::parse(id_or_alias).map_err(|_| invalid_param(format!("{id_or_alias:?} is not a room alias")))?;
        let alias = super::alias::lookup(cx, id_or_alias).await?.ok_or_else(|| not_found("Room alias not found"))?;
        return parse_room_id(&alias.room_id);
    }
    parse_room_id(id_or_alias)
}

fn user_id(raw: &str) -> Result<ruma_common::OwnedUserId> {
    UserId::parse(raw).map_err(|_| invalid_param(format!("{raw:?} is not a user ID")))
}

/// Only local users can be invited: this server does not federate.
async fn existing_local_user(cx: &Ctx, raw: &str) -> Result<ruma_common::OwnedUserId> {
    let user = user_id(raw)?;
    if user.server_name() != cx.config.server_name {
        return Err(forbidden("This server does not federate: only local users can be invited"));
    }
    if !super::profile::user_exists(cx, user.as_str()).await? {
        return Err(not_found("Unknown user"));
    }
    Ok(user)
}

fn membership(membership: &str, reason: Option<String>) -> Map<String, Value> {
    let mut content = Map::new();
    content.insert("membership".into(), membership.into());
    if let Some(reason) = reason {
        content.insert("reason".into(), reason.into());
    }
    content
}

/// A membership with the user's display name and avatar, as Synapse sends them.
async fn with_profile(cx: &Ctx, user: &UserId, kind: &str, reason: Option<String>) -> Result<Map<String, Value>> {
    let mut content = membership(kind, reason);
    add_profile(cx, user, &mut content).await?;
    Ok(content)
}

/// The user's display name and avatar, where the content names none of its own.
async fn add_profile(cx: &Ctx, user: &UserId, content: &mut Map<String, Value>) -> Result<()> {
    for (field, value) in profiles::membership_fields(&cx.db, user.as_str()).await? {
        content.entry(field).or_insert(value);
    }
    Ok(())
}

async fn send_member(
    cx: &Ctx,
    room_id: &ruma_common::RoomId,
    target: &UserId,
    content: Map<String, Value>,
    facts: Facts,
) -> Result<()> {
    send_member_content(cx, room_id, target, to_content(content)?, facts).await
}

async fn send_member_content(
    cx: &Ctx,
    room_id: &ruma_common::RoomId,
    target: &UserId,
    content: ruma_common::CanonicalJsonObject,
    facts: Facts,
) -> Result<()> {
    // An admin's blocked (or purged) room takes no one in.
    let admits = matches!(
        content.get("membership"),
        Some(ruma_common::CanonicalJsonValue::String(m)) if matches!(m.as_str(), "join" | "invite" | "knock")
    );
    if admits && room_deletions::is_blocked(&cx.db, room_id.as_str()).await? {
        return Err(forbidden("This room has been blocked on this server"));
    }
    let template = EventTemplate {
        kind: "m.room.member".into(),
        state_key: Some(target.to_string()),
        sender: cx.requester()?.user_id.clone(),
        content,
        redacts: None,
    };
    send_event(cx, room_id, template, None, facts).await?;
    Ok(())
}
