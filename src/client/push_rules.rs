//! Push rules: `GET /pushrules/`, `GET /pushrules/global/`, `GET /pushrules/global/{kind}/`
//! (Synapse's), `GET`, `PUT` and `DELETE /pushrules/global/{kind}/{ruleId}`, and `GET` and `PUT`
//! of its `/enabled` and `/actions`.
//!
//! The rules live in the user's `m.push_rules` account data ([`crate::push::rules`]). Every change
//! is a read-modify-write of that entry, written only if nobody wrote it in between, so two
//! concurrent changes both take effect, and it reaches the user's devices through `/sync`.
//! Where the spec names no error, the errors are Synapse's.

use ruma_common::push::{
    Action, AnyPushRuleRef, InsertPushRuleError, NewConditionalPushRule, NewPatternedPushRule, NewPushRule,
    NewSimplePushRule, PushCondition, RemovePushRuleError, RuleKind, Ruleset,
};
use ruma_common::{OwnedRoomId, OwnedUserId};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::client::account_data::{wake_syncs, MAX_CONTENT_BYTES};
use crate::context::Ctx;
use crate::error::{internal, invalid_param, not_found, unknown, Error, ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::push::rules;
use crate::storage::account_data::{self, GLOBAL};

/// How many times a change reads the rules again after a concurrent change won the race.
const ATTEMPTS: usize = 8;
/// Actions of older versions of the spec, which it asks servers to ignore.
const HISTORICAL_ACTIONS: &[&str] = &["dont_notify", "coalesce"];

pub async fn get_pushrules_all(cx: Ctx) -> Result<Reply> {
    let (ruleset, _) = rules::load(&cx.db, &cx.requester()?.user_id).await?;
    Reply::json(&rules::content(&ruleset)?)
}

pub async fn get_pushrules_global_scope(cx: Ctx) -> Result<Reply> {
    check_scope(&cx)?;
    let (ruleset, _) = rules::load(&cx.db, &cx.requester()?.user_id).await?;
    Reply::json(&rules::ruleset_json(&ruleset)?)
}

/// The rules of one kind, in order: Synapse serves them, though the spec has no such endpoint.
pub async fn get_pushrules_kind(cx: Ctx) -> Result<Reply> {
    let (kind, _) = rule_path(&cx, ErrorKind::UnrecognizedParam)?;
    let (ruleset, _) = rules::load(&cx.db, &cx.requester()?.user_id).await?;
    let mut all = rules::ruleset_json(&ruleset)?;
    Reply::json(&all[kind.as_str()].take())
}

/// A path under `/pushrules` that lacks a part (scope, kind, rule ID) or names an attribute
/// other than `enabled` and `actions`: Synapse answers 400 `M_UNRECOGNIZED`.
pub async fn incomplete_path(_cx: Ctx) -> Result<Reply> {
    Err(MatrixError::new(ErrorKind::UnrecognizedParam, "Unrecognised push rules request").into())
}

pub async fn get_pushrule(cx: Ctx) -> Result<Reply> {
    let (kind, rule_id) = rule_path(&cx, ErrorKind::UnrecognizedParam)?;
    let (ruleset, _) = rules::load(&cx.db, &cx.requester()?.user_id).await?;
    Reply::json(&rule_json(ruleset.get(kind, rule_id).ok_or_else(rule_not_found)?)?)
}

pub async fn set_pushrule(cx: Ctx) -> Result<Reply> {
    let (kind, rule_id) = rule_path(&cx, ErrorKind::Unknown)?;
    check_rule_id(rule_id)?;
    if rule_id.starts_with('.') {
        return Err(unknown("Rule IDs starting with a dot are reserved for server-default rules"));
    }
    let rule = new_rule(&kind, rule_id, cx.req.json()?)?;
    // Synapse reads an empty value as none.
    let before = cx.req.query("before").filter(|r| !r.is_empty());
    let after = cx.req.query("after").filter(|r| !r.is_empty());
    update(&cx, |ruleset| put_rule(ruleset, rule.clone(), before, after)).await
}

pub async fn delete_pushrule(cx: Ctx) -> Result<Reply> {
    // No rule of an unknown kind exists: Synapse answers 404 here.
    let (kind, rule_id) = rule_path(&cx, ErrorKind::NotFound)?;
    update(&cx, |ruleset| {
        ruleset.remove(kind.clone(), rule_id).map_err(|e| match e {
            // Synapse keeps only user-defined rules in its table, so it does not find these.
            RemovePushRuleError::ServerDefault => not_found("Server-default rules cannot be deleted"),
            _ => rule_not_found(),
        })
    })
    .await
}

pub async fn get_pushrule_enabled(cx: Ctx) -> Result<Reply> {
    let (kind, rule_id) = rule_path(&cx, ErrorKind::UnrecognizedParam)?;
    let (ruleset, _) = rules::load(&cx.db, &cx.requester()?.user_id).await?;
    let rule = ruleset.get(kind, rule_id).ok_or_else(rule_not_found)?;
    Reply::json(&json!({ "enabled": rule.enabled() }))
}

pub async fn set_pushrule_enabled(cx: Ctx) -> Result<Reply> {
    #[derive(Deserialize)]
    struct Body {
        enabled: bool,
    }
    let (kind, rule_id) = rule_path(&cx, ErrorKind::Unknown)?;
    check_rule_id(rule_id)?;
    let Body { enabled } = cx.req.json()?;
    update(&cx, |ruleset| ruleset.set_enabled(kind.clone(), rule_id, enabled).map_err(|_| rule_not_found())).await
}

pub async fn get_pushrule_actions(cx: Ctx) -> Result<Reply> {
    let (kind, rule_id) = rule_path(&cx, ErrorKind::UnrecognizedParam)?;
    let (ruleset, _) = rules::load(&cx.db, &cx.requester()?.user_id).await?;
    let rule = ruleset.get(kind, rule_id).ok_or_else(rule_not_found)?;
    Reply::json(&json!({ "actions": rule.actions() }))
}

pub async fn set_pushrule_actions(cx: Ctx) -> Result<Reply> {
    #[derive(Deserialize)]
    struct Body {
        actions: Vec<Value>,
    }
    let (kind, rule_id) = rule_path(&cx, ErrorKind::Unknown)?;
    check_rule_id(rule_id)?;
    let actions = parse_actions(cx.req.json::<Body>()?.actions)?;
    update(&cx, |ruleset| ruleset.set_actions(kind.clone(), rule_id, actions.clone()).map_err(|_| rule_not_found()))
        .await
}

/// Applies `change` to the requester's rules and stores them if they changed: read, change, and
/// write only if the entry is still as read, else read again, so no concurrent change is lost.
async fn update(cx: &Ctx, change: impl Fn(&mut Ruleset) -> Result<()>) -> Result<Reply> {
    let user_id = &cx.requester()?.user_id;
    for _ in 0..ATTEMPTS {
        let (mut ruleset, at) = rules::load(&cx.db, user_id).await?;
        let before = rules::to_content(&ruleset)?;
        change(&mut ruleset)?;
        let after = rules::to_content(&ruleset)?;
        if after == before {
            return Ok(Reply::empty());
        }
        if after.len() > MAX_CONTENT_BYTES {
            let message = format!("Push rules may take at most {MAX_CONTENT_BYTES} bytes");
            return Err(MatrixError::new(ErrorKind::TooLarge, message).into());
        }
        let set = account_data::set_if_at(&cx.db, user_id.as_str(), GLOBAL, rules::ACCOUNT_DATA_TYPE, &after, at)?;
        if cx.db.run(set).await? > 0 {
            wake_syncs(cx, user_id.as_str()).await?;
            return Ok(Reply::empty());
        }
    }
    Err(internal("push rules", "too many concurrent changes to one user's push rules"))
}

/// The `scope` path parameter: `global` is the only one.
fn check_scope(cx: &Ctx) -> Result<()> {
    match cx.param("scope") {
        "global" => Ok(()),
        _ => {
            Err(MatrixError::new(ErrorKind::UnrecognizedParam, "Push rule scopes other than global do not exist")
                .into())
        }
    }
}

/// The rule a path names: its kind and ID. An unknown kind is answered with `unknown_kind`, which
/// Synapse varies with the method.
fn rule_path(cx: &Ctx, unknown_kind: ErrorKind) -> Result<(RuleKind, &str)> {
    check_scope(cx)?;
    let kind = match cx.param("kind") {
        "override" => RuleKind::Override,
        "content" => RuleKind::Content,
        "room" => RuleKind::Room,
        "sender" => RuleKind::Sender,
        "underride" => RuleKind::Underride,
        _ => return Err(MatrixError::new(unknown_kind, "Unknown push rule kind").into()),
    };
    Ok((kind, cx.param("ruleId")))
}

/// No rule ID written through the API contains a slash or a backslash.
fn check_rule_id(rule_id: &str) -> Result<()> {
    if rule_id.contains(['/', '\\']) {
        return Err(unknown("Rule IDs may not contain slashes or backslashes"));
    }
    Ok(())
}

fn rule_not_found() -> Error {
    not_found("The push rule was not found")
}

fn rule_json(rule: AnyPushRuleRef<'_>) -> Result<Value> {
    let value = match rule {
        AnyPushRuleRef::Override(r) | AnyPushRuleRef::Underride(r) => serde_json::to_value(r),
        AnyPushRuleRef::Content(r) => serde_json::to_value(r),
        AnyPushRuleRef::Room(r) => serde_json::to_value(r),
        AnyPushRuleRef::Sender(r) => serde_json::to_value(r),
        _ => return Err(internal("push rules", "a rule of a kind the API does not serve")),
    };
    value.map_err(|e| internal("push rules", e))
}

/// The body of `PUT /pushrules/global/{kind}/{ruleId}`; which fields count depends on the kind.
#[derive(Deserialize)]
struct RuleBody {
    actions: Vec<Value>,
    #[serde(default)]
    conditions: Option<Vec<Value>>,
    #[serde(default)]
    pattern: Option<String>,
}

/// The rule a `PUT` describes. Room and sender rules are named by their room or user.
fn new_rule(kind: &RuleKind, rule_id: &str, body: RuleBody) -> Result<NewPushRule> {
    let RuleBody { actions, conditions, pattern } = body;
    let actions = parse_actions(actions)?;
    let conditional = |conditions: Option<Vec<Value>>, actions| -> Result<NewConditionalPushRule> {
        let conditions = conditions.unwrap_or_default().into_iter().map(parse_condition).collect::<Result<_>>()?;
        Ok(NewConditionalPushRule::new(rule_id.to_owned(), conditions, actions))
    };
    Ok(match kind {
        RuleKind::Override => NewPushRule::Override(conditional(conditions, actions)?),
        RuleKind::Underride => NewPushRule::Underride(conditional(conditions, actions)?),
        RuleKind::Content => {
            let pattern = pattern.ok_or_else(|| invalid_param("A content rule needs a pattern"))?;
            NewPushRule::Content(NewPatternedPushRule::new(rule_id.to_owned(), pattern, actions))
        }
        RuleKind::Room => {
            let room_id = OwnedRoomId::try_from(rule_id)
                .map_err(|_| invalid_param("The ID of a room rule is the ID of its room"))?;
            NewPushRule::Room(NewSimplePushRule::new(room_id, actions))
        }
        RuleKind::Sender => {
            let user_id = OwnedUserId::try_from(rule_id)
                .map_err(|_| invalid_param("The ID of a sender rule is the ID of its user"))?;
            NewPushRule::Sender(NewSimplePushRule::new(user_id, actions))
        }
        _ => return Err(unknown("Unknown push rule kind")),
    })
}

/// The spec's actions: `notify` or a `set_tweak` object. The historical ones are dropped, as the
/// spec suggests; any other is refused, as Synapse does.
fn parse_actions(values: Vec<Value>) -> Result<Vec<Action>> {
    let mut actions = Vec::with_capacity(values.len());
    for value in values {
        match &value {
            Value::String(s) if s == "notify" => actions.push(Action::Notify),
            // Kept as given (Synapse does) and no-ops in evaluation, as the spec asks.
            Value::String(s) if HISTORICAL_ACTIONS.contains(&s.as_str()) => {
                actions.push(serde_json::from_value(value).map_err(|e| internal("push action", e))?);
            }
            Value::Object(o) if o.get("set_tweak").is_some_and(Value::is_string) => {
                let action = serde_json::from_value(value).map_err(|e| invalid_param(format!("Invalid tweak: {e}")))?;
                actions.push(action);
            }
            _ => return Err(invalid_param(format!("Unrecognised action: {value}"))),
        }
    }
    Ok(actions)
}

/// A condition: an object with a `kind`, which ruma checks against the spec's shape of that kind.
/// Kinds the spec does not define are kept; they never match.
fn parse_condition(value: Value) -> Result<PushCondition> {
    if !value.get("kind").is_some_and(Value::is_string) {
        return Err(invalid_param("Each condition is an object with a kind"));
    }
    serde_json::from_value(value).map_err(|e| invalid_param(format!("Invalid condition: {e}")))
}

/// Puts `rule` into `ruleset`: as the most important user-defined rule of its kind, or right
/// before the user-defined rule `before`, or right after `after` (`before` wins, as the spec
/// says). A rule that exists is taken out first and keeps its `enabled`: an update then moves as
/// Synapse moves it, and ruma never has to move a rule in place, which misplaces one that moves
/// down (and panics past the end).
fn put_rule(ruleset: &mut Ruleset, rule: NewPushRule, before: Option<&str>, after: Option<&str>) -> Result<()> {
    let (kind, rule_id) = (rule.kind(), rule.rule_id().to_owned());
    let after = after.filter(|_| before.is_none());
    let relative = before.or(after);
    if relative == Some(rule_id.as_str()) {
        return Err(unknown("A rule cannot be placed relative to itself"));
    }
    let enabled = ruleset.get(kind.clone(), &rule_id).map(AnyPushRuleRef::enabled);
    if enabled.is_some() {
        ruleset.remove(kind.clone(), &rule_id).map_err(|e| unknown(e.to_string()))?;
    }
    ruleset.insert(rule, after, before).map_err(|e| match e {
        InsertPushRuleError::UnknownRuleId => {
            unknown(format!("before/after rule not found: {}", relative.unwrap_or_default()))
        }
        _ => unknown(e.to_string()),
    })?;
    if let Some(enabled) = enabled {
        ruleset.set_enabled(kind, &rule_id, enabled).map_err(|e| internal("push rules", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma_common::user_id;

    fn ruleset() -> Ruleset {
        rules::from_content(user_id!("@alice:example.org"), None)
    }

    fn override_rule(id: &str) -> NewPushRule {
        NewPushRule::Override(NewConditionalPushRule::new(id.to_owned(), Vec::new(), vec![Action::Notify]))
    }

    fn content_rule(id: &str) -> NewPushRule {
        NewPushRule::Content(NewPatternedPushRule::new(id.to_owned(), "cake".to_owned(), Vec::new()))
    }

    fn ids(ruleset: &Ruleset, kind: &str) -> Vec<String> {
        let json = rules::ruleset_json(ruleset).unwrap();
        json[kind].as_array().unwrap().iter().map(|r| r["rule_id"].as_str().unwrap().to_owned()).collect()
    }

    fn errcode(e: Error) -> &'static str {
        e.matrix().unwrap().kind.errcode_and_status().0
    }

    #[test]
    fn new_rules_go_first_among_user_rules_and_after_master() {
        let mut set = ruleset();
        put_rule(&mut set, override_rule("a"), None, None).unwrap();
        put_rule(&mut set, override_rule("b"), None, None).unwrap();
        let order = ids(&set, "override");
        assert_eq!(order[..4], [".m.rule.master", "b", "a", ".m.rule.suppress_notices"]);
    }

    #[test]
    fn before_and_after_place_next_to_the_named_rule() {
        let mut set = ruleset();
        for id in ["c", "b", "a"] {
            put_rule(&mut set, content_rule(id), None, None).unwrap();
        }
        assert_eq!(ids(&set, "content"), ["a", "b", "c"]);
        put_rule(&mut set, content_rule("x"), Some("b"), None).unwrap();
        assert_eq!(ids(&set, "content"), ["a", "x", "b", "c"]);
        put_rule(&mut set, content_rule("y"), None, Some("c")).unwrap();
        assert_eq!(ids(&set, "content"), ["a", "x", "b", "c", "y"]);
        // Both: `before` decides, even where `after` would contradict it.
        put_rule(&mut set, content_rule("z"), Some("a"), Some("c")).unwrap();
        assert_eq!(ids(&set, "content"), ["z", "a", "x", "b", "c", "y"]);
    }

    #[test]
    fn existing_rules_move_anywhere_without_panicking() {
        let mut set = ruleset();
        for id in ["c", "b", "a"] {
            put_rule(&mut set, content_rule(id), None, None).unwrap();
        }
        // Down to the very end: ruma alone would panic here.
        put_rule(&mut set, content_rule("a"), None, Some("c")).unwrap();
        assert_eq!(ids(&set, "content"), ["b", "c", "a"]);
        // Down, right before a rule: ruma alone would put it after that rule.
        put_rule(&mut set, content_rule("b"), Some("a"), None).unwrap();
        assert_eq!(ids(&set, "content"), ["c", "b", "a"]);
        put_rule(&mut set, content_rule("a"), Some("c"), None).unwrap();
        assert_eq!(ids(&set, "content"), ["a", "c", "b"]);
        // Without a place, an updated rule goes first, as in Synapse.
        put_rule(&mut set, content_rule("b"), None, None).unwrap();
        assert_eq!(ids(&set, "content"), ["b", "a", "c"]);
    }

    #[test]
    fn an_update_keeps_enabled_and_replaces_the_rest() {
        let mut set = ruleset();
        put_rule(&mut set, content_rule("a"), None, None).unwrap();
        set.set_enabled(RuleKind::Content, "a", false).unwrap();
        let updated = NewPatternedPushRule::new("a".to_owned(), "pie".to_owned(), vec![Action::Notify]);
        put_rule(&mut set, NewPushRule::Content(updated), None, None).unwrap();
        let rule = rule_json(set.get(RuleKind::Content, "a").unwrap()).unwrap();
        assert_eq!(
            rule,
            json!({"rule_id": "a", "pattern": "pie", "actions": ["notify"], "enabled": false, "default": false})
        );
    }

    #[test]
    fn bad_places_are_refused_and_leave_the_rules_alone() {
        let mut set = ruleset();
        put_rule(&mut set, override_rule("a"), None, None).unwrap();
        let before = rules::content(&set).unwrap();
        for (place_before, place_after) in
            [(Some("missing"), None), (None, Some("missing")), (Some(".m.rule.master"), None), (None, Some("a"))]
        {
            let rule = if place_after == Some("a") { override_rule("a") } else { override_rule("n") };
            let mut copy = set.clone();
            let e = put_rule(&mut copy, rule, place_before, place_after).unwrap_err();
            assert_eq!(errcode(e), "M_UNKNOWN");
        }
        assert_eq!(rules::content(&set).unwrap(), before);
    }

    #[test]
    fn actions_are_the_spec_s() {
        let actions = parse_actions(vec![
            json!("notify"),
            json!("dont_notify"),
            json!({"set_tweak": "sound", "value": "bing"}),
            json!({"set_tweak": "highlight"}),
            json!({"set_tweak": "org.example.flash", "value": {"rate": 2}}),
            json!("coalesce"),
        ])
        .unwrap();
        assert_eq!(
            serde_json::to_value(&actions).unwrap(),
            json!([
                "notify",
                "dont_notify",
                {"set_tweak": "sound", "value": "bing"},
                {"set_tweak": "highlight"},
                {"set_tweak": "org.example.flash", "value": {"rate": 2}},
                "coalesce",
            ])
        );
        // Kept as given, the historical actions are no-ops: a rule of only them notifies nobody.
        let historical = parse_actions(vec![json!("dont_notify"), json!("coalesce")]).unwrap();
        assert!(!historical.iter().any(Action::should_notify));
        for bad in [
            json!("notify_loudly"),
            json!(5),
            json!(null),
            json!({"value": "x"}),
            json!({"set_tweak": 5}),
            json!({"set_tweak": "highlight", "value": "yes"}),
            json!({"set_tweak": "sound"}),
        ] {
            let e = parse_actions(vec![bad.clone()]).unwrap_err();
            assert_eq!(errcode(e), "M_INVALID_PARAM", "{bad}");
        }
    }

    #[test]
    fn conditions_must_have_their_kind_s_shape() {
        for good in [
            json!({"kind": "event_match", "key": "content.body", "pattern": "cake*"}),
            json!({"kind": "room_member_count", "is": "<=10"}),
            json!({"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": true}),
            json!({"kind": "org.example.unknown", "anything": [1]}),
        ] {
            let condition = parse_condition(good.clone()).unwrap();
            assert_eq!(serde_json::to_value(condition).unwrap(), good);
        }
        for bad in [
            json!({"key": "type", "pattern": "m.room.message"}),
            json!({"kind": 5}),
            json!("event_match"),
            json!({"kind": "event_match", "key": "type"}),
            json!({"kind": "room_member_count", "is": "lots"}),
            json!({"kind": "event_property_is", "key": "content.x", "value": {"nested": 1}}),
        ] {
            let e = parse_condition(bad.clone()).unwrap_err();
            assert_eq!(errcode(e), "M_INVALID_PARAM", "{bad}");
        }
    }

    #[test]
    fn bodies_must_fit_their_kind() {
        let body = |v: Value| serde_json::from_value::<RuleBody>(v).unwrap();
        let no_pattern = new_rule(&RuleKind::Content, "c", body(json!({"actions": []}))).unwrap_err();
        assert_eq!(errcode(no_pattern), "M_INVALID_PARAM");
        let not_a_room = new_rule(&RuleKind::Room, "lobby", body(json!({"actions": []}))).unwrap_err();
        assert_eq!(errcode(not_a_room), "M_INVALID_PARAM");
        let not_a_user = new_rule(&RuleKind::Sender, "bob", body(json!({"actions": []}))).unwrap_err();
        assert_eq!(errcode(not_a_user), "M_INVALID_PARAM");
        assert!(new_rule(&RuleKind::Room, "!abc:example.org", body(json!({"actions": []}))).is_ok());
        assert!(new_rule(
            &RuleKind::Room,
            "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM",
            body(json!({"actions": []}))
        )
        .is_ok());
        assert!(new_rule(&RuleKind::Sender, "@bob:example.org", body(json!({"actions": []}))).is_ok());
        // No conditions: the rule always matches.
        let rule = new_rule(&RuleKind::Override, "all", body(json!({"actions": ["notify"]}))).unwrap();
        assert_eq!(rule.kind(), RuleKind::Override);
    }

    #[test]
    fn slashes_are_refused() {
        assert!(check_rule_id("nocake").is_ok());
        assert!(check_rule_id("!room:example.org").is_ok());
        assert_eq!(errcode(check_rule_id("a/b").unwrap_err()), "M_UNKNOWN");
        assert_eq!(errcode(check_rule_id("a\\b").unwrap_err()), "M_UNKNOWN");
    }
}
