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
use serde_json::Value;

use crate::error::{internal, Result};
use crate::storage::account_data::{self, GLOBAL};
use crate::storage::Db;

/// The account data type under which the rules are kept.
pub const ACCOUNT_DATA_TYPE: &str = "m.push_rules";
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

/// The account data content that keeps `ruleset`.
pub fn to_content(ruleset: &Ruleset) -> Result<String> {
    serde_json::to_string(&Stored { global: ruleset.clone() }).map_err(|e| internal("push rules", e))
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
    /// Each user's ruleset: their own, or the server defaults.
    pub rulesets: BTreeMap<OwnedUserId, Ruleset>,
    /// Each user's ignored users (`m.ignored_user_list`), for those who ignore anyone.
    pub ignored: BTreeMap<OwnedUserId, BTreeSet<String>>,
}

/// The rulesets and ignore lists of `users`.
pub async fn load_many(db: &Db, users: &[OwnedUserId]) -> Result<Recipients> {
    let ids: Vec<&str> = users.iter().map(|u| u.as_str()).collect();
    let rows = account_data::global_of_users(db, &ids, &[ACCOUNT_DATA_TYPE, IGNORED_USERS]).await?;
    let mut stored = BTreeMap::new();
    let mut ignored = BTreeMap::new();
    for (user, kind, content) in rows {
        let Ok(user) = OwnedUserId::try_from(user) else { continue };
        if kind == IGNORED_USERS {
            let content: Value = serde_json::from_str(&content).unwrap_or_default();
            let list = content.get("ignored_users").and_then(Value::as_object);
            ignored.insert(user, list.map(|l| l.keys().cloned().collect()).unwrap_or_default());
        } else {
            stored.insert(user, content);
        }
    }
    let rulesets = users.iter().map(|u| (u.clone(), from_content(u, stored.get(u).map(String::as_str)))).collect();
    Ok(Recipients { rulesets, ignored })
}
