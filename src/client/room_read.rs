//! Reading rooms: `GET /rooms/{roomId}/state`, `/state/{eventType}/{stateKey}`,
//! `/event/{eventId}`, `/members` and `/joined_members`.
//!
//! A joined user reads the current state; so does anyone when the room is `world_readable`. A
//! user who left or was banned reads the state as it was when they left. Anyone else is refused.

use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::error::{forbidden, invalid_param, not_found, Result};
use crate::http::Reply;
use crate::room::visibility::Access;
use crate::storage::current_state;
use crate::storage::events::{self, Direction, EventSelection, StoredEvent};

use super::relations::serve_bundled;
use super::room_access::{event_id_param, token_param, RoomView};
use super::rooms::room_id_param;

const MEMBERSHIPS: &[&str] = &["join", "invite", "knock", "leave", "ban"];

pub async fn get_state_events(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let view = RoomView::open(&cx, &room_id).await?;
    let state = match view.state_position() {
        None => current_state::room_state(&cx.db, &view.room_id).await?,
        Some(at) => events::state_at(&cx.db, &view.room_id, at).await?,
    };
    Reply::json(&view.serve_all(&cx, &state)?)
}

pub async fn get_state_events_for_key(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let whole_event = match cx.req.query("format") {
        None | Some("content") => false,
        Some("event") => true,
        Some(other) => return Err(invalid_param(format!("format must be content or event, not {other:?}"))),
    };
    let view = RoomView::open(&cx, &room_id).await?;
    let at = view.state_position().unwrap_or(view.head());
    let entry = events::state_entry_at(&cx.db, &view.room_id, cx.param("eventType"), cx.param("stateKey"), at)
        .await?
        .ok_or_else(|| not_found("The room has no state with this type and key"))?;
    let mut event = view.serve(&cx, &entry)?;
    match whole_event {
        true => Reply::json(&event),
        // The content as served: a redacted state event's is redacted.
        false => Reply::json(&event.get_mut("content").map(Value::take).unwrap_or_else(|| json!({}))),
    }
}

pub async fn get_room_event(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let event_id = event_id_param(&cx)?;
    let view = RoomView::open(&cx, &room_id).await?;
    let event = view.event(&cx, &event_id).await?;
    let served = serve_bundled(&cx, &view, std::slice::from_ref(&event)).await?;
    Reply::json(&served.into_iter().next().unwrap_or(Value::Null))
}

pub async fn get_member_events(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let membership = membership_param(&cx, "membership")?;
    let not_membership = membership_param(&cx, "not_membership")?;
    let at = token_param(&cx, "at")?;
    let view = RoomView::open(&cx, &room_id).await?;
    let members = match (at, view.state_position()) {
        (Some(at), _) => {
            // The state at a point in history: the requester must be able to see the room there,
            // at the last event at or before the point.
            let at = at.min(view.head());
            let last = events::page(
                &cx.db,
                &view.room_id,
                Direction::Backward,
                Some(at + 1),
                None,
                &EventSelection::default(),
                1,
            )
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| not_found("The room has no history at this point"))?;
            if !view.can_see(&last) {
                return Err(forbidden("You may not see the room at this point in its history"));
            }
            events::state_of_type_at(&cx.db, &view.room_id, "m.room.member", at).await?
        }
        (None, None) => current_state::member_events(&cx.db, &view.room_id).await?,
        (None, Some(left)) => events::state_of_type_at(&cx.db, &view.room_id, "m.room.member", left).await?,
    };
    let chunk: Vec<StoredEvent> = members
        .into_iter()
        .filter(|e| member_passes(e.membership.as_deref().unwrap_or_default(), membership, not_membership))
        .collect();
    Reply::json(&json!({"chunk": view.serve_all(&cx, &chunk)?}))
}

pub async fn joined_members(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let view = RoomView::open(&cx, &room_id).await?;
    // The spec asks for the requester to be in the room; Synapse lets peekers in too.
    if let Access::Departed { .. } = view.access {
        return Err(forbidden("You are not in this room"));
    }
    let mut joined = Map::new();
    for e in current_state::member_events(&cx.db, &view.room_id).await? {
        if e.membership.as_deref() != Some("join") {
            continue;
        }
        let Some(user_id) = e.state_key.clone() else { continue };
        let served = view.serve(&cx, &e)?;
        let mut member = Map::new();
        // Both keys, null when unset, as Synapse answers.
        for (from, to) in [("displayname", "display_name"), ("avatar_url", "avatar_url")] {
            let value = served["content"].get(from).filter(|v| v.is_string()).cloned().unwrap_or(Value::Null);
            member.insert(to.into(), value);
        }
        joined.insert(user_id, Value::Object(member));
    }
    Reply::json(&json!({"joined": joined}))
}

/// A `membership` or `not_membership` query parameter.
fn membership_param<'a>(cx: &'a Ctx, name: &str) -> Result<Option<&'a str>> {
    match cx.req.query(name) {
        None => Ok(None),
        Some(m) if MEMBERSHIPS.contains(&m) => Ok(Some(m)),
        Some(m) => Err(invalid_param(format!("{name} must be one of {}, not {m:?}", MEMBERSHIPS.join(", ")))),
    }
}

/// The spec's rule for `/members`: with both parameters, a member passes if their membership is
/// `membership` *or* is not `not_membership`.
fn member_passes(m: &str, membership: Option<&str>, not_membership: Option<&str>) -> bool {
    match (membership, not_membership) {
        (None, None) => true,
        (Some(wanted), None) => m == wanted,
        (None, Some(unwanted)) => m != unwanted,
        (Some(wanted), Some(unwanted)) => m == wanted || m != unwanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_filters_follow_the_spec() {
        assert!(member_passes("join", None, None));
        assert!(member_passes("join", Some("join"), None));
        assert!(!member_passes("leave", Some("join"), None));
        assert!(!member_passes("leave", None, Some("leave")));
        assert!(member_passes("invite", None, Some("leave")));
        // Both: either condition lets a member through.
        assert!(member_passes("join", Some("join"), Some("join")));
        assert!(member_passes("invite", Some("join"), Some("leave")));
        assert!(!member_passes("leave", Some("join"), Some("leave")));
    }
}
