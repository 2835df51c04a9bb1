//! Push-rule evaluation: what one room event means for each member's notifications.
//!
//! The room's writer takes a [`RoomSnapshot`] of what the rules need (members, display names,
//! power levels) after a commit, and each member's ruleset decides through `ruma_common::push`.
//! Everything here is pure, so the spec's behaviour is tested natively.

use std::collections::BTreeMap;

use js_int::{Int, UInt};
use ruma_common::power_levels::NotificationPowerLevels;
use ruma_common::push::{Action, PushConditionPowerLevelsCtx, PushConditionRoomCtx};
use ruma_common::room_version_rules::{AuthorizationRules, RoomPowerLevelsRules};
use ruma_common::serde::Raw;
use ruma_common::{OwnedRoomId, OwnedUserId, UserId};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::notification::EventNotification;
use super::rules::{self, Recipients};
use crate::room::pdu::Pdu;
use crate::room::state::{as_level, RoomState};

/// What the push rules of a room's members see of the room, taken once per commit.
#[derive(Debug, Clone)]
pub struct RoomSnapshot {
    pub room_id: OwnedRoomId,
    /// The joined members: whom an event may notify, and the rules' `member_count`.
    pub joined: Vec<OwnedUserId>,
    /// Display names of the members that have one.
    pub display_names: BTreeMap<OwnedUserId, String>,
    /// The power level of each sender of the evaluated events.
    pub sender_powers: BTreeMap<OwnedUserId, i64>,
    /// `notifications.room` of the power levels: what `@room` needs.
    pub room_notification_power: i64,
    pub authorization: AuthorizationRules,
    pub creators: Vec<OwnedUserId>,
    pub room_name: Option<String>,
    pub canonical_alias: Option<String>,
}

/// One committed event as the rules read it.
#[derive(Debug, Clone)]
pub struct PushEvent {
    pub event_id: String,
    pub stream_ordering: u64,
    pub kind: String,
    pub sender: OwnedUserId,
    pub state_key: Option<String>,
    /// The event's JSON: the PDU, whose fields the rules' conditions match.
    pub json: String,
    /// Its content, parsed once.
    pub content: Value,
}

/// What one user's rules decided for one event, when they notify or highlight.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub user_id: OwnedUserId,
    pub notify: bool,
    pub highlight: bool,
    pub actions: Vec<Value>,
    /// The `set_tweak` actions as `{tweak: value}`.
    pub tweaks: Map<String, Value>,
}

impl PushEvent {
    pub fn of(pdu: &Pdu, stream_ordering: u64) -> Self {
        Self {
            event_id: pdu.event_id.to_string(),
            stream_ordering,
            kind: pdu.kind.to_string(),
            sender: pdu.sender.clone(),
            state_key: pdu.state_key.clone(),
            json: pdu.json.clone(),
            content: pdu.content_value(),
        }
    }

    /// The thread the event belongs to for unread counts: its thread root, or `main`.
    pub fn thread_id(&self) -> String {
        let relation = &self.content["m.relates_to"];
        match (relation["rel_type"].as_str(), relation["event_id"].as_str()) {
            (Some("m.thread"), Some(root)) => root.to_owned(),
            _ => "main".to_owned(),
        }
    }

    /// For a member event: its `membership`.
    fn membership(&self) -> Option<&str> {
        (self.kind == "m.room.member").then(|| self.content["membership"].as_str()).flatten()
    }
}

impl RoomSnapshot {
    /// What the rules need of `room`'s state, for events from `senders`.
    pub fn of(room: &RoomState, senders: &[&UserId]) -> Self {
        let mut joined = Vec::new();
        let mut display_names = BTreeMap::new();
        for member in room.state_events().filter(|e| e.kind.to_string() == "m.room.member") {
            let Some(user) = member.state_key.as_deref().and_then(|k| OwnedUserId::try_from(k).ok()) else { continue };
            let content = member.content_value();
            if let Some(name) = content.get("displayname").and_then(Value::as_str) {
                display_names.insert(user.clone(), name.to_owned());
            }
            if content.get("membership").and_then(Value::as_str) == Some("join") {
                joined.push(user);
            }
        }
        let text = |kind: &str, field: &str| {
            room.get(kind, "").and_then(|e| e.content_value().get(field).and_then(Value::as_str).map(str::to_owned))
        };
        let room_notification_power = room
            .get("m.room.power_levels", "")
            .and_then(|pl| pl.content_value().pointer("/notifications/room").and_then(as_level))
            .unwrap_or(50);
        Self {
            room_id: room.room_id.clone(),
            joined,
            display_names,
            sender_powers: senders.iter().map(|s| ((*s).to_owned(), room.user_power(s.as_str()))).collect(),
            room_notification_power,
            authorization: room.version.rules.authorization.clone(),
            creators: room.creators().iter().filter_map(|c| OwnedUserId::try_from(c.as_str()).ok()).collect(),
            room_name: text("m.room.name", "name").filter(|n| !n.is_empty()),
            canonical_alias: text("m.room.canonical_alias", "alias"),
        }
    }

    /// The users `event` is evaluated for: the joined members and, for an invite, the invitee;
    /// never the sender.
    pub fn recipients(&self, event: &PushEvent) -> Vec<OwnedUserId> {
        let mut users = self.joined.clone();
        if let Some(invitee) = event.state_key.as_deref().filter(|_| event.membership() == Some("invite")) {
            if let Ok(invitee) = OwnedUserId::try_from(invitee) {
                users.push(invitee);
            }
        }
        users.sort();
        users.dedup();
        users.retain(|u| *u != event.sender);
        users
    }

    fn context(&self, user: &OwnedUserId, sender: &OwnedUserId) -> PushConditionRoomCtx {
        let member_count = UInt::try_from(self.joined.len() as u64).unwrap_or(UInt::MAX);
        let display_name = self.display_names.get(user).cloned().unwrap_or_else(|| user.localpart().to_owned());
        let power = self.sender_powers.get(sender).copied().unwrap_or(0);
        let mut notifications = NotificationPowerLevels::new();
        notifications.room = level(self.room_notification_power);
        let users = BTreeMap::from([(sender.clone(), level(power))]);
        let rules = RoomPowerLevelsRules::new(&self.authorization, self.creators.iter().cloned());
        let power_levels = PushConditionPowerLevelsCtx::new(users, Int::from(0u8), notifications, rules);
        PushConditionRoomCtx::new(self.room_id.clone(), member_count, user.clone(), display_name)
            .with_power_levels(power_levels)
    }
}

fn level(power: i64) -> Int {
    Int::new_saturating(power)
}

/// Evaluates `event` against each recipient's ruleset (the server defaults for one without),
/// skipping recipients who ignore its sender. Only decisions that notify or highlight come back.
///
/// Members whose rules differ only by their own user ID get the same outcome when that ID is
/// nowhere in the event: a condition naming the ID (a mention, an invite's `state_key`, a
/// pattern) can hold only for an event that contains it. So the rules are evaluated once per
/// distinct ruleset, and alone only for the members the event names: in a big room almost
/// everyone shares the server defaults, and one evaluation serves them all.
pub async fn evaluate(snapshot: &RoomSnapshot, event: &PushEvent, recipients: &Recipients) -> Vec<Decision> {
    let Ok(raw) = RawValue::from_string(event.json.clone()) else { return Vec::new() };
    let raw: Raw<Value> = Raw::from_json(raw);
    let text = event.json.to_lowercase();
    let mut shared: BTreeMap<String, Option<Outcome>> = BTreeMap::new();
    let mut decisions = Vec::new();
    for user in snapshot.recipients(event) {
        if recipients.ignored.get(&user).is_some_and(|ignored| ignored.contains(event.sender.as_str())) {
            continue;
        }
        let stored = recipients.rules.get(&user).map(String::as_str);
        let key = (!names(&text, &user)).then(|| group_key(snapshot, &user, stored));
        let outcome = match key.as_ref().and_then(|k| shared.get(k)) {
            Some(outcome) => outcome.clone(),
            None => {
                let outcome = decide(snapshot, event, &raw, &user, stored).await;
                if let Some(key) = key {
                    shared.insert(key, outcome.clone());
                }
                outcome
            }
        };
        if let Some(Outcome { notify, highlight, actions, tweaks }) = outcome {
            decisions.push(Decision { user_id: user, notify, highlight, actions, tweaks });
        }
    }
    decisions
}

/// A decision less whom it is for.
#[derive(Clone)]
struct Outcome {
    notify: bool,
    highlight: bool,
    actions: Vec<Value>,
    tweaks: Map<String, Value>,
}

/// What `user`'s rules (kept as `stored`, or the defaults) decide for `event`, if anything.
async fn decide(
    snapshot: &RoomSnapshot,
    event: &PushEvent,
    raw: &Raw<Value>,
    user: &OwnedUserId,
    stored: Option<&str>,
) -> Option<Outcome> {
    let ruleset = rules::from_content(user, stored);
    let actions = ruleset.get_actions(raw, &snapshot.context(user, &event.sender)).await;
    let notify = actions.iter().any(Action::should_notify);
    let highlight = actions.iter().any(Action::is_highlight);
    if !notify && !highlight {
        return None;
    }
    let actions: Vec<Value> = actions.iter().filter_map(|a| serde_json::to_value(a).ok()).collect();
    let tweaks = tweaks(&actions);
    Some(Outcome { notify, highlight, actions, tweaks })
}

/// Whether the event (its JSON lowercased, as conditions compare) may name `user`. An ID with a
/// character that JSON escapes counts as named, as its text could hide in an escape.
fn names(lowercase_event: &str, user: &UserId) -> bool {
    let id = user.as_str();
    id.contains(['"', '\\']) || id.chars().any(char::is_control) || lowercase_event.contains(&id.to_lowercase())
}

/// What makes two members' outcomes the same when the event names neither: their stored rules
/// with their own ID taken out, and their display name where a rule reads it.
fn group_key(snapshot: &RoomSnapshot, user: &OwnedUserId, stored: Option<&str>) -> String {
    let Some(stored) = stored else { return String::new() };
    let mut key = stored.replace(user.as_str(), "\0");
    if stored.contains("contains_display_name") {
        key.push('\0');
        key.push_str(snapshot.display_names.get(user).map_or(user.localpart(), String::as_str));
    }
    key
}

/// The tweaks that `set_tweak` actions set; `highlight` without a value is `true`.
fn tweaks(actions: &[Value]) -> Map<String, Value> {
    let mut tweaks = Map::new();
    for action in actions {
        let Some(name) = action.get("set_tweak").and_then(Value::as_str) else { continue };
        let value = action.get("value").cloned().unwrap_or(Value::Bool(name == "highlight"));
        tweaks.insert(name.to_owned(), value);
    }
    tweaks
}

/// What the user's push queue gets for a decision that notifies, as Synapse fills a
/// notification: priority high for encrypted events and for those that highlight or sound.
pub fn notification(snapshot: &RoomSnapshot, event: &PushEvent, decision: &Decision) -> EventNotification {
    let loud = decision.tweaks.get("highlight").is_some_and(|h| h == &Value::Bool(true))
        || decision.tweaks.contains_key("sound");
    let high = event.kind == "m.room.encrypted" || loud;
    EventNotification {
        event_id: event.event_id.clone(),
        room_id: snapshot.room_id.to_string(),
        event_stream: event.stream_ordering,
        kind: event.kind.clone(),
        sender: event.sender.to_string(),
        sender_display_name: snapshot.display_names.get(&event.sender).cloned(),
        room_name: snapshot.room_name.clone(),
        room_alias: snapshot.canonical_alias.clone(),
        user_is_target: event.state_key.as_deref() == Some(decision.user_id.as_str()),
        membership: event.membership().map(str::to_owned),
        content: event.content.clone(),
        prio: if high { "high" } else { "low" }.to_owned(),
        tweaks: decision.tweaks.clone(),
    }
}

#[cfg(test)]
mod tests {
    //! Evaluation vectors: one event, one member's rules, the spec's expected outcome.

    use ruma_common::push::{
        Action, NewConditionalPushRule, NewPatternedPushRule, NewPushRule, PushCondition, Ruleset,
    };
    use ruma_common::room_version_rules::RoomVersionRules;
    use serde_json::json;

    use super::*;
    use std::collections::BTreeSet;

    const ALICE: &str = "@alice:hs";
    const BOB: &str = "@bob:hs";

    fn user(id: &str) -> OwnedUserId {
        OwnedUserId::try_from(id).unwrap()
    }

    /// A room of `members` joined users (alice, bob, then others), bob named "Bobby".
    fn room(members: usize) -> RoomSnapshot {
        let mut joined = vec![user(ALICE), user(BOB)];
        joined.extend((2..members).map(|i| user(&format!("@m{i}:hs"))));
        RoomSnapshot {
            room_id: "!r:hs".try_into().unwrap(),
            joined,
            display_names: BTreeMap::from([(user(BOB), "Bobby".to_owned())]),
            sender_powers: BTreeMap::from([(user(ALICE), 100), (user("@m2:hs"), 0)]),
            room_notification_power: 50,
            authorization: RoomVersionRules::V11.authorization,
            creators: Vec::new(),
            room_name: Some("Room".into()),
            canonical_alias: None,
        }
    }

    fn event(kind: &str, sender: &str, state_key: Option<&str>, content: Value) -> PushEvent {
        let mut json = json!({"type": kind, "sender": sender, "room_id": "!r:hs", "content": content,
            "origin_server_ts": 1, "depth": 3});
        if let Some(key) = state_key {
            json["state_key"] = json!(key);
        }
        PushEvent {
            event_id: "$e".into(),
            stream_ordering: 7,
            kind: kind.into(),
            sender: user(sender),
            state_key: state_key.map(str::to_owned),
            json: json.to_string(),
            content: json["content"].clone(),
        }
    }

    fn text(body: &str) -> Value {
        json!({"msgtype": "m.text", "body": body})
    }

    /// What bob's rules decide: `None` when nothing, else (notify, highlight).
    fn decide(snapshot: &RoomSnapshot, event: &PushEvent, ruleset: Option<Ruleset>) -> Option<(bool, bool)> {
        let rules = ruleset.into_iter().map(|r| (user(BOB), rules::to_content(&r).unwrap())).collect();
        let recipients = Recipients { rules, ignored: BTreeMap::new() };
        let decisions = futures::executor::block_on(evaluate(snapshot, event, &recipients));
        decisions.into_iter().find(|d| d.user_id == BOB).map(|d| (d.notify, d.highlight))
    }

    fn nobody() -> Recipients {
        Recipients { rules: BTreeMap::new(), ignored: BTreeMap::new() }
    }

    fn defaults() -> Ruleset {
        Ruleset::server_default(&user(BOB))
    }

    #[test]
    fn vectors_with_the_default_rules() {
        let group = room(5);
        let one_to_one = room(2);
        type Case<'a> = (&'a str, &'a RoomSnapshot, PushEvent, Option<(bool, bool)>);
        let cases: Vec<Case<'_>> = vec![
            (
                "a message in a group notifies",
                &group,
                event("m.room.message", ALICE, None, text("hi")),
                Some((true, false)),
            ),
            (
                "a message in a one-to-one room notifies",
                &one_to_one,
                event("m.room.message", ALICE, None, text("hi")),
                Some((true, false)),
            ),
            (
                "a user mention highlights",
                &group,
                event(
                    "m.room.message",
                    ALICE,
                    None,
                    json!({"msgtype": "m.text", "body": "hey", "m.mentions": {"user_ids": [BOB]}}),
                ),
                Some((true, true)),
            ),
            (
                "a mention of someone else does not highlight",
                &group,
                event(
                    "m.room.message",
                    ALICE,
                    None,
                    json!({"msgtype": "m.text", "body": "hey", "m.mentions": {"user_ids": ["@m2:hs"]}}),
                ),
                Some((true, false)),
            ),
            (
                "a room mention by a moderator highlights",
                &group,
                event(
                    "m.room.message",
                    ALICE,
                    None,
                    json!({"msgtype": "m.text", "body": "all", "m.mentions": {"room": true}}),
                ),
                Some((true, true)),
            ),
            (
                "a room mention by someone without the power does not highlight",
                &group,
                event(
                    "m.room.message",
                    "@m2:hs",
                    None,
                    json!({"msgtype": "m.text", "body": "all", "m.mentions": {"room": true}}),
                ),
                Some((true, false)),
            ),
            (
                "a notice is suppressed",
                &group,
                event("m.room.message", ALICE, None, json!({"msgtype": "m.notice", "body": "bot"})),
                None,
            ),
            (
                "an encrypted event in a group notifies",
                &group,
                event("m.room.encrypted", ALICE, None, json!({"algorithm": "m.megolm.v1.aes-sha2"})),
                Some((true, false)),
            ),
            (
                "an encrypted event one to one notifies",
                &one_to_one,
                event("m.room.encrypted", ALICE, None, json!({"algorithm": "m.megolm.v1.aes-sha2"})),
                Some((true, false)),
            ),
            (
                "an edit is suppressed",
                &group,
                event(
                    "m.room.message",
                    ALICE,
                    None,
                    json!({"msgtype": "m.text", "body": "* hi", "m.new_content": text("hi"),
                    "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"}}),
                ),
                None,
            ),
            (
                "a reaction is suppressed",
                &group,
                event(
                    "m.reaction",
                    ALICE,
                    None,
                    json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": "$x", "key": "👍"}}),
                ),
                None,
            ),
            (
                "an invite for me notifies and sounds",
                &group,
                event("m.room.member", ALICE, Some(BOB), json!({"membership": "invite"})),
                Some((true, false)),
            ),
            (
                "another member's join is silent",
                &group,
                event("m.room.member", "@m2:hs", Some("@m2:hs"), json!({"membership": "join"})),
                None,
            ),
            (
                "a tombstone highlights",
                &group,
                event("m.room.tombstone", ALICE, Some(""), json!({"body": "moved", "replacement_room": "!n:hs"})),
                Some((true, true)),
            ),
            (
                "a call invite notifies",
                &group,
                event("m.call.invite", ALICE, None, json!({"call_id": "c", "version": 1})),
                Some((true, false)),
            ),
            (
                "an unknown state event is silent",
                &group,
                event("m.room.topic", ALICE, Some(""), json!({"topic": "t"})),
                None,
            ),
        ];
        for (name, snapshot, event, expected) in cases {
            assert_eq!(decide(snapshot, &event, None), expected, "{name}");
        }
    }

    #[test]
    fn a_member_who_ignores_the_sender_is_not_notified() {
        let ev = event("m.room.message", ALICE, None, text("hi"));
        let ignored = BTreeMap::from([(user(BOB), BTreeSet::from([ALICE.to_owned()]))]);
        let recipients = Recipients { rules: BTreeMap::new(), ignored };
        let decisions = futures::executor::block_on(evaluate(&room(3), &ev, &recipients));
        assert_eq!(decisions.iter().map(|d| d.user_id.as_str()).collect::<Vec<_>>(), vec!["@m2:hs"]);
    }

    #[test]
    fn the_sender_is_never_notified() {
        let ev = event(
            "m.room.message",
            BOB,
            None,
            json!({"msgtype": "m.text", "body": "me", "m.mentions": {"user_ids": [BOB]}}),
        );
        assert_eq!(decide(&room(3), &ev, None), None);
        assert!(!room(3).recipients(&ev).contains(&user(BOB)));
    }

    #[test]
    fn an_invitee_who_is_not_joined_is_evaluated() {
        let snapshot = RoomSnapshot { joined: vec![user(ALICE)], ..room(2) };
        let ev = event("m.room.member", ALICE, Some(BOB), json!({"membership": "invite"}));
        assert_eq!(snapshot.recipients(&ev), vec![user(BOB)]);
        let decisions = futures::executor::block_on(evaluate(&snapshot, &ev, &nobody()));
        assert_eq!(decisions.len(), 1);
        assert_eq!(decisions[0].tweaks.get("sound"), Some(&json!("default")));
    }

    #[test]
    fn a_disabled_master_rule_changes_nothing_and_an_enabled_one_silences_all() {
        let ev = event("m.room.message", ALICE, None, text("hi"));
        let mut rules = defaults();
        rules.set_enabled(ruma_common::push::RuleKind::Override, ".m.rule.master", false).unwrap();
        assert_eq!(decide(&room(5), &ev, Some(rules.clone())), Some((true, false)));
        rules.set_enabled(ruma_common::push::RuleKind::Override, ".m.rule.master", true).unwrap();
        assert_eq!(decide(&room(5), &ev, Some(rules)), None);
    }

    #[test]
    fn keywords_and_overrides_placed_before_and_after() {
        let highlight = vec![Action::Notify, Action::SetTweak(ruma_common::push::Tweak::Highlight(true.into()))];
        // A content rule: a keyword in the body highlights.
        let mut rules = defaults();
        let keyword = NewPatternedPushRule::new("lunch".into(), "lunch".into(), highlight.clone());
        rules.insert(NewPushRule::Content(keyword), None, None).unwrap();
        assert_eq!(
            decide(&room(5), &event("m.room.message", ALICE, None, text("Lunch at noon?")), Some(rules.clone())),
            Some((true, true))
        );
        assert_eq!(
            decide(&room(5), &event("m.room.message", ALICE, None, text("launch")), Some(rules)),
            Some((true, false))
        );

        // Two user overrides on alice's messages, muting and highlighting: the first wins, and
        // `before` and `after` decide which is first.
        let on_alice = |rule_id: &str, actions: Vec<Action>| {
            let sender = ruma_common::push::EventMatchConditionData::new("sender".into(), ALICE.into());
            NewPushRule::Override(NewConditionalPushRule::new(
                rule_id.into(),
                vec![PushCondition::EventMatch(sender)],
                actions,
            ))
        };
        let plain = event("m.room.message", ALICE, None, text("plain"));
        let mut rules = defaults();
        rules.insert(on_alice("mute", Vec::new()), None, None).unwrap();
        assert_eq!(decide(&room(5), &plain, Some(rules.clone())), None);
        rules.insert(on_alice("loud", highlight.clone()), Some("mute"), None).unwrap();
        assert_eq!(decide(&room(5), &plain, Some(rules.clone())), None, "loud is after mute");
        rules.insert(on_alice("loud", highlight), None, Some("mute")).unwrap();
        assert_eq!(decide(&room(5), &plain, Some(rules.clone())), Some((true, true)), "loud is before mute");
        // Server-default rules are no anchors for user rules.
        assert!(rules.insert(on_alice("x", Vec::new()), None, Some(".m.rule.is_user_mention")).is_err());
        // Another sender is untouched.
        assert_eq!(
            decide(&room(5), &event("m.room.message", "@m2:hs", None, text("hi")), Some(rules)),
            Some((true, false))
        );
    }

    #[test]
    fn sender_rules_match_their_sender() {
        let mut rules = defaults();
        let rule = ruma_common::push::NewSimplePushRule::new(user(ALICE), Vec::new());
        rules.insert(NewPushRule::Sender(rule), None, None).unwrap();
        assert_eq!(decide(&room(5), &event("m.room.message", ALICE, None, text("hi")), Some(rules.clone())), None);
        assert_eq!(
            decide(&room(5), &event("m.room.message", "@m2:hs", None, text("hi")), Some(rules)),
            Some((true, false))
        );
    }

    #[test]
    fn threads_and_notification_fields() {
        let reply = event(
            "m.room.message",
            ALICE,
            None,
            json!({"msgtype": "m.text", "body": "r",
            "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}),
        );
        assert_eq!(reply.thread_id(), "$root");
        assert_eq!(event("m.room.message", ALICE, None, text("x")).thread_id(), "main");

        let snapshot = room(5);
        let mention = event(
            "m.room.message",
            ALICE,
            None,
            json!({"msgtype": "m.text", "body": "x", "m.mentions": {"user_ids": [BOB]}}),
        );
        let decision = futures::executor::block_on(evaluate(&snapshot, &mention, &nobody())).remove(0);
        let n = notification(&snapshot, &mention, &decision);
        assert_eq!((n.prio.as_str(), n.room_name.as_deref(), n.event_stream), ("high", Some("Room"), 7));
        assert_eq!(n.tweaks, json!({"sound": "default", "highlight": true}).as_object().unwrap().clone());
        let plain = event("m.room.message", ALICE, None, text("x"));
        let decision = futures::executor::block_on(evaluate(&snapshot, &plain, &nobody())).remove(0);
        assert_eq!(notification(&snapshot, &plain, &decision).prio, "low");
    }

    #[test]
    fn shared_evaluation_decides_as_each_member_alone() {
        let highlight = vec![Action::Notify, Action::SetTweak(ruma_common::push::Tweak::Highlight(true.into()))];
        let with = |id: &str, rule: NewPushRule| {
            let mut rules = Ruleset::server_default(&user(id));
            rules.insert(rule, None, None).unwrap();
            (user(id), rules::to_content(&rules).unwrap())
        };
        let on_body = |rule_id: &str, pattern: &str| {
            let condition = ruma_common::push::EventMatchConditionData::new("content.body".into(), pattern.into());
            NewPushRule::Override(NewConditionalPushRule::new(
                rule_id.into(),
                vec![PushCondition::EventMatch(condition)],
                highlight.clone(),
            ))
        };
        // Deprecated, but a stored rule may still use it.
        #[allow(deprecated)]
        let on_name = NewPushRule::Override(NewConditionalPushRule::new(
            "name".into(),
            vec![PushCondition::ContainsDisplayName],
            highlight.clone(),
        ));
        let mut snapshot = room(10);
        snapshot.display_names.insert(user("@m6:hs"), "Sam".into());
        snapshot.display_names.insert(user("@m7:hs"), "Kim".into());
        let recipients = Recipients {
            rules: BTreeMap::from([
                with(
                    "@m3:hs",
                    NewPushRule::Content(NewPatternedPushRule::new("k".into(), "m3".into(), highlight.clone())),
                ),
                with("@m4:hs", on_body("me", "*@m4:hs*")),
                with("@m5:hs", on_body("me", "*@m5:hs*")),
                with("@m6:hs", on_name.clone()),
                with("@m7:hs", on_name),
            ]),
            ignored: BTreeMap::new(),
        };
        let events = [
            event("m.room.message", ALICE, None, text("hi sam, @m4:hs and m3")),
            event("m.room.message", ALICE, None, json!({"body": "x", "m.mentions": {"user_ids": ["@m2:hs"]}})),
            event("m.room.member", ALICE, Some("@m8:hs"), json!({"membership": "invite"})),
            event("m.room.message", ALICE, None, text("hello kim")),
        ];
        for ev in &events {
            let shared = futures::executor::block_on(evaluate(&snapshot, ev, &recipients));
            let raw: Raw<Value> = Raw::from_json(RawValue::from_string(ev.json.clone()).unwrap());
            let alone: Vec<(OwnedUserId, Option<Outcome>)> = snapshot
                .recipients(ev)
                .into_iter()
                .map(|u| {
                    let stored = recipients.rules.get(&u).map(String::as_str);
                    let outcome = futures::executor::block_on(super::decide(&snapshot, ev, &raw, &u, stored));
                    (u, outcome)
                })
                .collect();
            let kinds: BTreeSet<_> = alone.iter().map(|(_, o)| o.as_ref().map(|o| (o.notify, o.highlight))).collect();
            assert!(kinds.len() > 1, "the members' outcomes differ: {}", ev.json);
            let alone: Vec<_> =
                alone.into_iter().filter_map(|(u, o)| o.map(|o| (u, o.notify, o.highlight, o.tweaks))).collect();
            let shared: Vec<_> = shared.into_iter().map(|d| (d.user_id, d.notify, d.highlight, d.tweaks)).collect();
            assert_eq!(shared, alone, "{}", ev.json);
        }
    }
}
