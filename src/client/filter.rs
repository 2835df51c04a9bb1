//! Filters: `POST /user/{userId}/filter` and `GET /user/{userId}/filter/{filterId}`, the filter
//! model (the spec's `Filter`, `RoomFilter`, `EventFilter` and `RoomEventFilter`) and
//! [`load`], which reads the `filter` parameter of `/sync`.
//!
//! Every field is checked against the schema's type: a wrong shape is `M_BAD_JSON`. Fields the
//! spec does not define are ignored, so that clients may send unstable extensions. An explicit
//! `null` is a wrong shape too: the schema has no nullable field.

use std::fmt;
use std::marker::PhantomData;
use std::num::NonZeroU64;

use ruma_common::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::context::Ctx;
use crate::error::{internal, not_found, ErrorKind, MatrixError, Result};
use crate::http::{parse_json_object, Reply};
use crate::storage::events::EventSelection;
use crate::storage::filters;

/// The largest filter we store (its JSON text), about a thousand room IDs.
pub const MAX_FILTER_BYTES: usize = 64 * 1024;

/// The spec's `Filter`, as uploaded or given inline to `/sync`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Filter {
    /// Dot-separated paths of the event fields to include; `None` includes all.
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub event_fields: Option<Vec<String>>,
    pub event_format: EventFormat,
    #[serde(deserialize_with = "object")]
    pub presence: EventFilter,
    #[serde(deserialize_with = "object")]
    pub account_data: EventFilter,
    #[serde(deserialize_with = "object")]
    pub room: RoomFilter,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventFormat {
    #[default]
    Client,
    Federation,
}

/// The spec's `EventFilter`: presence and global account data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventFilter {
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub limit: Option<NonZeroU64>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub not_senders: Option<Vec<OwnedUserId>>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub not_types: Option<Vec<String>>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub senders: Option<Vec<OwnedUserId>>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
}

/// The spec's `RoomFilter`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoomFilter {
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub not_rooms: Option<Vec<OwnedRoomId>>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<OwnedRoomId>>,
    #[serde(deserialize_with = "object")]
    pub ephemeral: RoomEventFilter,
    pub include_leave: bool,
    #[serde(deserialize_with = "object")]
    pub state: RoomEventFilter,
    #[serde(deserialize_with = "object")]
    pub timeline: RoomEventFilter,
    #[serde(deserialize_with = "object")]
    pub account_data: RoomEventFilter,
}

/// The spec's `RoomEventFilter`: an `EventFilter` with room and lazy-loading fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoomEventFilter {
    /// Unlike `EventFilter`'s, may be 0, as Synapse accepts it: a timeline of no events.
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub not_senders: Option<Vec<OwnedUserId>>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub not_types: Option<Vec<String>>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub senders: Option<Vec<OwnedUserId>>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    pub unread_thread_notifications: bool,
    pub lazy_load_members: bool,
    pub include_redundant_members: bool,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub not_rooms: Option<Vec<OwnedRoomId>>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<OwnedRoomId>>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub contains_url: Option<bool>,
}

/// A nested filter: a JSON object only. Derived structs would also take an array (fields by
/// position), which is no shape of the schema.
fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> std::result::Result<T, D::Error> {
    struct ObjectVisitor<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<T, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(ObjectVisitor(PhantomData))
}

/// An optional field that, when present, must hold a value: `null` is refused.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> std::result::Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl EventFilter {
    /// Whether an event of this type from this sender passes the filter.
    pub fn matches(&self, event_type: &str, sender: Option<&UserId>) -> bool {
        matches_types(&self.types, &self.not_types, event_type)
            && matches_senders(&self.senders, &self.not_senders, sender)
    }
}

impl RoomFilter {
    /// Whether the room passes `rooms` and `not_rooms`, which apply before the other filters.
    pub fn includes_room(&self, room_id: &RoomId) -> bool {
        matches_rooms(&self.rooms, &self.not_rooms, room_id)
    }
}

impl RoomEventFilter {
    /// Whether an event passes the filter. `has_url` tells whether its content has a `url` key.
    pub fn matches(&self, room_id: &RoomId, event_type: &str, sender: Option<&UserId>, has_url: bool) -> bool {
        matches_rooms(&self.rooms, &self.not_rooms, room_id)
            && matches_types(&self.types, &self.not_types, event_type)
            && matches_senders(&self.senders, &self.not_senders, sender)
            && self.contains_url.is_none_or(|wanted| wanted == has_url)
    }

    /// The filter's limit, or `default`, at most `max`.
    pub fn limit_or(&self, default: u64, max: u64) -> u64 {
        self.limit.unwrap_or(default).min(max)
    }

    /// Whether `rooms` and `not_rooms` let the room through.
    pub fn includes_room(&self, room_id: &RoomId) -> bool {
        matches_rooms(&self.rooms, &self.not_rooms, room_id)
    }

    /// The event conditions as a query's selection, which applies them in SQL.
    pub fn selection(&self) -> EventSelection {
        let ids = |list: &Option<Vec<OwnedUserId>>| list.as_ref().map(|l| l.iter().map(ToString::to_string).collect());
        EventSelection {
            types: self.types.clone(),
            not_types: self.not_types.clone().unwrap_or_default(),
            senders: ids(&self.senders),
            not_senders: ids(&self.not_senders).unwrap_or_default(),
            contains_url: self.contains_url,
            ..EventSelection::default()
        }
    }
}

fn matches_types(types: &Option<Vec<String>>, not_types: &Option<Vec<String>>, event_type: &str) -> bool {
    let any = |patterns: &[String]| patterns.iter().any(|p| glob_match(p, event_type));
    !not_types.as_deref().is_some_and(any) && types.as_deref().is_none_or(any)
}

fn matches_senders(
    senders: &Option<Vec<OwnedUserId>>,
    not_senders: &Option<Vec<OwnedUserId>>,
    sender: Option<&UserId>,
) -> bool {
    // An event without a sender (none of ours lack one) passes unless an allow-list is given.
    let listed = |ids: &[OwnedUserId]| sender.is_some_and(|s| ids.iter().any(|id| id == s));
    !not_senders.as_deref().is_some_and(listed) && senders.as_deref().is_none_or(listed)
}

fn matches_rooms(rooms: &Option<Vec<OwnedRoomId>>, not_rooms: &Option<Vec<OwnedRoomId>>, room_id: &RoomId) -> bool {
    let listed = |ids: &[OwnedRoomId]| ids.iter().any(|id| id == room_id);
    !not_rooms.as_deref().is_some_and(listed) && rooms.as_deref().is_none_or(listed)
}

/// Matches an event type against a pattern in which `*` stands for any run of characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and where in the text it was last tried to end.
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star, start)) = backtrack {
            pi = star + 1;
            ti = start + 1;
            backtrack = Some((star, start + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Parses and checks a filter: `M_NOT_JSON` for what is not JSON, `M_BAD_JSON` for JSON that
/// is not an object of the `Filter` schema, `M_TOO_LARGE` past [`MAX_FILTER_BYTES`].
pub fn parse(json: &[u8]) -> Result<Filter> {
    if json.len() > MAX_FILTER_BYTES {
        return Err(
            MatrixError::new(ErrorKind::TooLarge, format!("A filter may be at most {MAX_FILTER_BYTES} bytes")).into()
        );
    }
    parse_json_object(json)
}

/// A filter ID as this server hands them out: a decimal number without leading zeros.
pub fn parse_filter_id(raw: &str) -> Option<u64> {
    let canonical = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) && (raw == "0" || !raw.starts_with('0'));
    canonical.then(|| raw.parse().ok()).flatten()
}

/// The `filter` parameter of `/sync`: inline JSON (it starts with `{`) or the ID of one of the
/// requester's filters (`M_NOT_FOUND` when they have none by that ID).
pub async fn load(cx: &Ctx, raw: &str) -> Result<Filter> {
    if raw.trim_start().starts_with('{') {
        return parse(raw.as_bytes());
    }
    let user_id = cx.requester()?.user_id.as_str();
    let filter_id = parse_filter_id(raw).ok_or_else(|| not_found("Unknown filter"))?;
    let stored = filters::get(&cx.db, user_id, filter_id).await?.ok_or_else(|| not_found("Unknown filter"))?;
    serde_json::from_str(&stored).map_err(|e| internal("stored filter", e))
}

pub async fn create_filter(cx: Ctx) -> Result<Reply> {
    let requester = cx.requester_as_path_user()?;
    // Checked against the schema, then stored as sent (with any extension fields) but compact.
    parse(&cx.req.body)?;
    let value: Value = parse_json_object(&cx.req.body)?;
    let json = serde_json::to_string(&value).map_err(|e| internal("serializing a filter", e))?;
    let filter_id = filters::insert(&cx.db, requester.user_id.as_str(), &json).await?;
    Reply::json(&serde_json::json!({ "filter_id": filter_id.to_string() }))
}

pub async fn get_filter(cx: Ctx) -> Result<Reply> {
    let requester = cx.requester_as_path_user()?;
    let filter_id = parse_filter_id(cx.param("filterId")).ok_or_else(|| not_found("Unknown filter"))?;
    let stored = filters::get(&cx.db, requester.user_id.as_str(), filter_id)
        .await?
        .ok_or_else(|| not_found("Unknown filter"))?;
    let value: Value = serde_json::from_str(&stored).map_err(|e| internal("stored filter", e))?;
    Reply::json(&value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errcode(json: &str) -> &'static str {
        parse(json.as_bytes()).unwrap_err().matrix().unwrap().kind.errcode_and_status().0
    }

    fn user(id: &str) -> &UserId {
        <&UserId>::try_from(id).unwrap()
    }

    fn room(id: &str) -> &RoomId {
        <&RoomId>::try_from(id).unwrap()
    }

    #[test]
    fn the_spec_example_parses() {
        let example = json!({
            "room": {
                "state": {"types": ["m.room.*"], "not_rooms": ["!726s6s6q:example.com"]},
                "timeline": {"limit": 10, "types": ["m.room.message"], "not_rooms": ["!726s6s6q:example.com"],
                             "not_senders": ["@spam:example.com"]},
                "ephemeral": {"types": ["m.receipt", "m.typing"], "not_rooms": ["!726s6s6q:example.com"],
                              "not_senders": ["@spam:example.com"]}
            },
            "presence": {"types": ["m.presence"], "not_senders": ["@alice:example.com"]},
            "event_format": "client",
            "event_fields": ["type", "content", "sender"]
        });
        let filter = parse(example.to_string().as_bytes()).unwrap();
        assert_eq!(filter.room.timeline.limit, Some(10));
        assert_eq!(filter.event_format, EventFormat::Client);
        assert_eq!(filter.event_fields.as_deref(), Some(&["type".to_owned(), "content".into(), "sender".into()][..]));
        assert_eq!(filter.presence.types.as_deref(), Some(&["m.presence".to_owned()][..]));
        assert!(!filter.room.include_leave);
    }

    #[test]
    fn everything_is_optional() {
        assert_eq!(parse(b"{}").unwrap(), Filter::default());
        let filter =
            parse(br#"{"room": {"state": {"lazy_load_members": true}}, "event_format": "federation"}"#).unwrap();
        assert!(filter.room.state.lazy_load_members);
        assert_eq!(filter.event_format, EventFormat::Federation);
        // Extensions the spec does not define are ignored.
        assert!(parse(br#"{"room": {"timeline": {"org.matrix.msc3773.unread_thread_notifications": true}}}"#).is_ok());
    }

    #[test]
    fn wrong_shapes_are_bad_json() {
        for bad in [
            r#"{"event_fields": "type"}"#,
            r#"{"event_fields": [1]}"#,
            r#"{"event_fields": null}"#,
            r#"{"event_format": "xml"}"#,
            r#"{"event_format": 1}"#,
            r#"{"presence": []}"#,
            r#"{"presence": null}"#,
            r#"{"presence": {"limit": 0}}"#,
            r#"{"presence": {"limit": -1}}"#,
            r#"{"presence": {"limit": 1.5}}"#,
            r#"{"presence": {"limit": "10"}}"#,
            r#"{"presence": {"limit": 100000000000000000000000}}"#,
            r#"{"presence": {"senders": ["alice"]}}"#,
            r#"{"presence": {"not_senders": [5]}}"#,
            r#"{"account_data": {"types": "m.tag"}}"#,
            r#"{"account_data": {"not_types": [null]}}"#,
            r#"{"room": 1}"#,
            r#"{"room": {"rooms": ["@alias:example.com"]}}"#,
            r#"{"room": {"not_rooms": "!a:b"}}"#,
            r#"{"room": {"include_leave": "yes"}}"#,
            r#"{"room": {"timeline": []}}"#,
            r#"{"room": []}"#,
            r#"{"room": [[], false]}"#,
            r#"{"account_data": [null, ["@a:hs"]]}"#,
            r#"{"room": {"state": [], "timeline": {}}}"#,
            r#"{"room": {"state": {"types": [], "types": []}}}"#,
            r#"{"room": {"timeline": {"limit": -1}}}"#,
            r#"{"room": {"state": {"lazy_load_members": 1}}}"#,
            r#"{"room": {"state": {"include_redundant_members": "true"}}}"#,
            r#"{"room": {"ephemeral": {"rooms": [1]}}}"#,
            r#"{"room": {"account_data": {"contains_url": "no"}}}"#,
            r#"{"room": {"timeline": {"unread_thread_notifications": null}}}"#,
            r#"{"room": {}, "room": {}}"#,
            r#"[]"#,
            r#""filter""#,
        ] {
            assert_eq!(errcode(bad), "M_BAD_JSON", "{bad}");
        }
        assert_eq!(errcode("{"), "M_NOT_JSON");
        assert_eq!(errcode(""), "M_NOT_JSON");
        let huge = format!(r#"{{"event_fields": ["{}"]}}"#, "a".repeat(MAX_FILTER_BYTES));
        assert_eq!(errcode(&huge), "M_TOO_LARGE");
    }

    #[test]
    fn filter_ids() {
        assert_eq!(parse_filter_id("0"), Some(0));
        assert_eq!(parse_filter_id("42"), Some(42));
        for bad in ["", "00", "01", "-1", "+1", "1.0", " 1", "abc", "{}", "99999999999999999999999"] {
            assert_eq!(parse_filter_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("m.room.*", "m.room.message"));
        assert!(glob_match("m.room.*", "m.room."));
        assert!(!glob_match("m.room.*", "m.roo"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*.member", "m.room.member"));
        assert!(glob_match("m.*.m*r", "m.room.member"));
        assert!(!glob_match("m.*.x*r", "m.room.member"));
        assert!(glob_match("a*b*c", "aXXbYYbc"));
        assert!(glob_match("m.typing", "m.typing"));
        assert!(!glob_match("m.typing", "m.typing2"));
        assert!(!glob_match("", "x"));
    }

    #[test]
    fn event_filters_match() {
        let filter: EventFilter =
            serde_json::from_value(json!({"types": ["m.*"], "not_types": ["m.presence"], "not_senders": ["@spam:hs"]}))
                .unwrap();
        assert!(filter.matches("m.tag", Some(user("@a:hs"))));
        assert!(!filter.matches("m.presence", Some(user("@a:hs"))));
        assert!(!filter.matches("org.custom", Some(user("@a:hs"))));
        assert!(!filter.matches("m.tag", Some(user("@spam:hs"))));
        assert!(filter.matches("m.tag", None));

        let only: EventFilter = serde_json::from_value(json!({"senders": ["@a:hs"], "limit": 500})).unwrap();
        assert!(only.matches("x", Some(user("@a:hs"))));
        assert!(!only.matches("x", Some(user("@b:hs"))));
        assert!(!only.matches("x", None));

        let nothing: EventFilter = serde_json::from_value(json!({"types": []})).unwrap();
        assert!(!nothing.matches("m.tag", None));
    }

    #[test]
    fn room_filters_match() {
        let filter: RoomFilter = serde_json::from_value(json!({
            "rooms": ["!a:hs", "!b:hs"], "not_rooms": ["!b:hs"],
            "timeline": {"contains_url": true, "not_rooms": ["!c:hs"], "limit": 3}
        }))
        .unwrap();
        assert!(filter.includes_room(room("!a:hs")));
        assert!(!filter.includes_room(room("!b:hs")));
        assert!(!filter.includes_room(room("!c:hs")));
        assert!(filter.timeline.matches(room("!a:hs"), "m.room.message", Some(user("@a:hs")), true));
        assert!(!filter.timeline.matches(room("!a:hs"), "m.room.message", Some(user("@a:hs")), false));
        assert!(!filter.timeline.matches(room("!c:hs"), "m.room.message", Some(user("@a:hs")), true));
        assert_eq!(filter.timeline.limit_or(20, 100), 3);
        assert!(filter.state.matches(room("!z:hs"), "m.room.member", None, false));
    }

    #[test]
    fn a_filter_survives_a_round_trip() {
        let json = r#"{"event_fields":["content.body"],"presence":{"types":[]},"room":{"include_leave":true,
            "timeline":{"limit":5,"senders":["@a:hs"],"rooms":["!r:hs"]}}}"#;
        let filter = parse(json.as_bytes()).unwrap();
        let again = parse(&serde_json::to_vec(&filter).unwrap()).unwrap();
        assert_eq!(filter, again);
    }
}
