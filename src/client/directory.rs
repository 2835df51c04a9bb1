//! The public room directory: `GET` and `POST /publicRooms`, and `GET` and
//! `PUT /directory/list/room/{roomId}`.
//!
//! The directory lists the rooms whose `is_public` flag is set, in room ID order, which is stable
//! while rooms come and go. A pagination token names the room a page ends at and which way the
//! next page runs from it: `n<room ID>` for the rooms after it, `p<room ID>` for those before.

use ruma_common::ServerName;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::error::{bad_json, forbidden, invalid_param, not_found, Result};
use crate::http::Reply;
use crate::room::client_format::redacted_content;
use crate::room::versions::RoomVersion;
use crate::storage::rooms::{self, DirectoryRoom};

use super::alias::{may_send_state, power_view};
use super::rooms::{parse_room_id, room_id_param};

/// The most rooms one page holds, whatever `limit` asks for; more come through `next_batch`.
const MAX_PAGE: u64 = 500;
/// How many rooms one read of the directory examines.
const SCAN_BATCH: u64 = 100;

#[derive(Debug, Deserialize)]
struct VisibilityBody {
    /// `public` or `private`, `public` when absent. A string rather than an enum: serde_json
    /// reports a non-string for an enum as a syntax error, which would read as M_NOT_JSON.
    visibility: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct PublicRoomsBody {
    limit: Option<u64>,
    since: Option<String>,
    filter: Option<FilterBody>,
    #[serde(default)]
    include_all_networks: bool,
    third_party_instance_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct FilterBody {
    generic_search_term: Option<String>,
    room_types: Option<Vec<Option<String>>>,
}

pub async fn get_public_rooms(cx: Ctx) -> Result<Reply> {
    check_server(&cx)?;
    let limit = match cx.req.query("limit") {
        None | Some("") => None,
        Some(raw) => Some(raw.parse::<u64>().map_err(|_| invalid_param("limit must be a non-negative integer"))?),
    };
    let since = cx.req.query("since").map(Token::parse).transpose()?;
    let page = list(&cx, limit, since, &Filter::default()).await?;
    Reply::json(&page)
}

pub async fn get_public_rooms_filtered(cx: Ctx) -> Result<Reply> {
    check_server(&cx)?;
    let body: PublicRoomsBody = cx.req.json()?;
    let since = body.since.as_deref().map(Token::parse).transpose()?;
    if body.include_all_networks && body.third_party_instance_id.is_some() {
        return Err(invalid_param("include_all_networks cannot be combined with a third_party_instance_id"));
    }
    if !body.include_all_networks && body.third_party_instance_id.is_some() {
        // Rooms bridged into third-party networks are listed per network; this server has no
        // application services, so no network lists any room.
        return Reply::json(&json!({"chunk": [], "total_room_count_estimate": 0}));
    }
    let filter = match body.filter {
        Some(f) => Filter {
            search: f.generic_search_term.map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty()),
            // An empty list filters nothing, as in Synapse.
            room_types: f.room_types.filter(|types| !types.is_empty()),
        },
        None => Filter::default(),
    };
    let page = list(&cx, body.limit, since, &filter).await?;
    Reply::json(&page)
}

pub async fn get_room_visibility(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let room = rooms::get(&cx.db, room_id.as_str()).await?.ok_or_else(|| not_found("Room not found"))?;
    let visibility = if room.is_public() { "public" } else { "private" };
    Reply::json(&json!({"visibility": visibility}))
}

pub async fn set_room_visibility(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let body: VisibilityBody = cx.req.json()?;
    let public = match body.visibility.as_deref() {
        None | Some("public") => true,
        Some("private") => false,
        Some(other) => return Err(bad_json(format!("visibility must be \"public\" or \"private\", not {other:?}"))),
    };
    let user = cx.requester()?.user_id.clone();
    // `power_view` answers M_NOT_FOUND for a room this server does not have.
    let room = power_view(&cx, &room_id, &user).await?;
    let joined = room.membership(user.as_str()).as_deref() == Some("join");
    let is_creator = room.creators().iter().any(|c| c == user.as_str());
    if !(may_send_state(&room, &user, "m.room.canonical_alias") || joined && is_creator) {
        return Err(forbidden(
            "Only a room member who may send m.room.canonical_alias can change the room's directory visibility",
        ));
    }
    cx.db.run(rooms::set_public(&cx.db, room_id.as_str(), public)?).await?;
    Ok(Reply::empty())
}

/// The `server` query parameter must name this server: it does not federate.
fn check_server(cx: &Ctx) -> Result<()> {
    let Some(server) = cx.req.query("server").filter(|s| !s.is_empty()) else { return Ok(()) };
    if server == cx.config.server_name.as_str() {
        return Ok(());
    }
    if ServerName::parse(server).is_err() {
        return Err(invalid_param(format!("Invalid server name: {server}")));
    }
    // What Synapse answers when federation with a server is not allowed.
    Err(forbidden(format!("Federation denied with {server}: this server does not federate")))
}

/// Which way a page runs from its token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// The rooms after this one.
    After(String),
    /// The rooms before this one.
    Before(String),
}

impl Token {
    fn parse(raw: &str) -> Result<Self> {
        let bad = || invalid_param(format!("{raw:?} is not a pagination token of this server"));
        let (kind, room_id) = match raw.split_at_checked(1) {
            Some(parts) => parts,
            None => return Err(bad()),
        };
        parse_room_id(room_id).map_err(|_| bad())?;
        match kind {
            "n" => Ok(Token::After(room_id.to_owned())),
            "p" => Ok(Token::Before(room_id.to_owned())),
            _ => Err(bad()),
        }
    }
}

/// What a `POST /publicRooms` filter asks for; the search term is lowercased.
#[derive(Debug, Default)]
struct Filter {
    search: Option<String>,
    room_types: Option<Vec<Option<String>>>,
}

impl Filter {
    fn matches(&self, room: &Entry) -> bool {
        if let Some(types) = &self.room_types {
            if !types.contains(&room.room_type) {
                return false;
            }
        }
        let Some(term) = &self.search else { return true };
        [&room.name, &room.topic, &room.canonical_alias]
            .into_iter()
            .any(|field| field.as_deref().is_some_and(|v| v.to_lowercase().contains(term.as_str())))
    }
}

/// One room of the directory: a `PublishedRoomsChunk`.
#[derive(Debug, Default, PartialEq)]
struct Entry {
    room_id: String,
    name: Option<String>,
    topic: Option<String>,
    canonical_alias: Option<String>,
    avatar_url: Option<String>,
    join_rule: Option<String>,
    room_type: Option<String>,
    world_readable: bool,
    guest_can_join: bool,
    num_joined_members: u64,
}

impl Entry {
    fn from_room(room: &DirectoryRoom) -> Self {
        let version = RoomVersion::parse(&room.room_version).ok();
        let mut entry =
            Entry { room_id: room.room_id.clone(), num_joined_members: room.joined_members, ..Entry::default() };
        for (kind, content, redacted) in &room.state {
            let mut content: Value = serde_json::from_str(content).unwrap_or(Value::Null);
            if *redacted {
                match &version {
                    Some(version) => content = redacted_content(content, kind, version),
                    None => continue,
                }
            }
            let text =
                |field: &str| content.get(field).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
            match kind.as_str() {
                "m.room.create" => entry.room_type = text("type"),
                "m.room.name" => entry.name = text("name"),
                "m.room.topic" => entry.topic = text("topic").or_else(|| plain_text_topic(&content)),
                "m.room.canonical_alias" => entry.canonical_alias = text("alias"),
                "m.room.avatar" => entry.avatar_url = text("url"),
                "m.room.join_rules" => entry.join_rule = text("join_rule"),
                "m.room.history_visibility" => {
                    entry.world_readable = text("history_visibility").as_deref() == Some("world_readable")
                }
                "m.room.guest_access" => entry.guest_can_join = text("guest_access").as_deref() == Some("can_join"),
                _ => {}
            }
        }
        entry
    }

    fn to_json(&self) -> Value {
        let mut chunk = Map::new();
        chunk.insert("room_id".into(), self.room_id.clone().into());
        chunk.insert("num_joined_members".into(), self.num_joined_members.into());
        chunk.insert("world_readable".into(), self.world_readable.into());
        chunk.insert("guest_can_join".into(), self.guest_can_join.into());
        let optional = [
            ("name", &self.name),
            ("topic", &self.topic),
            ("canonical_alias", &self.canonical_alias),
            ("avatar_url", &self.avatar_url),
            ("join_rule", &self.join_rule),
            ("room_type", &self.room_type),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                chunk.insert(key.into(), value.clone().into());
            }
        }
        Value::Object(chunk)
    }
}

/// The `text/plain` body of an `m.topic` content block, for a topic without a `topic` string.
fn plain_text_topic(content: &Value) -> Option<String> {
    let texts = content.get("m.topic")?.get("m.text")?.as_array()?;
    texts
        .iter()
        .find(|t| t.get("mimetype").and_then(Value::as_str).is_none_or(|m| m == "text/plain"))
        .and_then(|t| t.get("body"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// One page of the directory from a token, `limit` rooms at most, filtered.
async fn list(cx: &Ctx, limit: Option<u64>, since: Option<Token>, filter: &Filter) -> Result<Value> {
    let limit = match limit {
        None | Some(0) => MAX_PAGE,
        Some(n) => n.min(MAX_PAGE),
    };
    let backward = matches!(since, Some(Token::Before(_)));
    let mut cursor = match &since {
        None => String::new(),
        Some(Token::After(id) | Token::Before(id)) => id.clone(),
    };
    // Read windows of the directory until `limit + 1` rooms match (one more tells whether the
    // page has a successor) or the directory ends.
    let mut found: Vec<Entry> = Vec::new();
    'scan: loop {
        let window = rooms::directory_window(&cx.db, &cursor, backward, SCAN_BATCH).await?;
        let ended = (window.len() as u64) < SCAN_BATCH;
        for room in &window {
            cursor.clone_from(&room.room_id);
            let entry = Entry::from_room(room);
            if filter.matches(&entry) {
                found.push(entry);
                if found.len() as u64 > limit {
                    break 'scan;
                }
            }
        }
        if ended {
            break;
        }
    }
    let more = found.len() as u64 > limit;
    found.truncate(limit as usize);
    if backward {
        found.reverse();
    }
    let mut page = Map::new();
    page.insert("chunk".into(), Value::Array(found.iter().map(Entry::to_json).collect()));
    if let (Some(first), Some(last)) = (found.first(), found.last()) {
        // Going forward there are rooms before the page when it started from a token; going
        // backward there are rooms after it (the token's own room at least).
        let (has_prev, has_next) = if backward { (more, true) } else { (since.is_some(), more) };
        if has_next {
            page.insert("next_batch".into(), format!("n{}", last.room_id).into());
        }
        if has_prev {
            page.insert("prev_batch".into(), format!("p{}", first.room_id).into());
        }
    }
    page.insert("total_room_count_estimate".into(), rooms::public_count(&cx.db).await?.into());
    Ok(Value::Object(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(state: &[(&str, Value, bool)]) -> DirectoryRoom {
        DirectoryRoom {
            room_id: "!r:hs".into(),
            room_version: "11".into(),
            joined_members: 3,
            state: state.iter().map(|(k, c, r)| (k.to_string(), c.to_string(), *r)).collect(),
        }
    }

    #[test]
    fn entries_show_the_directory_fields() {
        let entry = Entry::from_room(&room(&[
            ("m.room.create", json!({"room_version": "11", "type": "m.space"}), false),
            ("m.room.name", json!({"name": "Général"}), false),
            (
                "m.room.topic",
                json!({"m.topic": {"m.text": [{"mimetype": "text/html", "body": "<b>x</b>"}, {"body": "Plain"}]}}),
                false,
            ),
            ("m.room.canonical_alias", json!({"alias": "#g:hs"}), false),
            ("m.room.avatar", json!({"url": "mxc://hs/a"}), false),
            ("m.room.join_rules", json!({"join_rule": "knock"}), false),
            ("m.room.history_visibility", json!({"history_visibility": "world_readable"}), false),
            ("m.room.guest_access", json!({"guest_access": "can_join"}), false),
        ]));
        let expected = json!({
            "room_id": "!r:hs", "num_joined_members": 3, "world_readable": true, "guest_can_join": true,
            "name": "Général", "topic": "Plain", "canonical_alias": "#g:hs", "avatar_url": "mxc://hs/a",
            "join_rule": "knock", "room_type": "m.space"
        });
        assert_eq!(entry.to_json(), expected);
    }

    #[test]
    fn redacted_and_empty_state_shows_nothing() {
        let entry = Entry::from_room(&room(&[
            ("m.room.name", json!({"name": "Secret"}), true),
            ("m.room.topic", json!({"topic": ""}), false),
            ("m.room.join_rules", json!({"join_rule": "public"}), true),
        ]));
        assert_eq!(entry.name, None);
        assert_eq!(entry.topic, None);
        // The redaction algorithm keeps `join_rule`.
        assert_eq!(entry.join_rule.as_deref(), Some("public"));
        let json = entry.to_json();
        assert!(json.get("name").is_none() && json.get("topic").is_none() && json.get("room_type").is_none());
    }

    #[test]
    fn the_filter_searches_name_topic_and_alias_without_case() {
        let entry = Entry {
            name: Some("Rust Évènements".into()),
            topic: Some("All about crabs".into()),
            canonical_alias: Some("#Ferris:hs".into()),
            ..Entry::default()
        };
        let search = |term: &str| Filter { search: Some(term.to_lowercase()), room_types: None }.matches(&entry);
        assert!(search("rust"));
        assert!(search("ÉVÈNEMENTS"));
        assert!(search("CRABS"));
        assert!(search("#ferris"));
        assert!(!search("python"));
        let types = |t: Vec<Option<&str>>| {
            Filter { search: None, room_types: Some(t.into_iter().map(|t| t.map(str::to_owned)).collect()) }
                .matches(&entry)
        };
        assert!(types(vec![None]));
        assert!(!types(vec![Some("m.space")]));
        let space = Entry { room_type: Some("m.space".into()), ..Entry::default() };
        let only_spaces = Filter { search: None, room_types: Some(vec![Some("m.space".into())]) };
        assert!(only_spaces.matches(&space));
    }

    #[test]
    fn tokens_name_a_direction_and_a_room() {
        assert_eq!(Token::parse("n!a:hs").unwrap(), Token::After("!a:hs".into()));
        assert_eq!(Token::parse("p!a:hs").unwrap(), Token::Before("!a:hs".into()));
        for bad in ["", "n", "x!a:hs", "nnot-a-room", "é"] {
            let e = Token::parse(bad).unwrap_err();
            assert_eq!(e.matrix().unwrap().kind, crate::error::ErrorKind::InvalidParam, "{bad}");
        }
    }
}
