//! The request body of a sliding sync, checked, and what a room's `required_state` asks for.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::error::{invalid_param, Result};
use crate::storage::current_state::StateWanted;

use super::super::rooms::parse_room_id;

/// The largest `timeline_limit` honoured, as `/sync`'s filter limit.
pub const MAX_TIMELINE_LIMIT: u64 = 1000;
/// The most lists and room subscriptions one request may name.
const MAX_LISTS: usize = 100;
const MAX_SUBSCRIPTIONS: usize = 1000;
/// The most `required_state` entries of one list or subscription.
const MAX_REQUIRED_STATE: usize = 200;

#[derive(Debug, Default, Deserialize)]
pub struct Body {
    #[serde(default)]
    pub conn_id: Option<String>,
    #[serde(default)]
    pub txn_id: Option<String>,
    #[serde(default)]
    pub lists: BTreeMap<String, ListRequest>,
    #[serde(default)]
    pub room_subscriptions: BTreeMap<String, RoomParams>,
    #[serde(default)]
    pub extensions: Extensions,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct RoomParams {
    #[serde(default)]
    pub required_state: Vec<(String, String)>,
    #[serde(default)]
    pub timeline_limit: u64,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListRequest {
    #[serde(default)]
    pub ranges: Vec<(u64, u64)>,
    #[serde(flatten)]
    pub params: RoomParams,
    #[serde(default)]
    pub filters: Option<Filters>,
}

/// A list's filters: all must hold; an absent one does not filter. (`room_name_like`, which
/// MSC4186 dropped from MSC3575 and Synapse does not implement, is not one.)
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filters {
    pub is_dm: Option<bool>,
    pub is_encrypted: Option<bool>,
    pub is_invite: Option<bool>,
    /// Create types (`null`: rooms without one).
    pub room_types: Option<Vec<Option<String>>>,
    #[serde(default)]
    pub not_room_types: Vec<Option<String>>,
    pub spaces: Option<Vec<String>>,
    /// Room tags (`m.tag`): a room must have one of these, and none of `not_tags`.
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub not_tags: Vec<String>,
}

impl Filters {
    /// Whether the filter looks at room tags.
    pub fn uses_tags(&self) -> bool {
        self.tags.is_some() || !self.not_tags.is_empty()
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Extensions {
    #[serde(default)]
    pub to_device: Option<ToDevice>,
    #[serde(default)]
    pub e2ee: Option<Enabled>,
    #[serde(default)]
    pub account_data: Option<Scoped>,
    #[serde(default)]
    pub receipts: Option<Scoped>,
    #[serde(default)]
    pub typing: Option<Scoped>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Enabled {
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ToDevice {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub since: Option<String>,
}

/// An extension about rooms: which lists' and subscriptions' rooms it covers (`*`: all; absent:
/// all, as Synapse).
#[derive(Debug, Default, Deserialize)]
pub struct Scoped {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub lists: Option<Vec<String>>,
    #[serde(default)]
    pub rooms: Option<Vec<String>>,
}

impl Body {
    /// Refuses what no answer can be built for: bad room IDs, reversed ranges, too much.
    pub fn check(&self) -> Result<()> {
        if self.lists.len() > MAX_LISTS || self.room_subscriptions.len() > MAX_SUBSCRIPTIONS {
            return Err(invalid_param("Too many lists or room subscriptions"));
        }
        if self.conn_id.as_ref().is_some_and(|c| c.len() > 255) {
            return Err(invalid_param("conn_id is too long"));
        }
        for (name, list) in &self.lists {
            if list.ranges.iter().any(|(start, end)| start > end) {
                return Err(invalid_param(format!("List {name:?} has a range that ends before it starts")));
            }
            check_params(&list.params)?;
            for space in list.filters.iter().flat_map(|f| f.spaces.iter().flatten()) {
                parse_room_id(space)?;
            }
        }
        for (room_id, params) in &self.room_subscriptions {
            parse_room_id(room_id)?;
            check_params(params)?;
        }
        Ok(())
    }
}

fn check_params(params: &RoomParams) -> Result<()> {
    if params.required_state.len() > MAX_REQUIRED_STATE {
        return Err(invalid_param("Too many required_state entries"));
    }
    Ok(())
}

impl Scoped {
    pub fn is_enabled(&self) -> bool {
        self.enabled == Some(true)
    }

    /// Whether the extension covers the rooms of list `name`.
    pub fn covers_list(&self, name: &str) -> bool {
        self.lists.as_ref().is_none_or(|lists| lists.iter().any(|l| l == "*" || l == name))
    }

    /// Whether the extension covers subscribed room `room_id`.
    pub fn covers_subscription(&self, room_id: &str) -> bool {
        self.rooms.as_ref().is_none_or(|rooms| rooms.iter().any(|r| r == "*" || r == room_id))
    }
}

/// What the lists and subscriptions that hold a room ask of it, merged: the largest timeline
/// limit, and every `required_state` entry of any of them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoomConfig {
    pub timeline_limit: u64,
    pub required_state: BTreeSet<(String, String)>,
}

impl RoomConfig {
    pub fn merge(&mut self, params: &RoomParams) {
        self.timeline_limit = self.timeline_limit.max(params.timeline_limit.min(MAX_TIMELINE_LIMIT));
        self.required_state.extend(params.required_state.iter().cloned());
    }

    /// A digest of the `required_state` entries (FNV-1a), so that the connection can tell when
    /// they changed without storing them.
    pub fn state_digest(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for (kind, key) in &self.required_state {
            for byte in kind.bytes().chain([0]).chain(key.bytes()).chain([0]) {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        hash & ((1 << 53) - 1)
    }

    /// Whether a state event of this type and key is asked for; `senders` are the timeline's,
    /// which `$LAZY` members follow.
    pub fn wants(&self, kind: &str, state_key: &str, user: &str, senders: &[&str]) -> bool {
        self.required_state.iter().any(|(k, key)| {
            let kind_ok = k == "*" || k == kind;
            let key_ok = match key.as_str() {
                "*" => true,
                "$ME" => state_key == user,
                "$LAZY" => kind == "m.room.member" && senders.contains(&state_key),
                other => other == state_key,
            };
            kind_ok && key_ok
        })
    }

    /// Adds to `wanted` the lookups of this room's `required_state`, counting changes after
    /// `after` (the `$LAZY` members whatever their age).
    pub fn add_lookups(&self, wanted: &mut StateWanted, room_id: &str, user: &str, senders: &[&str], after: u64) {
        for (kind, key) in &self.required_state {
            let key = match key.as_str() {
                "$ME" => user,
                other => other,
            };
            match (kind.as_str(), key) {
                ("*", "*") => wanted.any_type.push((room_id.to_owned(), None, after)),
                ("*", key) => wanted.any_type.push((room_id.to_owned(), Some(key.to_owned()), after)),
                (kind, "*") => wanted.of_type.push((room_id.to_owned(), kind.to_owned(), after)),
                // The senders' members come whether they changed or not: the client may never have
                // had them.
                ("m.room.member", "$LAZY") => {
                    for sender in senders {
                        let entry = (room_id.to_owned(), "m.room.member".to_owned(), (*sender).to_owned(), 0);
                        wanted.exact.push(entry);
                    }
                }
                (_, "$LAZY") => {}
                (kind, key) => wanted.exact.push((room_id.to_owned(), kind.to_owned(), key.to_owned(), after)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(entries: &[(&str, &str)], limit: u64) -> RoomConfig {
        let mut c = RoomConfig::default();
        c.merge(&RoomParams {
            required_state: entries.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
            timeline_limit: limit,
        });
        c
    }

    #[test]
    fn required_state_rules() {
        let c = config(&[("m.room.name", ""), ("m.room.member", "$LAZY"), ("m.room.member", "$ME")], 5);
        assert!(c.wants("m.room.name", "", "@me:hs", &[]));
        assert!(!c.wants("m.room.topic", "", "@me:hs", &[]));
        assert!(c.wants("m.room.member", "@me:hs", "@me:hs", &[]));
        assert!(c.wants("m.room.member", "@a:hs", "@me:hs", &["@a:hs"]));
        assert!(!c.wants("m.room.member", "@b:hs", "@me:hs", &["@a:hs"]));
        let all = config(&[("*", "*")], 1);
        assert!(all.wants("anything", "at all", "@me:hs", &[]));
        let of_type = config(&[("m.room.member", "*")], 1);
        assert!(of_type.wants("m.room.member", "@z:hs", "@me:hs", &[]));
        assert!(!of_type.wants("m.room.name", "", "@me:hs", &[]));
    }

    #[test]
    fn lookups_follow_the_rules() {
        let c = config(&[("m.room.name", ""), ("m.room.member", "$LAZY"), ("m.room.member", "$ME"), ("m.x", "*")], 1);
        let mut wanted = StateWanted::default();
        c.add_lookups(&mut wanted, "!r:hs", "@me:hs", &["@a:hs"], 7);
        let exact: Vec<(&str, &str)> = wanted.exact.iter().map(|(_, t, k, _)| (t.as_str(), k.as_str())).collect();
        assert_eq!(exact, [("m.room.member", "@a:hs"), ("m.room.member", "@me:hs"), ("m.room.name", "")]);
        assert_eq!(wanted.of_type, [("!r:hs".to_owned(), "m.x".to_owned(), 7)]);
        assert!(wanted.any_type.is_empty());
        let mut all = StateWanted::default();
        config(&[("*", "*")], 1).add_lookups(&mut all, "!r:hs", "@me:hs", &[], 0);
        assert_eq!(all.any_type, [("!r:hs".to_owned(), None, 0)]);
    }

    #[test]
    fn merging_takes_the_largest_limit_and_every_entry() {
        let mut c = config(&[("a", "")], 3);
        c.merge(&RoomParams { required_state: vec![("b".into(), "".into())], timeline_limit: 20_000 });
        assert_eq!(c.timeline_limit, MAX_TIMELINE_LIMIT);
        assert_eq!(c.required_state.len(), 2);
        assert_ne!(c.state_digest(), config(&[("a", "")], 3).state_digest());
        assert_eq!(config(&[("a", "")], 3).state_digest(), config(&[("a", "")], 9).state_digest());
    }

    #[test]
    fn bodies_are_checked() {
        let body: Body =
            serde_json::from_str(r#"{"lists": {"a": {"ranges": [[5, 1]], "timeline_limit": 1}}}"#).unwrap();
        assert!(body.check().is_err());
        let body: Body = serde_json::from_str(r#"{"room_subscriptions": {"nope": {"timeline_limit": 1}}}"#).unwrap();
        assert!(body.check().is_err());
        let body: Body = serde_json::from_str(
            r#"{"conn_id": "room-list", "lists": {"all": {"ranges": [[0, 19]], "timeline_limit": 1,
                "required_state": [["m.room.name", ""]], "filters": {"is_dm": true, "room_types": [null, "m.space"]}}},
                "extensions": {"to_device": {"enabled": true, "since": "5"}, "typing": {"enabled": true, "lists": ["all"]}}}"#,
        )
        .unwrap();
        assert!(body.check().is_ok());
        let typing = body.extensions.typing.as_ref().unwrap();
        assert!(typing.covers_list("all") && !typing.covers_list("other") && typing.covers_subscription("!x:hs"));
        assert_eq!(body.lists["all"].filters.as_ref().unwrap().room_types, Some(vec![None, Some("m.space".into())]));
    }
}
