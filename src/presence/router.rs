//! Presence routing, after Synapse's presence router module: who receives a user's presence
//! beyond the users who share a room with them.
//!
//! A router answers Synapse's two callbacks. [`Routers`] composes several exactly as Synapse
//! composes modules, and routed presence only ever adds to shared-room presence.
//!
//! **Adding a router:** implement [`PresenceRouter`], add a line to [`REGISTERED`] with the name
//! it goes by, and list that name in the `PRESENCE_ROUTERS` setting. Routers run in the order
//! listed, after the built-in one (which `PRESENCE_ROUTER_ALWAYS_SEND_TO_USERS` and
//! `PRESENCE_ROUTER_BLACKLISTED_USERS` configure).

use std::collections::{BTreeMap, BTreeSet};

use super::routers::{AlwaysSend, DocsExample, TestUnion};
use super::state::State;
use crate::config::Config;

/// A presence update as a router sees it (Synapse's `UserPresenceState`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UserPresenceState {
    pub user_id: String,
    pub state: State,
    pub status_msg: Option<String>,
    pub last_active_ts: u64,
    pub currently_active: bool,
}

/// Whose presence a user is interested in, beyond the users it shares a room with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interested {
    Users(BTreeSet<String>),
    /// Every user's (Synapse's `PresenceRouter.ALL_USERS`).
    All,
}

/// Synapse's presence router callbacks.
pub trait PresenceRouter {
    /// For each user who should receive some of `states`, those states.
    fn get_users_for_states(&self, states: &[UserPresenceState]) -> BTreeMap<String, BTreeSet<UserPresenceState>>;
    /// The users whose presence `user_id` receives, or all users.
    fn get_interested_users(&self, user_id: &str) -> Interested;
}

type Constructor = fn(&Config) -> Box<dyn PresenceRouter>;

/// **The registration point:** every router the server can run, by the name that
/// `PRESENCE_ROUTERS` lists it under.
pub const REGISTERED: &[(&str, Constructor)] = &[
    // The example of Synapse's docs: @bob's and @charlie's presence goes to @alice.
    ("docs_example", |c| Box::new(DocsExample::new(c.server_name.as_str()))),
    // For the end-to-end tests of composition; see its documentation.
    ("test_union", |c| Box::new(TestUnion::new(c.server_name.as_str()))),
];

pub fn is_registered(name: &str) -> bool {
    REGISTERED.iter().any(|(n, _)| *n == name)
}

/// The configured routers, composed: the built-in one when configured, then `PRESENCE_ROUTERS`
/// in order.
pub fn configured(config: &Config) -> Routers {
    let mut routers: Vec<Box<dyn PresenceRouter>> = Vec::new();
    let builtin = &config.presence_router;
    if !builtin.always_send_to_users.is_empty() || !builtin.blacklisted_users.is_empty() {
        routers.push(Box::new(AlwaysSend::new(builtin)));
    }
    for name in &config.presence_routers {
        if let Some((_, make)) = REGISTERED.iter().find(|(n, _)| n == name) {
            routers.push(make(config));
        }
    }
    Routers(routers)
}

/// Several routers composed as Synapse composes presence router modules.
pub struct Routers(pub Vec<Box<dyn PresenceRouter>>);

impl PresenceRouter for Routers {
    /// The maps merged: the sets under the same user are united.
    fn get_users_for_states(&self, states: &[UserPresenceState]) -> BTreeMap<String, BTreeSet<UserPresenceState>> {
        let mut merged: BTreeMap<String, BTreeSet<UserPresenceState>> = BTreeMap::new();
        for router in &self.0 {
            for (user, routed) in router.get_users_for_states(states) {
                merged.entry(user).or_default().extend(routed);
            }
        }
        merged
    }

    /// The sets united in order; the first router that answers all users decides, and the
    /// routers after it are not asked.
    fn get_interested_users(&self, user_id: &str) -> Interested {
        let mut users = BTreeSet::new();
        for router in &self.0 {
            match router.get_interested_users(user_id) {
                Interested::All => return Interested::All,
                Interested::Users(more) => users.extend(more),
            }
        }
        Interested::Users(users)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    fn update(user: &str) -> UserPresenceState {
        UserPresenceState {
            user_id: user.into(),
            state: State::Online,
            status_msg: None,
            last_active_ts: 1,
            currently_active: true,
        }
    }

    /// Sends every update to `to`, is interested in `interested`, and counts its calls.
    struct Fixed {
        to: &'static str,
        interested: Option<&'static [&'static str]>,
        calls: Rc<Cell<u32>>,
    }

    impl PresenceRouter for Fixed {
        fn get_users_for_states(&self, states: &[UserPresenceState]) -> BTreeMap<String, BTreeSet<UserPresenceState>> {
            BTreeMap::from([(self.to.to_owned(), states.iter().cloned().collect())])
        }

        fn get_interested_users(&self, _user_id: &str) -> Interested {
            self.calls.set(self.calls.get() + 1);
            match self.interested {
                None => Interested::All,
                Some(users) => Interested::Users(users.iter().map(|u| u.to_string()).collect()),
            }
        }
    }

    fn fixed(
        to: &'static str,
        interested: Option<&'static [&'static str]>,
    ) -> (Box<dyn PresenceRouter>, Rc<Cell<u32>>) {
        let calls = Rc::new(Cell::new(0));
        (Box::new(Fixed { to, interested, calls: calls.clone() }), calls)
    }

    #[test]
    fn maps_merge_and_sets_under_one_user_unite() {
        let (a, _) = fixed("@x:hs", Some(&[]));
        let (b, _) = fixed("@x:hs", Some(&[]));
        let (c, _) = fixed("@y:hs", Some(&[]));
        let routers = Routers(vec![a, b, c]);
        let one = routers.get_users_for_states(&[update("@a:hs")]);
        assert_eq!(one.len(), 2);
        assert_eq!(one["@x:hs"].len(), 1);
        let two = Routers(vec![Box::new(TestUnion::new("hs")), Box::new(DocsExample::new("hs"))])
            .get_users_for_states(&[update("@bob:hs"), update("@dave:hs")]);
        let to_alice: Vec<&str> = two["@alice:hs"].iter().map(|s| s.user_id.as_str()).collect();
        assert_eq!(to_alice, ["@bob:hs", "@dave:hs"]);
        assert_eq!(two["@watcher:hs"].len(), 2);
    }

    #[test]
    fn interested_users_unite_in_order_until_one_answers_all() {
        let (a, a_calls) = fixed("@x:hs", Some(&["@p:hs"]));
        let (b, b_calls) = fixed("@x:hs", Some(&["@q:hs", "@p:hs"]));
        assert_eq!(
            Routers(vec![a, b]).get_interested_users("@u:hs"),
            Interested::Users(["@p:hs".to_owned(), "@q:hs".to_owned()].into())
        );
        assert_eq!((a_calls.get(), b_calls.get()), (1, 1));
        let (a, a_calls) = fixed("@x:hs", Some(&["@p:hs"]));
        let (all, all_calls) = fixed("@x:hs", None);
        let (after, after_calls) = fixed("@x:hs", Some(&["@q:hs"]));
        assert_eq!(Routers(vec![a, all, after]).get_interested_users("@u:hs"), Interested::All);
        assert_eq!((a_calls.get(), all_calls.get(), after_calls.get()), (1, 1, 0), "routers after ALL are not asked");
    }

    #[test]
    fn no_router_routes_nothing() {
        let none = Routers(Vec::new());
        assert!(none.get_users_for_states(&[update("@a:hs")]).is_empty());
        assert_eq!(none.get_interested_users("@a:hs"), Interested::Users(BTreeSet::new()));
    }
}
