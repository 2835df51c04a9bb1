//! The routers that come with the server: the built-in one, the example of Synapse's docs, and
//! a router for the end-to-end tests of composition. Each is a [`PresenceRouter`]; they are
//! registered in [`super::router::REGISTERED`] (the built-in one is configured by its settings).

use std::collections::{BTreeMap, BTreeSet};

use super::router::{Interested, PresenceRouter, UserPresenceState};
use crate::config::PresenceRouterConfig;

type Routed = BTreeMap<String, BTreeSet<UserPresenceState>>;

/// The example router of Synapse's presence router docs (`ExamplePresenceRouter`), configured by
/// `PRESENCE_ROUTER_ALWAYS_SEND_TO_USERS` and `PRESENCE_ROUTER_BLACKLISTED_USERS`: the users
/// in `always_send_to_users` receive every update but the blacklisted users', and are
/// interested in all users. (The docs' version reads `update.state_key`, which presence states
/// no longer have; this one reads the user ID.)
pub struct AlwaysSend {
    always_send_to_users: BTreeSet<String>,
    blacklisted_users: BTreeSet<String>,
}

impl AlwaysSend {
    pub fn new(config: &PresenceRouterConfig) -> Self {
        let ids = |users: &[ruma_common::OwnedUserId]| users.iter().map(|u| u.to_string()).collect();
        AlwaysSend {
            always_send_to_users: ids(&config.always_send_to_users),
            blacklisted_users: ids(&config.blacklisted_users),
        }
    }
}

impl PresenceRouter for AlwaysSend {
    fn get_users_for_states(&self, states: &[UserPresenceState]) -> Routed {
        let mut routed = Routed::new();
        for state in states.iter().filter(|s| !self.blacklisted_users.contains(&s.user_id)) {
            for user in &self.always_send_to_users {
                routed.entry(user.clone()).or_default().insert(state.clone());
            }
        }
        routed
    }

    fn get_interested_users(&self, user_id: &str) -> Interested {
        match self.always_send_to_users.contains(user_id) {
            true => Interested::All,
            false => Interested::Users(BTreeSet::new()),
        }
    }
}

/// The example of Synapse's presence router callbacks docs: the presence of @bob and @charlie
/// goes to @alice (all of this server), and @alice is interested in theirs.
pub struct DocsExample {
    alice: String,
    bob_and_charlie: BTreeSet<String>,
}

impl DocsExample {
    pub fn new(server_name: &str) -> Self {
        DocsExample {
            alice: format!("@alice:{server_name}"),
            bob_and_charlie: [format!("@bob:{server_name}"), format!("@charlie:{server_name}")].into(),
        }
    }
}

impl PresenceRouter for DocsExample {
    fn get_users_for_states(&self, states: &[UserPresenceState]) -> Routed {
        let mut routed = Routed::new();
        for state in states.iter().filter(|s| self.bob_and_charlie.contains(&s.user_id)) {
            routed.entry(self.alice.clone()).or_default().insert(state.clone());
        }
        routed
    }

    fn get_interested_users(&self, user_id: &str) -> Interested {
        match user_id == self.alice {
            true => Interested::Users(self.bob_and_charlie.clone()),
            false => Interested::Users(BTreeSet::new()),
        }
    }
}

/// For the end-to-end tests of composition (`PRESENCE_ROUTERS=docs_example,test_union`):
/// @dave's presence goes to @alice too, so that two routers route to her, and every update
/// goes to @watcher, who is interested in all users.
pub struct TestUnion {
    alice: String,
    dave: String,
    watcher: String,
}

impl TestUnion {
    pub fn new(server_name: &str) -> Self {
        TestUnion {
            alice: format!("@alice:{server_name}"),
            dave: format!("@dave:{server_name}"),
            watcher: format!("@watcher:{server_name}"),
        }
    }
}

impl PresenceRouter for TestUnion {
    fn get_users_for_states(&self, states: &[UserPresenceState]) -> Routed {
        let mut routed = Routed::new();
        for state in states {
            if state.user_id == self.dave {
                routed.entry(self.alice.clone()).or_default().insert(state.clone());
            }
            routed.entry(self.watcher.clone()).or_default().insert(state.clone());
        }
        routed
    }

    fn get_interested_users(&self, user_id: &str) -> Interested {
        if user_id == self.watcher {
            return Interested::All;
        }
        match user_id == self.alice {
            true => Interested::Users([self.dave.clone()].into()),
            false => Interested::Users(BTreeSet::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::state::State;

    fn update(user: &str) -> UserPresenceState {
        UserPresenceState {
            user_id: user.into(),
            state: State::Unavailable,
            status_msg: Some("x".into()),
            last_active_ts: 5,
            currently_active: false,
        }
    }

    fn builtin(always: &[&str], blacklisted: &[&str]) -> AlwaysSend {
        let ids = |v: &[&str]| v.iter().map(|u| ruma_common::UserId::parse(*u).unwrap()).collect();
        AlwaysSend::new(&PresenceRouterConfig {
            always_send_to_users: ids(always),
            blacklisted_users: ids(blacklisted),
        })
    }

    #[test]
    fn the_builtin_router_sends_all_but_the_blacklisted_to_its_users() {
        let router = builtin(&["@g1:hs", "@g2:hs"], &["@hidden:hs"]);
        let routed = router.get_users_for_states(&[update("@a:hs"), update("@hidden:hs"), update("@b:hs")]);
        assert_eq!(routed.keys().collect::<Vec<_>>(), ["@g1:hs", "@g2:hs"]);
        for states in routed.values() {
            assert_eq!(states.iter().map(|s| s.user_id.as_str()).collect::<Vec<_>>(), ["@a:hs", "@b:hs"]);
        }
        assert!(router.get_users_for_states(&[update("@hidden:hs")]).is_empty());
        assert_eq!(router.get_interested_users("@g1:hs"), Interested::All);
        assert_eq!(router.get_interested_users("@a:hs"), Interested::Users(BTreeSet::new()));
        // Without anyone to send to, nothing is routed.
        assert!(builtin(&[], &["@hidden:hs"]).get_users_for_states(&[update("@a:hs")]).is_empty());
    }

    #[test]
    fn the_docs_example_routes_bob_and_charlie_to_alice() {
        let router = DocsExample::new("hs");
        let routed = router.get_users_for_states(&[update("@bob:hs"), update("@charlie:hs"), update("@eve:hs")]);
        assert_eq!(routed.len(), 1);
        assert_eq!(routed["@alice:hs"].len(), 2);
        assert_eq!(
            router.get_interested_users("@alice:hs"),
            Interested::Users(["@bob:hs".to_owned(), "@charlie:hs".to_owned()].into())
        );
        assert_eq!(router.get_interested_users("@bob:hs"), Interested::Users(BTreeSet::new()));
    }
}
