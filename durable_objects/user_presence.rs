//! The presence half of a user's `UserSync` object: it owns the user's presence, decides it
//! ([`UserPresence`]) and drives its timers with the object's alarm.
//!
//! The owner is the object that already sees the user's syncs: each sync that affects presence
//! tells it when it starts, and its wait, if any, is held here, so the owner learns when it ends
//! without a call of its own. A waiting sync also keeps the object in memory, so the devices that
//! sync are kept in memory only: an object that was evicted had no sync in flight, and one that
//! syncs again tells it at once. The stored row in D1 is what it starts from after a restart.
//!
//! The alarm rings at the next deadline ([`UserPresence::next_deadline`]); it is moved only
//! earlier, and one that rings early just settles and sets the next. A repeated alarm settles
//! again and changes nothing: only a change is written, at a new position, and announced.

use std::cell::RefCell;

use futures::lock::Mutex;
use serde::{Deserialize, Serialize};
use worker::{Env, State as ObjectState};

use crate::config::Config;
use crate::error::{internal, Result};
use crate::presence::router::{self, PresenceRouter, UserPresenceState};
use crate::presence::state::{State, UserPresence};
use crate::storage::{presence, Db};
use crate::time::now_ms;

/// The storage key of the user whose object this is: an alarm comes without a request.
const USER_ID: &str = "presence_user_id";

/// What the worker tells a user's presence owner.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PresenceOp {
    /// A sync of `device` that affects presence starts, asking for `wants`; `active` when it
    /// asked for `online` explicitly.
    Sync { device: String, wants: State, active: bool },
    /// The user sent an event.
    Active,
    /// `PUT /presence/{userId}/status`.
    Set { state: State, status_msg: Option<String> },
}

/// A change to announce: the new position, and who must be woken (the user excluded).
pub struct Published {
    pub position: u64,
    pub recipients: Vec<String>,
}

#[derive(Default)]
struct Inner {
    user_id: Option<String>,
    presence: Option<UserPresence>,
    /// When the alarm is set for, as far as this instance knows; `None` until it looked.
    alarm_at: Option<Option<u64>>,
}

pub struct Owner {
    object: ObjectState,
    env: Env,
    inner: RefCell<Inner>,
    /// One step at a time: a step reads, decides and writes D1 before the next one reads.
    busy: Mutex<()>,
}

impl Owner {
    pub fn new(object: ObjectState, env: Env) -> Self {
        Owner { object, env, inner: RefCell::default(), busy: Mutex::new(()) }
    }

    /// Applies what the worker says; returns the change to announce, if any.
    pub async fn apply(&self, user_id: &str, op: PresenceOp) -> Result<Option<Published>> {
        let _busy = self.busy.lock().await;
        self.load(Some(user_id)).await?;
        let now = now_ms();
        let changed = self.with_presence(|p| match op {
            PresenceOp::Sync { device, wants, active } => p.sync_started(&device, wants, active, now),
            PresenceOp::Active => p.active(now),
            PresenceOp::Set { state, status_msg } => p.set(state, status_msg, now),
        });
        self.finish(changed, now).await
    }

    /// A sync of `device` that affects presence starts waiting.
    pub fn wait_started(&self, device: &str) {
        if let Some(p) = self.inner.borrow_mut().presence.as_mut() {
            p.wait_started(device);
        }
    }

    /// A wait of `device` ended: the offline timer runs from now.
    pub async fn wait_ended(&self, device: &str) -> Result<Option<Published>> {
        let _busy = self.busy.lock().await;
        let now = now_ms();
        let changed = self.with_presence(|p| p.wait_ended(device, now));
        self.finish(changed, now).await
    }

    /// The alarm: the timers as of now.
    pub async fn alarm(&self) -> Result<Option<Published>> {
        let _busy = self.busy.lock().await;
        self.inner.borrow_mut().alarm_at = Some(None);
        if !self.load(None).await? {
            return Ok(None);
        }
        let now = now_ms();
        let changed = self.with_presence(|p| p.settle(now));
        self.finish(changed, now).await
    }

    fn with_presence(&self, step: impl FnOnce(&mut UserPresence) -> bool) -> bool {
        self.inner.borrow_mut().presence.as_mut().is_some_and(step)
    }

    /// Loads the user's stored presence unless it is loaded; false when the object does not
    /// know whose it is (it never owned a presence).
    async fn load(&self, user_id: Option<&str>) -> Result<bool> {
        if self.inner.borrow().presence.is_some() {
            return Ok(true);
        }
        let storage = self.object.storage();
        let stored: Option<String> = storage.get(USER_ID).await?;
        let user_id = match (user_id, stored) {
            (Some(given), Some(stored)) if given == stored => stored,
            (Some(given), _) => {
                storage.put(USER_ID, given).await?;
                given.to_owned()
            }
            (None, Some(stored)) => stored,
            (None, None) => return Ok(false),
        };
        let config = Config::get(&self.env).map_err(|e| internal("configuration", e))?;
        let row = presence::get(&Db::new(&self.env)?, &user_id).await?;
        let shown = row.map(|r| r.shown()).transpose()?;
        let mut inner = self.inner.borrow_mut();
        inner.presence = Some(UserPresence::load(shown, config.presence_timeouts));
        inner.user_id = Some(user_id);
        Ok(true)
    }

    /// Writes a change and finds whom it concerns; then sets the alarm for what comes next.
    async fn finish(&self, changed: bool, now: u64) -> Result<Option<Published>> {
        let published = match changed {
            true => match self.publish().await {
                Ok(published) => Some(published),
                Err(e) => {
                    // What others see was not written: start again from D1 at the next step.
                    self.inner.borrow_mut().presence = None;
                    return Err(e);
                }
            },
            false => None,
        };
        self.schedule(now).await?;
        Ok(published)
    }

    async fn publish(&self) -> Result<Published> {
        let (user_id, shown) = {
            let inner = self.inner.borrow();
            match (&inner.user_id, &inner.presence) {
                (Some(user), Some(p)) => (user.clone(), p.shown().clone()),
                _ => return Err(internal("presence owner", "nothing loaded")),
            }
        };
        let (position, co_members) = presence::write(&Db::new(&self.env)?, &user_id, &shown).await?;
        let config = Config::get(&self.env).map_err(|e| internal("configuration", e))?;
        let update = UserPresenceState {
            user_id: user_id.clone(),
            state: shown.state,
            status_msg: shown.status_msg,
            last_active_ts: shown.last_active_ts,
            currently_active: shown.currently_active,
        };
        let routed = router::configured(&config).get_users_for_states(&[update]);
        let mut recipients: Vec<String> = co_members.into_iter().chain(routed.into_keys()).collect();
        recipients.sort();
        recipients.dedup();
        recipients.retain(|u| *u != user_id);
        Ok(Published { position, recipients })
    }

    /// Moves the alarm earlier when the next deadline is before it.
    async fn schedule(&self, now: u64) -> Result<()> {
        let Some(deadline) = self.inner.borrow().presence.as_ref().and_then(UserPresence::next_deadline) else {
            return Ok(());
        };
        let storage = self.object.storage();
        let known = self.inner.borrow().alarm_at;
        let set_for = match known {
            Some(at) => at,
            None => storage.get_alarm().await?.map(|at| at.max(0) as u64),
        };
        if set_for.is_some_and(|at| at <= deadline) {
            self.inner.borrow_mut().alarm_at = Some(set_for);
            return Ok(());
        }
        storage.set_alarm(deadline.saturating_sub(now) as i64).await?;
        self.inner.borrow_mut().alarm_at = Some(Some(deadline));
        Ok(())
    }
}
