//! Paging through rooms: `GET /rooms/{roomId}/messages`, `/context/{eventId}` and
//! `/timestamp_to_event`.
//!
//! Tokens are [`super::room_access`]'s `s<N>` stream tokens; every event served is one history
//! visibility lets the requester see.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::error::{bad_json, invalid_param, missing_param, not_found, ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::room::visibility::Access;
use crate::storage::events::{self, Direction, EventSelection, StoredEvent};

use super::filter::glob_match;
use super::relations::serve_bundled;
use super::room_access::{dir_param, event_id_param, parse_limit, stream_token, token_param, RoomView};
use super::rooms::room_id_param;

/// Events per page when neither the query nor the filter says.
const DEFAULT_LIMIT: u64 = 10;
/// The most events one page returns.
const MAX_LIMIT: u64 = 1000;

/// A `RoomEventFilter`, as `/messages` and `/context` take it in their `filter` parameter.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct RoomEventFilter {
    pub limit: Option<u64>,
    pub types: Option<Vec<String>>,
    pub not_types: Vec<String>,
    pub senders: Option<Vec<String>>,
    pub not_senders: Vec<String>,
    pub rooms: Option<Vec<String>>,
    pub not_rooms: Vec<String>,
    pub contains_url: Option<bool>,
    pub lazy_load_members: bool,
    pub include_redundant_members: bool,
    pub unread_thread_notifications: bool,
}

impl RoomEventFilter {
    /// The `filter` query parameter: absent is no filter; `M_NOT_JSON` for what is not JSON,
    /// `M_BAD_JSON` for JSON that is not a RoomEventFilter.
    pub fn parse(raw: Option<&str>) -> Result<Self> {
        let Some(raw) = raw else { return Ok(Self::default()) };
        let value: Value = serde_json::from_str(raw)
            .map_err(|e| MatrixError::new(ErrorKind::NotJson, format!("filter is not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(bad_json("filter must be a JSON object"));
        }
        // Through the text again, so that a duplicated field is refused.
        let filter: Self = serde_json::from_str(raw).map_err(|e| bad_json(format!("Invalid filter: {e}")))?;
        if filter.limit == Some(0) {
            return Err(bad_json("Invalid filter: limit must be greater than 0"));
        }
        Ok(filter)
    }

    /// Whether the filter lets events of this room through at all.
    pub fn allows_room(&self, room_id: &str) -> bool {
        !self.not_rooms.iter().any(|r| r == room_id)
            && self.rooms.as_ref().is_none_or(|rs| rs.iter().any(|r| r == room_id))
    }

    /// The filter as a query's selection.
    pub fn selection(&self) -> EventSelection {
        EventSelection {
            types: self.types.clone(),
            not_types: self.not_types.clone(),
            senders: self.senders.clone(),
            not_senders: self.not_senders.clone(),
            contains_url: self.contains_url,
            ..EventSelection::default()
        }
    }

    /// Whether an event passes the filter's event conditions (the queries apply the same in SQL).
    pub fn matches(&self, e: &StoredEvent) -> bool {
        let type_matches = |patterns: &[String]| patterns.iter().any(|p| glob_match(p, &e.kind));
        if self.types.as_deref().is_some_and(|t| !type_matches(t)) || type_matches(&self.not_types) {
            return false;
        }
        if self.senders.as_ref().is_some_and(|s| !s.contains(&e.sender)) || self.not_senders.contains(&e.sender) {
            return false;
        }
        match self.contains_url {
            None => true,
            Some(wanted) => has_url(e) == wanted,
        }
    }
}

/// Whether an event's content has a string `url`, as a reader sees it (redaction removes it).
fn has_url(e: &StoredEvent) -> bool {
    if e.redaction_json.is_some() {
        return false;
    }
    serde_json::from_str::<Value>(&e.json).ok().is_some_and(|pdu| pdu["content"]["url"].is_string())
}

/// The distinct senders of some events.
fn senders<'a>(events: impl IntoIterator<Item = &'a StoredEvent>) -> Vec<String> {
    events.into_iter().map(|e| e.sender.clone()).collect::<BTreeSet<_>>().into_iter().collect()
}

pub async fn get_message_events(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let dir = dir_param(&cx, None)?;
    let from = token_param(&cx, "from")?;
    let to = token_param(&cx, "to")?;
    let filter = RoomEventFilter::parse(cx.req.query("filter"))?;
    let limit = parse_limit(cx.req.query("limit"), filter.limit.unwrap_or(DEFAULT_LIMIT), MAX_LIMIT)?;
    let view = RoomView::open(&cx, &room_id).await?;
    let start = match (from, dir) {
        (Some(from), _) => from.min(view.head()),
        (None, Direction::Backward) => view.head(),
        (None, Direction::Forward) => 0,
    };
    let page = match filter.allows_room(room_id.as_str()) {
        true => view.page(&cx, dir, from, to, &filter.selection(), limit).await?,
        false => crate::client::room_access::Page { events: Vec::new(), next: None },
    };
    let mut body = Map::new();
    body.insert("chunk".into(), Value::Array(serve_bundled(&cx, &view, &page.events).await?));
    body.insert("start".into(), stream_token(start).into());
    // Forward to the live end of a room whose new events the requester will see, the chunk's end
    // is where to continue once more come (as in Synapse); an end of history has none.
    let live = matches!(view.access, Access::Joined | Access::Peeking);
    let continue_at = match (dir, page.events.last()) {
        (Direction::Forward, Some(last)) if live && to.is_none() => Some(last.position()),
        _ => None,
    };
    if let Some(next) = page.next.or(continue_at) {
        body.insert("end".into(), stream_token(next).into());
    }
    if filter.lazy_load_members {
        // The members who sent the chunk, as of its first event (what a client shows first).
        let state = match page.events.first() {
            Some(first) => events::members_at(&cx.db, &view.room_id, &senders(&page.events), first.position()).await?,
            None => Vec::new(),
        };
        body.insert("state".into(), Value::Array(view.serve_all(&cx, &state)?));
    }
    Reply::json(&body)
}

pub async fn get_context(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let event_id = event_id_param(&cx)?;
    let filter = RoomEventFilter::parse(cx.req.query("filter"))?;
    let limit = parse_limit(cx.req.query("limit"), filter.limit.unwrap_or(DEFAULT_LIMIT), MAX_LIMIT)?;
    let view = RoomView::open(&cx, &room_id).await?;
    let event = view.event(&cx, &event_id).await?;
    let position = event.position();
    // As Synapse splits it: the smaller half before, the rest after.
    let (before_limit, after_limit) = (limit / 2, limit - limit / 2);
    let selection = filter.selection();
    let (before, after) = match filter.allows_room(room_id.as_str()) {
        true => {
            let before =
                view.page(&cx, Direction::Backward, Some(position.saturating_sub(1)), None, &selection, before_limit);
            let after = view.page(&cx, Direction::Forward, Some(position), None, &selection, after_limit);
            let (before, after) = futures::join!(before, after);
            (before?.events, after?.events)
        }
        false => (Vec::new(), Vec::new()),
    };
    let start = before.last().map_or(position, StoredEvent::position).saturating_sub(1);
    let end = after.last().map_or(position, StoredEvent::position);
    let last = after.last().unwrap_or(&event);
    let state = if filter.lazy_load_members {
        let senders = senders(before.iter().chain([&event]).chain(after.iter()));
        events::members_at(&cx.db, &view.room_id, &senders, last.position()).await?
    } else {
        events::state_at(&cx.db, &view.room_id, last.position()).await?
    };
    let state: Vec<StoredEvent> = state.into_iter().filter(|e| filter.matches(e)).collect();
    let mut served =
        serve_bundled(&cx, &view, &[before.as_slice(), std::slice::from_ref(&event), after.as_slice()].concat())
            .await?
            .into_iter();
    let events_before: Vec<Value> = served.by_ref().take(before.len()).collect();
    let event_served = served.next().unwrap_or(Value::Null);
    let events_after: Vec<Value> = served.collect();
    Reply::json(&json!({
        "start": stream_token(start),
        "end": stream_token(end),
        "events_before": events_before,
        "event": event_served,
        "events_after": events_after,
        "state": view.serve_all(&cx, &state)?,
    }))
}

pub async fn get_event_by_timestamp(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let ts = match cx.req.query("ts") {
        None => return Err(missing_param("The ts parameter is required")),
        Some(raw) => raw.parse::<u64>().map_err(|_| invalid_param(format!("ts must be a timestamp, not {raw:?}")))?,
    };
    let dir = dir_param(&cx, None)?;
    let view = RoomView::open(&cx, &room_id).await?;
    let found = events::closest_visible_to_ts(&cx.db, &view.room_id, ts, dir, &view.visible).await?;
    let event = found.into_iter().find(|e| view.can_see(e)).ok_or_else(|| {
        let direction = if dir == Direction::Forward { "forward" } else { "backward" };
        not_found(format!("Unable to find an event from {ts} in the {direction} direction"))
    })?;
    Reply::json(&json!({"event_id": event.event_id, "origin_server_ts": event.origin_server_ts as u64}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(kind: &str, sender: &str, content: Value) -> StoredEvent {
        StoredEvent {
            stream_ordering: 1.0,
            event_id: "$e".into(),
            room_id: "!r:hs".into(),
            kind: kind.into(),
            state_key: None,
            sender: sender.into(),
            origin_server_ts: 0.0,
            membership: None,
            txn_device_id: None,
            txn_id: None,
            prev_state: None,
            json: json!({"type": kind, "sender": sender, "content": content}).to_string(),
            redaction_json: None,
            redaction_id: None,
            sender_erased: 0.0,
        }
    }

    fn code(raw: &str) -> &'static str {
        RoomEventFilter::parse(Some(raw)).unwrap_err().matrix().unwrap().kind.errcode_and_status().0
    }

    #[test]
    fn filters_parse_strictly() {
        assert_eq!(RoomEventFilter::parse(None).unwrap(), RoomEventFilter::default());
        let f = RoomEventFilter::parse(Some(
            r#"{"types": ["m.room.*"], "not_senders": ["@b:hs"], "lazy_load_members": true, "limit": 3,
                "contains_url": false, "unknown_field": 1, "rooms": ["!r:hs"]}"#,
        ))
        .unwrap();
        assert_eq!(f.types, Some(vec!["m.room.*".to_owned()]));
        assert_eq!(f.not_senders, vec!["@b:hs".to_owned()]);
        assert!(f.lazy_load_members && !f.include_redundant_members);
        assert_eq!(f.limit, Some(3));
        assert_eq!(f.contains_url, Some(false));
        assert!(f.allows_room("!r:hs") && !f.allows_room("!other:hs"));
        let sel = f.selection();
        assert_eq!(sel.types, f.types);
        assert_eq!(sel.not_senders, f.not_senders);
        assert_eq!(sel.contains_url, Some(false));
        assert!(sel.visible.is_none() && !sel.exclude_redacted);

        assert_eq!(code("{"), "M_NOT_JSON");
        assert_eq!(code("not json"), "M_NOT_JSON");
        assert_eq!(code("[]"), "M_BAD_JSON");
        assert_eq!(code(r#"{"types": "m.room.message"}"#), "M_BAD_JSON");
        assert_eq!(code(r#"{"limit": -1}"#), "M_BAD_JSON");
        assert_eq!(code(r#"{"limit": 0}"#), "M_BAD_JSON");
        assert_eq!(code(r#"{"contains_url": "yes"}"#), "M_BAD_JSON");
        assert_eq!(code(r#"{"types": [], "types": []}"#), "M_BAD_JSON");
        let none = RoomEventFilter::parse(Some(r#"{"not_rooms": ["!r:hs"], "rooms": ["!r:hs"]}"#)).unwrap();
        assert!(!none.allows_room("!r:hs"), "not_rooms wins over rooms");
    }

    #[test]
    fn type_patterns() {
        assert!(glob_match("m.room.message", "m.room.message"));
        assert!(!glob_match("m.room.message", "m.room.message.x"));
        assert!(glob_match("m.room.*", "m.room.message"));
        assert!(glob_match("m.room.*", "m.room."));
        assert!(!glob_match("m.room.*", "m.roo"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*.member", "m.room.member"));
        assert!(glob_match("m.*.m*r", "m.room.member"));
        assert!(!glob_match("m.*.m*x", "m.room.member"));
        assert!(!glob_match("a*a", "a"), "the two a's may not overlap");
    }

    #[test]
    fn events_match_filters() {
        let text = stored("m.room.message", "@a:hs", json!({"body": "hi"}));
        let file = stored("m.room.message", "@b:hs", json!({"body": "f", "url": "mxc://hs/x"}));
        let f = |raw: &str| RoomEventFilter::parse(Some(raw)).unwrap();
        assert!(f("{}").matches(&text));
        assert!(f(r#"{"types": ["m.*"]}"#).matches(&text));
        assert!(!f(r#"{"types": []}"#).matches(&text), "an empty list includes nothing");
        assert!(!f(r#"{"not_types": ["m.room.message"], "types": ["m.*"]}"#).matches(&text));
        assert!(!f(r#"{"senders": ["@b:hs"]}"#).matches(&text));
        assert!(f(r#"{"senders": ["@b:hs"]}"#).matches(&file));
        assert!(!f(r#"{"not_senders": ["@b:hs"], "senders": ["@b:hs"]}"#).matches(&file));
        assert!(f(r#"{"contains_url": true}"#).matches(&file));
        assert!(!f(r#"{"contains_url": true}"#).matches(&text));
        assert!(f(r#"{"contains_url": false}"#).matches(&text));
        let mut redacted = file.clone();
        redacted.redaction_json = Some("{}".into());
        assert!(!f(r#"{"contains_url": true}"#).matches(&redacted), "redaction removed the url");
    }
}
