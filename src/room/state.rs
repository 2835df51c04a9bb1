//! A room's current state as its single writer holds it: the state map, the newest event, and
//! the authorization of each new event against them.

use std::collections::BTreeMap;
use std::rc::Rc;

use ruma_common::{OwnedEventId, OwnedRoomId, UserId};
use ruma_events::{StateEventType, TimelineEventType};
use ruma_state_res::{check_state_dependent_auth_rules, check_state_independent_auth_rules};
use serde_json::Value;

use super::pdu::{self, BuildError, EventTemplate, Pdu, Position};
use super::signing::ServerKey;
use super::versions::RoomVersion;

/// Why a new event was not accepted.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// The authorization rules reject it; the message says which rule.
    Forbidden(String),
    Build(BuildError),
}

#[derive(Debug, Clone)]
pub struct RoomState {
    pub version: RoomVersion,
    pub room_id: OwnedRoomId,
    state: BTreeMap<(String, String), Rc<Pdu>>,
    by_id: BTreeMap<OwnedEventId, Rc<Pdu>>,
    /// The newest event and its depth.
    head: Option<(OwnedEventId, u64)>,
}

impl RoomState {
    pub fn new(version: RoomVersion, room_id: OwnedRoomId) -> Self {
        Self { version, room_id, state: BTreeMap::new(), by_id: BTreeMap::new(), head: None }
    }

    /// Rebuilds the state from its events and the newest event of the room.
    pub fn load(
        version: RoomVersion,
        room_id: OwnedRoomId,
        state_events: impl IntoIterator<Item = Pdu>,
        head: (OwnedEventId, u64),
    ) -> Self {
        let mut room = Self::new(version, room_id);
        for pdu in state_events {
            room.insert_state(Rc::new(pdu));
        }
        room.head = Some(head);
        room
    }

    pub fn get(&self, kind: &str, state_key: &str) -> Option<&Rc<Pdu>> {
        self.state.get(&(kind.to_owned(), state_key.to_owned()))
    }

    pub fn state_events(&self) -> impl Iterator<Item = &Rc<Pdu>> {
        self.state.values()
    }

    /// A user's membership: `join`, `invite`, `leave`, `ban` or `knock`.
    pub fn membership(&self, user_id: &str) -> Option<String> {
        self.get("m.room.member", user_id).and_then(|e| e.membership())
    }

    /// The creators of a room: its create event's sender (`content.creator` before v11) and, from
    /// v12, its `additional_creators`.
    pub fn creators(&self) -> Vec<String> {
        let Some(create) = self.get("m.room.create", "") else { return Vec::new() };
        let creator = if self.version.rules.authorization.use_room_create_sender {
            Some(create.sender.to_string())
        } else {
            create.content_value().get("creator").and_then(Value::as_str).map(str::to_owned)
        };
        let mut creators: Vec<String> = creator.into_iter().collect();
        if self.version.rules.authorization.additional_room_creators {
            if let Some(Value::Array(more)) = create.content_value().get("additional_creators") {
                creators.extend(more.iter().filter_map(Value::as_str).map(str::to_owned));
            }
        }
        creators
    }

    /// A user's power level; creators of v12 rooms outrank every number.
    pub fn user_power(&self, user_id: &str) -> i64 {
        let privileged = self.version.rules.authorization.explicitly_privilege_room_creators;
        if privileged && self.creators().iter().any(|c| c == user_id) {
            return i64::MAX;
        }
        match self.get("m.room.power_levels", "") {
            Some(pl) => {
                let content = pl.content_value();
                content
                    .get("users")
                    .and_then(|u| u.get(user_id))
                    .and_then(as_level)
                    .or_else(|| content.get("users_default").and_then(as_level))
                    .unwrap_or(0)
            }
            None if self.creators().first().is_some_and(|c| c == user_id) => 100,
            None => 0,
        }
    }

    /// The level an action (`invite`, `kick`, `ban`, `redact`) needs.
    pub fn action_power(&self, action: &str) -> i64 {
        let default = if action == "invite" { 0 } else { 50 };
        self.get("m.room.power_levels", "")
            .and_then(|pl| pl.content_value().get(action).and_then(as_level))
            .unwrap_or(default)
    }

    /// The level needed to send an event of a type.
    pub fn event_power(&self, kind: &str, is_state: bool) -> i64 {
        let Some(pl) = self.get("m.room.power_levels", "") else {
            return if is_state { 50 } else { 0 };
        };
        let content = pl.content_value();
        let default_field = if is_state { "state_default" } else { "events_default" };
        content
            .get("events")
            .and_then(|e| e.get(kind))
            .and_then(as_level)
            .or_else(|| content.get(default_field).and_then(as_level))
            .unwrap_or(if is_state { 50 } else { 0 })
    }

    /// Where a new event from this template goes: after the newest event, with the auth events
    /// the spec's selection algorithm picks from the current state.
    pub fn position_for(&self, template: &EventTemplate) -> Result<Position<'_>, Refusal> {
        let content = serde_json::value::to_raw_value(&template.content)
            .map_err(|e| Refusal::Build(BuildError::Invalid(e.to_string())))?;
        let kind = TimelineEventType::from(template.kind.as_str());
        let types = ruma_state_res::auth_types_for_event(
            &kind,
            &template.sender,
            template.state_key.as_deref(),
            &content,
            &self.version.rules.authorization,
        )
        .map_err(Refusal::Forbidden)?;
        let auth_events = types
            .iter()
            .filter_map(|(t, k): &(StateEventType, String)| self.get(&t.to_string(), k))
            .map(|e| e.event_id.clone())
            .collect();
        let (prev_events, depth) = match &self.head {
            Some((id, depth)) => (vec![id.clone()], depth + 1),
            None => (Vec::new(), 1),
        };
        Ok(Position { room_id: Some(&self.room_id), prev_events, auth_events, depth })
    }

    /// Builds, signs and authorizes a new event without applying it.
    pub fn prepare(
        &self,
        template: &EventTemplate,
        now: u64,
        key: &ServerKey,
        server_name: &str,
    ) -> Result<Pdu, Refusal> {
        let at = self.position_for(template)?;
        let pdu = pdu::build(&self.version, template, at, now, key, server_name).map_err(Refusal::Build)?;
        self.authorize(&pdu)?;
        Ok(pdu)
    }

    /// The authorization rules of the room version, against the current state.
    pub fn authorize(&self, pdu: &Pdu) -> Result<(), Refusal> {
        let rules = &self.version.rules.authorization;
        check_state_independent_auth_rules(rules, pdu, |id| self.by_id.get(id).map(|e| &**e))
            .map_err(Refusal::Forbidden)?;
        self.check_what_the_library_leaves(pdu)?;
        check_state_dependent_auth_rules(rules, pdu, |t: &StateEventType, k: &str| {
            self.get(&t.to_string(), k).map(|e| &**e)
        })
        .map_err(Refusal::Forbidden)
    }

    /// The rules ruma-state-res assumes its caller checked: the create event names a known room
    /// version; other events belong to this room, whose v12 ID names its create event; and a
    /// restricted join carries the signature of the authorising user's server.
    fn check_what_the_library_leaves(&self, pdu: &Pdu) -> Result<(), Refusal> {
        let forbid = |why: &str| Err(Refusal::Forbidden(why.to_owned()));
        if pdu.kind == TimelineEventType::RoomCreate {
            let version = pdu.content_value().get("room_version").cloned();
            let known = match &version {
                None => true, // version 1, which the library judges
                Some(Value::String(v)) => {
                    ruma_common::RoomVersionId::try_from(v.as_str()).is_ok_and(|id| id.rules().is_some())
                }
                Some(_) => false,
            };
            return if known { Ok(()) } else { forbid("m.room.create names an unknown room version") };
        }
        if pdu.room_id.as_deref() != Some(&*self.room_id) {
            return forbid("the event's room_id is not this room");
        }
        if self.version.room_id_from_create_event() {
            let create = self.get("m.room.create", "");
            let named = format!("${}", &self.room_id.as_str()[1..]);
            if create.map(|c| c.event_id.as_str()) != Some(named.as_str()) {
                return forbid("the room ID does not name the room's m.room.create event");
            }
        }
        let content = pdu.content_value();
        let authoriser = content.get("join_authorised_via_users_server").and_then(Value::as_str);
        let is_join = content.get("membership").and_then(Value::as_str) == Some("join");
        if let (true, Some(authoriser), true) = (pdu.kind == TimelineEventType::RoomMember, authoriser, is_join) {
            let server = UserId::parse(authoriser).ok().map(|u| u.server_name().to_string());
            let signed = serde_json::from_str::<Value>(&pdu.json)
                .ok()
                .and_then(|json| json.get("signatures").cloned())
                .and_then(|s| server.filter(|name| s.get(name.as_str()).is_some()));
            if signed.is_none() {
                return forbid("a restricted join must be signed by the authorising user's server");
            }
        }
        Ok(())
    }

    /// The check this server makes before it signs a join that names one of its users as the
    /// authoriser, which the authorization rules leave to the authorising server: the room's join
    /// rules must need the vouch and allow the joiner through a room it is in (`joined_rooms`).
    pub fn check_vouch(&self, pdu: &Pdu, server_name: &str, joined_rooms: &[String]) -> Result<(), Refusal> {
        let content = pdu.content_value();
        let Some(authoriser) = content.get("join_authorised_via_users_server") else { return Ok(()) };
        let is_join = content.get("membership").and_then(Value::as_str) == Some("join");
        let ours = authoriser
            .as_str()
            .and_then(|a| UserId::parse(a).ok())
            .is_some_and(|a| a.server_name().as_str() == server_name);
        if pdu.kind != TimelineEventType::RoomMember || !is_join || !ours {
            return Ok(());
        }
        let joiner = pdu.state_key.as_deref().unwrap_or_default();
        if joiner != pdu.sender.as_str() || !self.admits_through_allowed_room(joiner, joined_rooms) {
            return Err(Refusal::Forbidden(
                "this server vouches only for a restricted join that a room it is in allows".into(),
            ));
        }
        Ok(())
    }

    /// The member who vouches for a restricted join: a joined member who may invite (the most
    /// powerful), when the join rules let the user in through a room of `joined_rooms`. `None`
    /// when they do not, or when the user needs no vouch.
    pub fn restricted_join_authoriser(&self, user_id: &str, joined_rooms: &[String]) -> Option<String> {
        if !self.admits_through_allowed_room(user_id, joined_rooms) {
            return None;
        }
        let needed = self.action_power("invite");
        self.state_events()
            .filter(|e| e.kind == TimelineEventType::RoomMember && e.membership().as_deref() == Some("join"))
            .filter_map(|e| e.state_key.clone())
            .filter(|member| self.user_power(member) >= needed)
            .max_by_key(|member| self.user_power(member))
    }

    /// Whether the join rules are `restricted` (or `knock_restricted`) and let a user who is not
    /// yet joined or invited in through one of the rooms it is in.
    fn admits_through_allowed_room(&self, user_id: &str, joined_rooms: &[String]) -> bool {
        if matches!(self.membership(user_id).as_deref(), Some("join" | "invite")) {
            return false;
        }
        let Some(rules) = self.get("m.room.join_rules", "").map(|e| e.content_value()) else { return false };
        if !matches!(rules.get("join_rule").and_then(Value::as_str), Some("restricted" | "knock_restricted")) {
            return false;
        }
        rules.get("allow").and_then(Value::as_array).is_some_and(|allow| {
            allow.iter().any(|rule| {
                rule.get("type").and_then(Value::as_str) == Some("m.room_membership")
                    && rule.get("room_id").and_then(Value::as_str).is_some_and(|r| joined_rooms.iter().any(|j| j == r))
            })
        })
    }

    /// Makes an accepted event the newest of the room, and part of its state if it is state.
    pub fn apply(&mut self, pdu: Pdu) {
        self.head = Some((pdu.event_id.clone(), pdu.depth));
        if let Some(target) = pdu.redacts.as_ref().and_then(|id| self.by_id.get(id)).cloned() {
            self.insert_state(Rc::new(target.redacted(&self.version.rules)));
        }
        if pdu.state_key.is_some() {
            self.insert_state(Rc::new(pdu));
        }
    }

    fn insert_state(&mut self, pdu: Rc<Pdu>) {
        let Some(state_key) = pdu.state_key.clone() else { return };
        let key = (pdu.kind.to_string(), state_key);
        if let Some(old) = self.state.insert(key, pdu.clone()) {
            if old.event_id != pdu.event_id {
                self.by_id.remove(&old.event_id);
            }
        }
        self.by_id.insert(pdu.event_id.clone(), pdu);
    }
}

/// The create event of a new room, and the room's ID: the event's hash in v12, else `fresh_id`.
pub fn create_event(
    version: &RoomVersion,
    template: &EventTemplate,
    fresh_id: impl FnOnce() -> OwnedRoomId,
    now: u64,
    key: &ServerKey,
    server_name: &str,
) -> Result<(OwnedRoomId, Pdu), Refusal> {
    let given = (!version.room_id_from_create_event()).then(fresh_id);
    let at = Position { room_id: given.as_deref(), prev_events: Vec::new(), auth_events: Vec::new(), depth: 1 };
    let pdu = pdu::build(version, template, at, now, key, server_name).map_err(Refusal::Build)?;
    let room_id = match given {
        Some(id) => id,
        None => pdu::room_id_from_create_event(&pdu).map_err(|e| Refusal::Build(BuildError::Invalid(e)))?,
    };
    let room = RoomState::new(version.clone(), room_id.clone());
    room.authorize(&pdu)?;
    Ok((room_id, pdu))
}

pub fn as_level(v: &Value) -> Option<i64> {
    v.as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma_common::{CanonicalJsonObject, OwnedUserId};

    fn template(kind: &str, state_key: Option<&str>, sender: &str, content: serde_json::Value) -> EventTemplate {
        EventTemplate {
            kind: kind.into(),
            state_key: state_key.map(Into::into),
            sender: OwnedUserId::try_from(sender).unwrap(),
            content: serde_json::from_value::<CanonicalJsonObject>(content).unwrap(),
            redacts: None,
        }
    }

    #[test]
    fn a_v12_room_accepts_its_creator_and_refuses_a_stranger() {
        let key = ServerKey::from_seed("ed25519:t", &super::super::signing::new_seed().unwrap()).unwrap();
        let version = RoomVersion::parse("12").unwrap();
        let alice = "@alice:hs";
        let create = template("m.room.create", Some(""), alice, serde_json::json!({"room_version": "12"}));
        let (room_id, create) =
            create_event(&version, &create, || unreachable!("v12 IDs come from the hash"), 1, &key, "hs").unwrap();
        assert!(room_id.server_name().is_none(), "a v12 room ID is a bare hash");
        let mut room = RoomState::new(version, room_id);
        room.apply(create);
        let join = template("m.room.member", Some(alice), alice, serde_json::json!({"membership": "join"}));
        let join = room.prepare(&join, 2, &key, "hs").unwrap();
        room.apply(join);
        assert_eq!(room.membership(alice).as_deref(), Some("join"));
        assert_eq!(room.user_power(alice), i64::MAX);
        let msg = template("m.room.message", None, alice, serde_json::json!({"body": "hi"}));
        let msg = room.prepare(&msg, 3, &key, "hs").unwrap();
        assert_eq!(msg.depth, 3);
        room.apply(msg);
        let stranger = template("m.room.message", None, "@bob:hs", serde_json::json!({"body": "hi"}));
        assert!(matches!(room.prepare(&stranger, 4, &key, "hs"), Err(Refusal::Forbidden(_))));
    }

    #[test]
    fn the_server_vouches_only_for_a_join_that_an_allowed_room_admits() {
        let key = ServerKey::from_seed("ed25519:t", &super::super::signing::new_seed().unwrap()).unwrap();
        let version = RoomVersion::parse("11").unwrap();
        let (alice, bob) = ("@alice:hs", "@bob:hs");
        let create = template("m.room.create", Some(""), alice, serde_json::json!({"room_version": "11"}));
        let (room_id, create) = create_event(&version, &create, || "!r:hs".try_into().unwrap(), 1, &key, "hs").unwrap();
        let mut room = RoomState::new(version, room_id);
        room.apply(create);
        let rules = serde_json::json!({"join_rule": "restricted",
            "allow": [{"type": "m.room_membership", "room_id": "!space:hs"}]});
        for step in [
            template("m.room.member", Some(alice), alice, serde_json::json!({"membership": "join"})),
            template("m.room.join_rules", Some(""), alice, rules),
        ] {
            let pdu = room.prepare(&step, 2, &key, "hs").unwrap();
            room.apply(pdu);
        }
        let in_space = ["!space:hs".to_owned()];
        assert_eq!(room.restricted_join_authoriser(bob, &in_space).as_deref(), Some(alice));
        assert_eq!(room.restricted_join_authoriser(bob, &["!elsewhere:hs".to_owned()]), None);
        assert_eq!(room.restricted_join_authoriser(alice, &in_space), None, "a member needs no vouch");

        let content = serde_json::json!({"membership": "join", "join_authorised_via_users_server": alice});
        let join = template("m.room.member", Some(bob), bob, content);
        // The authorization rules accept any joined authoriser who may invite ...
        let pdu = room.prepare(&join, 3, &key, "hs").unwrap();
        // ... but this server signs the vouch only for a joiner that is in an allowed room.
        assert!(matches!(room.check_vouch(&pdu, "hs", &[]), Err(Refusal::Forbidden(_))));
        assert_eq!(room.check_vouch(&pdu, "hs", &in_space), Ok(()));
        // A remote server's vouch is that server's to check (its signature is required).
        assert_eq!(room.check_vouch(&pdu, "elsewhere", &[]), Ok(()));
    }

    #[test]
    fn the_rules_see_a_redacted_state_event_redacted() {
        // v10's redaction drops `invite` from power levels, so the invite level falls back to 0.
        let key = ServerKey::from_seed("ed25519:t", &super::super::signing::new_seed().unwrap()).unwrap();
        let version = RoomVersion::parse("10").unwrap();
        let (alice, bob, carol) = ("@alice:hs", "@bob:hs", "@carol:hs");
        let create =
            template("m.room.create", Some(""), alice, serde_json::json!({"creator": alice, "room_version": "10"}));
        let (room_id, create) = create_event(&version, &create, || "!r:hs".try_into().unwrap(), 1, &key, "hs").unwrap();
        let mut room = RoomState::new(version, room_id);
        room.apply(create);
        let power = serde_json::json!({"users": {alice: 100}, "invite": 100});
        let steps = [
            template("m.room.member", Some(alice), alice, serde_json::json!({"membership": "join"})),
            template("m.room.power_levels", Some(""), alice, power),
            template("m.room.join_rules", Some(""), alice, serde_json::json!({"join_rule": "public"})),
            template("m.room.member", Some(bob), bob, serde_json::json!({"membership": "join"})),
        ];
        for step in steps {
            let pdu = room.prepare(&step, 2, &key, "hs").unwrap();
            room.apply(pdu);
        }
        let invite = template("m.room.member", Some(carol), bob, serde_json::json!({"membership": "invite"}));
        assert!(room.prepare(&invite, 3, &key, "hs").is_err(), "the invite level is 100");
        let mut redaction = template("m.room.redaction", None, alice, serde_json::json!({}));
        redaction.redacts = Some(room.get("m.room.power_levels", "").unwrap().event_id.clone());
        let redaction = room.prepare(&redaction, 4, &key, "hs").unwrap();
        room.apply(redaction);
        assert!(room.prepare(&invite, 5, &key, "hs").is_ok(), "redacted, the invite level is the default 0");
    }
}
