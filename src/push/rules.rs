//! Each user's push rules: the spec's server-default rules with the user's own rules and changes.
//!
//! They are kept as the user's global `m.push_rules` account data, `{"global": <ruleset>}`, the
//! form in which they reach the user's other devices through `/sync`. A stored ruleset is brought
//! up to date with the current server-default rules whenever it is read, so a server upgrade that
//! adds a default rule reaches every user, keeping each user's changes to the existing ones.

use std::collections::{BTreeMap, BTreeSet};

use ruma_common::push::Ruleset;
use ruma_common::{OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{internal, Result};
use crate::storage::account_data::{self, GLOBAL};
use crate::storage::Db;

/// The account data type under which the rules are kept.
pub const ACCOUNT_DATA_TYPE: &str = "m.push_rules";
/// The kinds of rule, in the order in which they are checked.
pub const KINDS: [&str; 5] = ["override", "content", "room", "sender", "underride"];
/// Users who ignore a sender are not notified of its events, as in Synapse.
const IGNORED_USERS: &str = "m.ignored_user_list";

#[derive(Serialize, Deserialize)]
struct Stored {
    global: Ruleset,
}

/// The ruleset kept in `content` (`None` when the user has none), with the server defaults.
pub fn from_content(user_id: &UserId, content: Option<&str>) -> Ruleset {
    let defaults = Ruleset::server_default(user_id);
    match content.and_then(|c| serde_json::from_str::<Stored>(c).ok()) {
        Some(Stored { global: mut ruleset }) => {
            ruleset.update_with_server_default(defaults);
            ruleset
        }
        None => defaults,
    }
}

/// The ruleset as clients get it: every kind an array, an empty one too, as Synapse serves it.
pub fn ruleset_json(ruleset: &Ruleset) -> Result<Value> {
    let mut value = serde_json::to_value(ruleset).map_err(|e| internal("push rules", e))?;
    if let Value::Object(kinds) = &mut value {
        for kind in KINDS {
            kinds.entry(kind).or_insert_with(|| Value::Array(Vec::new()));
        }
    }
    Ok(value)
}

/// The account data content that keeps `ruleset`, which is also what `/sync` serves.
pub fn content(ruleset: &Ruleset) -> Result<Map<String, Value>> {
    Ok(Map::from_iter([("global".to_owned(), ruleset_json(ruleset)?)]))
}

/// The account data content that keeps `ruleset`, as JSON text.
pub fn to_content(ruleset: &Ruleset) -> Result<String> {
    serde_json::to_string(&content(ruleset)?).map_err(|e| internal("push rules", e))
}

/// One user's ruleset and the position of its account data entry (0 when never stored), for a
/// compare-and-set write with [`account_data::set_if_at`].
pub async fn load(db: &Db, user_id: &UserId) -> Result<(Ruleset, u64)> {
    let entry = account_data::get(db, user_id.as_str(), GLOBAL, ACCOUNT_DATA_TYPE).await?;
    let stream_id = entry.as_ref().map_or(0, |e| e.stream_id);
    Ok((from_content(user_id, entry.as_ref().map(|e| e.content.as_str())), stream_id))
}

/// What evaluation needs of each recipient's account data, read in one query.
pub struct Recipients {
    /// The stored rules (`m.push_rules` content) of each user who has any; the others have the
    /// server defaults. Kept as text: evaluation parses one ruleset per distinct text.
    pub rules: BTreeMap<OwnedUserId, String>,
    /// Each user's ignored users (`m.ignored_user_list`), for those who ignore anyone.
    pub ignored: BTreeMap<OwnedUserId, BTreeSet<String>>,
}

/// The rulesets and ignore lists of `users`.
pub async fn load_many(db: &Db, users: &[OwnedUserId]) -> Result<Recipients> {
    let ids: Vec<&str> = users.iter().map(|u| u.as_str()).collect();
    let rows = account_data::global_of_users(db, &ids, &[ACCOUNT_DATA_TYPE, IGNORED_USERS]).await?;
    let mut rules = BTreeMap::new();
    let mut ignored = BTreeMap::new();
    for (user, kind, content) in rows {
        let Ok(user) = OwnedUserId::try_from(user) else { continue };
        if kind == IGNORED_USERS {
            let content: Value = serde_json::from_str(&content).unwrap_or_default();
            let list = content.get("ignored_users").and_then(Value::as_object);
            ignored.insert(user, list.map(|l| l.keys().cloned().collect()).unwrap_or_default());
        } else {
            rules.insert(user, content);
        }
    }
    Ok(Recipients { rules, ignored })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma_common::user_id;

    fn ids(ruleset: &Ruleset) -> Vec<(String, String)> {
        let json = ruleset_json(ruleset).unwrap();
        KINDS
            .iter()
            .flat_map(|kind| {
                json[kind].as_array().unwrap().iter().map(|r| (kind.to_string(), r["rule_id"].as_str().unwrap().into()))
            })
            .collect()
    }

    #[test]
    fn the_defaults_are_the_spec_s_in_its_order() {
        let expected = [
            ("override", ".m.rule.master"),
            ("override", ".m.rule.suppress_notices"),
            ("override", ".m.rule.invite_for_me"),
            ("override", ".m.rule.member_event"),
            ("override", ".m.rule.is_user_mention"),
            ("override", ".m.rule.is_room_mention"),
            ("override", ".m.rule.tombstone"),
            ("override", ".m.rule.reaction"),
            ("override", ".m.rule.room.server_acl"),
            ("override", ".m.rule.suppress_edits"),
            ("underride", ".m.rule.call"),
            ("underride", ".m.rule.encrypted_room_one_to_one"),
            ("underride", ".m.rule.room_one_to_one"),
            ("underride", ".m.rule.message"),
            ("underride", ".m.rule.encrypted"),
        ];
        let expected: Vec<_> = expected.iter().map(|(k, id)| (k.to_string(), id.to_string())).collect();
        assert_eq!(ids(&from_content(user_id!("@alice:example.org"), None)), expected);
    }

    #[test]
    fn every_kind_is_served_even_empty() {
        let json = ruleset_json(&Ruleset::new()).unwrap();
        for kind in KINDS {
            assert_eq!(json[kind], Value::Array(Vec::new()), "{kind}");
        }
    }

    #[test]
    fn stored_rules_keep_the_user_s_changes_and_gain_the_defaults() {
        let alice = user_id!("@alice:example.org");
        let mut ruleset = Ruleset::new();
        let mut master = ruma_common::push::ConditionalPushRule::master();
        master.enabled = true;
        ruleset.override_.insert(master);
        let stored = from_content(alice, Some(&to_content(&ruleset).unwrap()));
        assert!(stored.get(ruma_common::push::RuleKind::Override, ".m.rule.master").unwrap().enabled());
        assert_eq!(ids(&stored), ids(&from_content(alice, None)));
        // What cannot be read is no rules of the user's own.
        assert_eq!(ids(&from_content(alice, Some("{\"global\": 5}"))), ids(&from_content(alice, None)));
    }
}
