//! Room upgrades: `POST /rooms/{roomId}/upgrade`.
//!
//! Following the spec's server behaviour (and Synapse where the spec leaves room): the requester
//! must be able to send `m.room.tombstone` in the old room. The new room is created in one commit
//! with `predecessor` in its create event, the old room's transferable state, its bans, its
//! power levels (adapted to the new version's creators) and its canonical alias. Then the old room
//! gets its tombstone, its local aliases and its directory listing move to the new room, and its
//! power levels are raised so that ordinary members can no longer speak or invite there.

use std::collections::BTreeMap;

use ruma_common::{OwnedUserId, RoomAliasId, RoomId, UserId};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::durable_objects::room::Facts;
use crate::error::{forbidden, internal, invalid_param, not_found, Result};
use crate::http::Reply;
use crate::room::client_format::redacted_content;
use crate::room::pdu::EventTemplate;
use crate::room::state::RoomState;
use crate::room::versions::RoomVersion;
use crate::storage::{aliases, current_state, profiles, rooms};

use super::alias::may_send_state;
use super::create_room::{create, create_as, default_power_levels, fresh_room_id, template, NewRoom};
use super::rooms::{room_id_param, rules_view, send_event};

/// The state an upgrade carries over, in the order the new room gets it (Synapse's list).
const TRANSFERRED: &[&str] = &[
    "m.room.join_rules",
    "m.room.name",
    "m.room.topic",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.avatar",
    "m.room.encryption",
    "m.room.server_acl",
];

/// What the new room gets where the old room has no such state: the `private_chat` preset.
const PRESET_DEFAULTS: &[(&str, &str, &str)] = &[
    ("m.room.join_rules", "join_rule", "invite"),
    ("m.room.history_visibility", "history_visibility", "shared"),
    ("m.room.guest_access", "guest_access", "can_join"),
];

/// An event's content.
type Content = Map<String, Value>;

/// The level the old room's `events_default` and `invite` are raised to, at least.
const LOCKED_LEVEL: i64 = 50;

#[derive(Debug, Deserialize)]
struct UpgradeBody {
    new_version: String,
    additional_creators: Option<Vec<String>>,
}

pub async fn upgrade_room(cx: Ctx) -> Result<Reply> {
    let old_id = room_id_param(&cx)?;
    let body: UpgradeBody = cx.req.json()?;
    let version = RoomVersion::parse(&body.new_version)?;
    let upgrader = cx.requester()?.user_id.clone();
    let row = rooms::get(&cx.db, old_id.as_str()).await?.ok_or_else(|| not_found("Room not found"))?;
    let (old, old_room) = load(&cx, &old_id, RoomVersion::parse(&row.room_version)?).await?;
    if old_room.membership(upgrader.as_str()).as_deref() != Some("join") {
        return Err(forbidden("You must be in the room to upgrade it"));
    }
    if !may_send_state(&old_room, &upgrader, "m.room.tombstone") {
        return Err(forbidden("You need the power to send m.room.tombstone to upgrade the room"));
    }
    let additional = additional_creators(&version, &upgrader, body.additional_creators.unwrap_or_default())?;
    let join = join_content(&cx, &upgrader).await?;
    let mut plan = plan(&old, &version, &upgrader, &additional, cx.config.server_name.as_str(), join)?;

    let tombstone = |new_id: &RoomId| {
        let content = json!({"body": "This room has been replaced", "replacement_room": new_id});
        template("m.room.tombstone", Some(""), &upgrader, content)
    };
    let hashed_id = version.room_id_from_create_event();
    let new_room = |creation_content| NewRoom {
        version: version.clone(),
        creator: upgrader.clone(),
        creation_content,
        events: plan.events,
        is_public: row.is_public(),
        alias: None,
    };
    let new_id = if hashed_id {
        // The new room's ID hashes its create event: the tombstone can only follow the room.
        let new_id = create(&cx, new_room(plan.creation_content)).await?;
        send_event(&cx, &old_id, tombstone(&new_id)?, None, Facts::default()).await?;
        new_id
    } else {
        // The tombstone goes first, so that `predecessor.event_id` names it: the old room's
        // last event, as in Synapse.
        let new_id = fresh_room_id(&cx);
        let sent = send_event(&cx, &old_id, tombstone(&new_id)?, None, Facts::default()).await?;
        if let Some(Value::Object(predecessor)) = plan.creation_content.get_mut("predecessor") {
            predecessor.insert("event_id".into(), sent.event_id.to_string().into());
        }
        create_as(&cx, new_room(plan.creation_content), new_id).await?
    };

    // The aliases and the directory listing move in one commit.
    let mut moves = vec![aliases::move_to(&cx.db, old_id.as_str(), new_id.as_str())?];
    if row.is_public() {
        moves.push(rooms::set_public(&cx.db, old_id.as_str(), false)?);
    }
    cx.db.batch(moves).await?;

    // The old room's own state follows if the upgrader may change it; the upgrade stands anyway.
    for (kind, content) in
        [("m.room.canonical_alias", plan.old_canonical_alias), ("m.room.power_levels", plan.old_power_levels)]
    {
        let Some(content) = content else { continue };
        let sent = match template(kind, Some(""), &upgrader, Value::Object(content)) {
            Ok(event) => send_event(&cx, &old_id, event, None, Facts::default()).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            let reason = e.matrix().map(|m| m.message.to_string()).unwrap_or_default();
            crate::log::error(&format!("upgrade of {old_id}: not updating its {kind}: {reason}"));
        }
    }
    Reply::json(&json!({"replacement_room": new_id}))
}

/// The old room as an upgrade reads it.
#[derive(Debug, Clone)]
struct OldRoom {
    room_id: String,
    version: RoomVersion,
    creators: Vec<String>,
    /// The content of each current state event, as clients see it (redactions applied).
    state: BTreeMap<(String, String), Map<String, Value>>,
}

impl OldRoom {
    fn content(&self, kind: &str, state_key: &str) -> Option<&Map<String, Value>> {
        self.state.get(&(kind.to_owned(), state_key.to_owned()))
    }
}

/// Reads the old room's current state: as content for copying, and as the writer would judge
/// the upgrader's power.
async fn load(cx: &Ctx, room_id: &RoomId, version: RoomVersion) -> Result<(OldRoom, RoomState)> {
    let stored_state = current_state::room_state(&cx.db, room_id.as_str()).await?;
    let room = rules_view(version.clone(), room_id, &stored_state)?;
    let mut state = BTreeMap::new();
    for stored in stored_state {
        let pdu: Value = serde_json::from_str(&stored.json).map_err(|e| internal("stored event", e))?;
        let mut content = pdu.get("content").cloned().unwrap_or_else(|| json!({}));
        if stored.redaction_json.is_some() {
            content = redacted_content(content, &stored.kind, &version);
        }
        if let Value::Object(content) = content {
            state.insert((stored.kind.clone(), stored.state_key.clone().unwrap_or_default()), content);
        }
    }
    let old = OldRoom { room_id: room_id.to_string(), version, creators: room.creators(), state };
    Ok((old, room))
}

/// The upgrader's join, with their profile as in `createRoom`.
async fn join_content(cx: &Ctx, user: &UserId) -> Result<Value> {
    let mut join = json!({"membership": "join"});
    for field in ["displayname", "avatar_url"] {
        if let Some(stored) = profiles::get(&cx.db, user.as_str(), field).await? {
            if let Ok(value) = serde_json::from_str::<Value>(&stored.value) {
                join[field] = value;
            }
        }
    }
    Ok(join)
}

/// `additional_creators` where the new version has them (ignored elsewhere, as the spec says):
/// user IDs, without duplicates or the upgrader.
fn additional_creators(version: &RoomVersion, upgrader: &UserId, given: Vec<String>) -> Result<Vec<OwnedUserId>> {
    if !version.rules.authorization.additional_room_creators {
        return Ok(Vec::new());
    }
    let mut creators: Vec<OwnedUserId> = Vec::new();
    for raw in given {
        let id = UserId::parse(raw.as_str())
            .map_err(|_| invalid_param(format!("{raw:?} in additional_creators is not a user ID")))?;
        if id != upgrader && !creators.contains(&id) {
            creators.push(id);
        }
    }
    Ok(creators)
}

/// What an upgrade sends: the new room's create content and initial events, and the new
/// contents of the old room's canonical alias and power levels, where they change.
#[derive(Debug)]
struct Plan {
    creation_content: Map<String, Value>,
    events: Vec<EventTemplate>,
    old_canonical_alias: Option<Map<String, Value>>,
    old_power_levels: Option<Map<String, Value>>,
}

fn plan(
    old: &OldRoom,
    version: &RoomVersion,
    upgrader: &UserId,
    additional: &[OwnedUserId],
    server_name: &str,
    join: Value,
) -> Result<Plan> {
    let additional = if version.rules.authorization.additional_room_creators { additional } else { &[] };
    let mut creation_content = Map::new();
    let mut predecessor = Map::new();
    predecessor.insert("room_id".into(), old.room_id.clone().into());
    // `event_id` names the tombstone, added once it is sent; the spec lets rooms from v12 on
    // leave it out, as their ID hashes the create event so the tombstone must come after.
    creation_content.insert("predecessor".into(), Value::Object(predecessor));
    let old_create = old.content("m.room.create", "");
    if let Some(kind) = old_create.and_then(|c| c.get("type")) {
        creation_content.insert("type".into(), kind.clone());
    }
    if old_create.and_then(|c| c.get("m.federate")) == Some(&Value::Bool(false)) {
        creation_content.insert("m.federate".into(), false.into());
    }
    if !additional.is_empty() {
        let ids = additional.iter().map(|u| Value::String(u.to_string())).collect();
        creation_content.insert("additional_creators".into(), Value::Array(ids));
    }

    let new_creators: Vec<&UserId> = std::iter::once(upgrader).chain(additional.iter().map(|u| &**u)).collect();
    let (power_levels, final_power_levels) = new_power_levels(old, version, &new_creators);
    let upgrader_level = if version.rules.authorization.explicitly_privilege_room_creators {
        i64::MAX
    } else {
        user_level(&power_levels, upgrader.as_str())
    };

    let mut events = vec![
        template("m.room.member", Some(upgrader.as_str()), upgrader, join)?,
        template("m.room.power_levels", Some(""), upgrader, Value::Object(power_levels.clone()))?,
    ];
    for kind in TRANSFERRED {
        match old.content(kind, "") {
            Some(content) if !content.is_empty() => {
                events.push(template(kind, Some(""), upgrader, Value::Object(content.clone()))?);
            }
            _ => {
                if let Some((_, field, value)) = PRESET_DEFAULTS.iter().find(|(k, _, _)| k == kind) {
                    events.push(template(kind, Some(""), upgrader, json!({ *field: value }))?);
                }
            }
        }
    }
    if creation_content.get("type").and_then(Value::as_str) == Some("m.space") {
        for ((kind, state_key), content) in &old.state {
            if kind == "m.space.child" && !content.is_empty() {
                events.push(template(kind, Some(state_key), upgrader, Value::Object(content.clone()))?);
            }
        }
    }
    let (new_alias, old_canonical_alias) =
        split_canonical_alias(old.content("m.room.canonical_alias", ""), server_name);
    if let Some(content) = new_alias {
        events.push(template("m.room.canonical_alias", Some(""), upgrader, Value::Object(content))?);
    }
    // Bans carry over, as in Synapse, wherever the upgrader may ban the user in the new room.
    for ((kind, target), content) in &old.state {
        if kind != "m.room.member" || content.get("membership").and_then(Value::as_str) != Some("ban") {
            continue;
        }
        let Ok(target_id) = UserId::parse(target.as_str()) else { continue };
        if new_creators.contains(&&*target_id) || user_level(&power_levels, target) >= upgrader_level {
            continue;
        }
        let mut ban = json!({"membership": "ban"});
        if let Some(reason) = content.get("reason").filter(|r| r.is_string()) {
            ban["reason"] = reason.clone();
        }
        events.push(template("m.room.member", Some(target), upgrader, ban)?);
    }
    if let Some(final_power_levels) = final_power_levels {
        events.push(template("m.room.power_levels", Some(""), upgrader, Value::Object(final_power_levels))?);
    }
    Ok(Plan { creation_content, events, old_canonical_alias, old_power_levels: locked_power_levels(old) })
}

/// The new room's power levels: the old room's, without the new creators where the new version
/// ranks creators above all levels, and with the old creators at 100 where it no longer does.
/// When the upgrader's level is below what copying the state needs, the first power levels
/// raise it and a second, final event (returned apart) restores it, as Synapse does.
fn new_power_levels(
    old: &OldRoom,
    version: &RoomVersion,
    new_creators: &[&UserId],
) -> (Map<String, Value>, Option<Map<String, Value>>) {
    let upgrader = new_creators[0];
    let mut levels = match old.content("m.room.power_levels", "") {
        Some(content) => content.clone(),
        None => default_power_levels(version, upgrader, &[]),
    };
    if !levels.get("users").is_some_and(Value::is_object) {
        levels.insert("users".into(), json!({}));
    }
    let privileged = version.rules.authorization.explicitly_privilege_room_creators;
    if let Some(Value::Object(users)) = levels.get_mut("users") {
        if privileged {
            for creator in new_creators {
                users.remove(creator.as_str());
            }
        } else if old.version.rules.authorization.explicitly_privilege_room_creators {
            for creator in &old.creators {
                let level = users.get(creator).and_then(Value::as_i64).unwrap_or(0).max(100);
                users.insert(creator.clone(), level.into());
            }
        }
    }
    if privileged {
        return (levels, None);
    }
    let level = |key: &str, default: i64| levels.get(key).and_then(Value::as_i64).unwrap_or(default);
    let event_levels =
        levels.get("events").and_then(Value::as_object).map(|e| e.values().filter_map(Value::as_i64).max());
    let needed = level("state_default", 50).max(level("ban", 50)).max(event_levels.flatten().unwrap_or(0));
    if user_level(&levels, upgrader.as_str()) >= needed {
        return (levels, None);
    }
    let mut raised = levels.clone();
    if let Some(Value::Object(users)) = raised.get_mut("users") {
        users.insert(upgrader.to_string(), needed.into());
    }
    (raised, Some(levels))
}

/// A user's level under power-level content (creators aside).
fn user_level(levels: &Map<String, Value>, user: &str) -> i64 {
    levels
        .get("users")
        .and_then(|u| u.get(user))
        .and_then(Value::as_i64)
        .or_else(|| levels.get("users_default").and_then(Value::as_i64))
        .unwrap_or(0)
}

/// The old room's canonical alias split: the local aliases go to the new room, the rest stays.
/// Returns the new room's content (if it names any alias) and the old room's new content (if
/// it changes).
fn split_canonical_alias(content: Option<&Content>, server_name: &str) -> (Option<Content>, Option<Content>) {
    let Some(content) = content else { return (None, None) };
    let is_local = |alias: &Value| {
        alias.as_str().and_then(|a| RoomAliasId::parse(a).ok()).is_some_and(|a| a.server_name().as_str() == server_name)
    };
    let mut moved = Map::new();
    let mut kept = content.clone();
    if let Some(alias) = content.get("alias").filter(|a| is_local(a)) {
        moved.insert("alias".into(), alias.clone());
        kept.remove("alias");
    }
    if let Some(Value::Array(alt)) = content.get("alt_aliases") {
        let (local, other): (Vec<Value>, Vec<Value>) = alt.iter().cloned().partition(|a| is_local(a));
        if !local.is_empty() {
            moved.insert("alt_aliases".into(), Value::Array(local));
            if other.is_empty() {
                kept.remove("alt_aliases");
            } else {
                kept.insert("alt_aliases".into(), Value::Array(other));
            }
        }
    }
    if moved.is_empty() {
        return (None, None);
    }
    (Some(moved), Some(kept))
}

/// The old room's power levels with `events_default` and `invite` raised to at least
/// `max(users_default + 1, 50)`, as the spec suggests; `None` when they are already there.
fn locked_power_levels(old: &OldRoom) -> Option<Map<String, Value>> {
    let mut levels = old.content("m.room.power_levels", "")?.clone();
    let users_default = levels.get("users_default").and_then(Value::as_i64).unwrap_or(0);
    let locked = users_default.saturating_add(1).max(LOCKED_LEVEL);
    let mut changed = false;
    for key in ["events_default", "invite"] {
        if levels.get(key).and_then(Value::as_i64).unwrap_or(0) < locked {
            levels.insert(key.into(), locked.into());
            changed = true;
        }
    }
    changed.then_some(levels)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "@alice:hs";

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    fn old_room(version: &str, state: Vec<(&str, &str, Value)>) -> OldRoom {
        OldRoom {
            room_id: "!old:hs".into(),
            version: RoomVersion::parse(version).unwrap(),
            creators: vec![ALICE.into()],
            state: state.into_iter().map(|(k, s, c)| ((k.to_owned(), s.to_owned()), object(c))).collect(),
        }
    }

    fn user(id: &str) -> OwnedUserId {
        UserId::parse(id).unwrap()
    }

    fn kinds(plan: &Plan) -> Vec<(String, Option<String>)> {
        plan.events.iter().map(|e| (e.kind.clone(), e.state_key.clone())).collect()
    }

    fn content(event: &EventTemplate) -> Value {
        serde_json::to_value(&event.content).unwrap()
    }

    fn typical(version: &str, power: Value) -> OldRoom {
        old_room(
            version,
            vec![
                ("m.room.create", "", json!({"room_version": version, "type": "m.space"})),
                ("m.room.power_levels", "", power),
                ("m.room.name", "", json!({"name": "Old"})),
                ("m.room.topic", "", json!({"topic": "T"})),
                ("m.room.join_rules", "", json!({"join_rule": "public"})),
                ("m.room.canonical_alias", "", json!({"alias": "#a:hs", "alt_aliases": ["#b:hs", "#c:elsewhere"]})),
                ("m.room.member", "@bad:hs", json!({"membership": "ban", "reason": "spam"})),
                ("m.room.member", "@bob:hs", json!({"membership": "join"})),
                ("m.space.child", "!child:hs", json!({"via": ["hs"]})),
                ("m.space.child", "!gone:hs", json!({})),
            ],
        )
    }

    #[test]
    fn v11_to_v12_drops_creators_from_users_and_the_predecessor_event() {
        let old = typical("11", json!({"users": {ALICE: 100, "@bob:hs": 100, "@carol:hs": 50}, "events_default": 0}));
        let v12 = RoomVersion::parse("12").unwrap();
        let bob = user("@bob:hs");
        let plan = plan(&old, &v12, &user(ALICE), &[bob], "hs", json!({"membership": "join"})).unwrap();
        assert_eq!(
            Value::Object(plan.creation_content.clone()),
            json!({"predecessor": {"room_id": "!old:hs"}, "type": "m.space", "additional_creators": ["@bob:hs"]})
        );
        let power = content(&plan.events[1]);
        assert_eq!(power["users"], json!({"@carol:hs": 50}));
        assert_eq!(
            kinds(&plan),
            [
                ("m.room.member", Some(ALICE)),
                ("m.room.power_levels", Some("")),
                ("m.room.join_rules", Some("")),
                ("m.room.name", Some("")),
                ("m.room.topic", Some("")),
                ("m.room.history_visibility", Some("")),
                ("m.room.guest_access", Some("")),
                ("m.space.child", Some("!child:hs")),
                ("m.room.canonical_alias", Some("")),
                ("m.room.member", Some("@bad:hs")),
            ]
            .map(|(k, s)| (k.to_owned(), s.map(str::to_owned)))
        );
        // Missing state comes from the private_chat preset.
        assert_eq!(content(&plan.events[5]), json!({"history_visibility": "shared"}));
        assert_eq!(content(&plan.events[8]), json!({"alias": "#a:hs", "alt_aliases": ["#b:hs"]}));
        assert_eq!(content(&plan.events[9]), json!({"membership": "ban", "reason": "spam"}));
        assert_eq!(plan.old_canonical_alias.map(Value::Object), Some(json!({"alt_aliases": ["#c:elsewhere"]})));
        let locked = Value::Object(plan.old_power_levels.unwrap());
        assert_eq!((locked["events_default"].clone(), locked["invite"].clone()), (json!(50), json!(50)));
    }

    #[test]
    fn v10_to_v11_raises_a_weak_upgrader_for_the_copy() {
        // The upgrader may send the tombstone (level 60) but not the server ACL (level 100).
        let power = json!({"users": {ALICE: 60, "@bad:hs": 70}, "events": {"m.room.tombstone": 60, "m.room.server_acl": 100},
                           "users_default": 60, "invite": 0});
        let mut old = typical("10", power);
        old.state.insert(("m.room.server_acl".into(), "".into()), object(json!({"allow": ["*"]})));
        let v11 = RoomVersion::parse("11").unwrap();
        let plan = plan(&old, &v11, &user(ALICE), &[], "hs", json!({"membership": "join"})).unwrap();
        assert_eq!(plan.creation_content["predecessor"], json!({"room_id": "!old:hs"}));
        let first = content(&plan.events[1]);
        assert_eq!(first["users"][ALICE], 100);
        let last = plan.events.last().unwrap();
        assert_eq!(last.kind, "m.room.power_levels");
        assert_eq!(content(last)["users"][ALICE], 60);
        // Raised to 100 for the copy, the upgrader outranks @bad (70): the ban carries over.
        assert!(kinds(&plan).contains(&("m.room.member".into(), Some("@bad:hs".into()))));
        // users_default 60: the old room locks at 61.
        let locked = Value::Object(plan.old_power_levels.unwrap());
        assert_eq!((locked["events_default"].clone(), locked["invite"].clone()), (json!(61), json!(61)));
    }

    #[test]
    fn v12_to_v11_gives_the_old_creators_level_100() {
        let old = typical("12", json!({"users": {"@bob:hs": 50}, "events_default": 60, "invite": 70}));
        let v11 = RoomVersion::parse("11").unwrap();
        let plan = plan(&old, &v11, &user(ALICE), &[user("@ignored:hs")], "hs", json!({"membership": "join"})).unwrap();
        assert!(!plan.creation_content.contains_key("additional_creators"));
        assert_eq!(content(&plan.events[1])["users"], json!({"@bob:hs": 50, ALICE: 100}));
        assert!(plan.old_power_levels.is_none(), "already locked");
    }

    #[test]
    fn additional_creators_are_checked_and_deduplicated_only_where_they_exist() {
        let v12 = RoomVersion::parse("12").unwrap();
        let got = additional_creators(&v12, &user(ALICE), vec!["@b:hs".into(), ALICE.into(), "@b:hs".into()]).unwrap();
        assert_eq!(got, vec![user("@b:hs")]);
        let e = additional_creators(&v12, &user(ALICE), vec!["nobody".into()]).unwrap_err();
        assert_eq!(e.matrix().unwrap().kind, crate::error::ErrorKind::InvalidParam);
        let v11 = RoomVersion::parse("11").unwrap();
        assert!(additional_creators(&v11, &user(ALICE), vec!["nobody".into()]).unwrap().is_empty());
    }

    #[test]
    fn canonical_alias_split() {
        let only_remote = object(json!({"alias": "#x:elsewhere"}));
        assert_eq!(split_canonical_alias(Some(&only_remote), "hs"), (None, None));
        let local = object(json!({"alias": "#x:hs"}));
        assert_eq!(split_canonical_alias(Some(&local), "hs"), (Some(local.clone()), Some(Map::new())));
        assert_eq!(split_canonical_alias(None, "hs"), (None, None));
    }
}
