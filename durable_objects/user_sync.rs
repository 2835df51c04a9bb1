//! One user's long-polling `/sync` waiters, woken by stream positions, never by data.
//!
//! A waiter comes with the positions its sync already covers. It is compared with the newest
//! positions this object has been told of, and registered in the same step: a change that lands
//! between the worker's read and the registration still wakes it. The woken sync reads D1 again.
//!
//! The object keeps nothing durable (a storage write per wake-up would halve a busy room's send
//! rate). After an eviction it does not know what it was told before, so it answers its first
//! waiter [`Waited::Fresh`]: that sync reads D1 once more and then waits again, on an object that
//! now hears every change.
//!
//! The object also owns the user's presence ([`super::user_presence`]): it sees the syncs that
//! make a user online, and its alarm runs the idle and offline timers.
//!
//! Many users are woken through the relay tree ([`notify_many`], [`super::relay`]): no
//! invocation calls more than `FANOUT_WIDTH` objects, whatever the number of users. And past
//! that width only users who may be waiting are called: an object that takes a waiter holds a lease in D1
//! (`sync_waiters`), and a fan-out first asks D1, in one query, which of its users hold one. The
//! lease is taken (or renewed) before the waiter registers, for [`LEASE_MS`], and renewed once
//! less than [`LEASE_MARGIN_MS`] is left, so it cannot run out under a waiter. An object whose
//! lease had lapsed may have been skipped, so it answers as a restarted object does
//! ([`Waited::Fresh`]) once the new lease is written: a commit that read D1 before that write
//! is in D1 for the re-read, and one after it calls the object.
//!
//! A waiter goes when its caller does: a client that disconnects cancels the worker's call, and
//! the call's abort signal (compatibility flag `enable_request_signal`) removes the waiter. Where
//! a disconnect goes unnoticed, each device holds at most [`MAX_WAITERS_PER_DEVICE`] waiters, and
//! a new one supersedes the device's oldest.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::{select, Either};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasm_bindgen_futures::JsFuture;
use worker::{durable_object, Delay, DurableObject, Env, Request, Response, State};

use super::relay;
use super::user_presence::{Owner, PresenceOp, Published};
use crate::appservice::ephemeral::Stream;
use crate::error::{internal, Result};
use crate::http::Reply;
use crate::storage::{sync_waiters, Db};
use crate::time::now_ms;

/// The longest a sync may wait, whatever timeout it asks for.
pub const MAX_WAIT_MS: u64 = 60_000;
/// Waiters one device may hold at once; more than a client needs, few enough to bound leaks.
pub const MAX_WAITERS_PER_DEVICE: usize = 8;
/// The number of streams a sync token covers.
pub const STREAMS: usize = 8;
/// How long a lease lasts: a user who keeps syncing writes it about once per this period.
const LEASE_MS: u64 = 10 * 60_000;
/// The least a lease must have left when a waiter registers: its longest wait, and a minute for
/// clocks that differ between the object and a fan-out.
const LEASE_MARGIN_MS: u64 = MAX_WAIT_MS + 60_000;

/// Positions in the streams a sync covers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Positions {
    pub events: u64,
    pub account_data: u64,
    pub to_device: u64,
    pub receipts: u64,
    pub typing: u64,
    pub presence: u64,
    /// Push notifications recorded for the user: their rooms' unread counts changed.
    pub notifications: u64,
    /// Changes of devices and end-to-end keys: `device_lists` in a sync.
    pub device_lists: u64,
}

impl Positions {
    pub fn as_array(&self) -> [u64; STREAMS] {
        [
            self.events,
            self.account_data,
            self.to_device,
            self.receipts,
            self.typing,
            self.presence,
            self.notifications,
            self.device_lists,
        ]
    }

    pub fn from_array(p: [u64; STREAMS]) -> Self {
        Positions {
            events: p[0],
            account_data: p[1],
            to_device: p[2],
            receipts: p[3],
            typing: p[4],
            presence: p[5],
            notifications: p[6],
            device_lists: p[7],
        }
    }

    fn any_beyond(&self, other: &Positions) -> bool {
        self.as_array().iter().zip(other.as_array()).any(|(a, b)| *a > b)
    }

    /// The larger of each position.
    pub fn max_with(&self, other: &Positions) -> Positions {
        let (a, b) = (self.as_array(), other.as_array());
        Positions::from_array(std::array::from_fn(|i| a[i].max(b[i])))
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SyncRequest {
    /// Something at these positions concerns the user, and the users of `relay`, whom this
    /// object tells in turn (see [`super::relay`]).
    Notify {
        positions: Positions,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        relay: Vec<String>,
    },
    /// Returns when something beyond `covered` concerns the user, after `timeout_ms`, or when
    /// the same device waits more than [`MAX_WAITERS_PER_DEVICE`] times at once. A wait of a
    /// sync that affects presence keeps the device online while it lasts.
    Wait {
        /// The object's user, whose lease it holds.
        #[serde(default)]
        user_id: String,
        covered: Positions,
        timeout_ms: u64,
        device: String,
        #[serde(default)]
        presence: bool,
    },
    /// Something that changes `user_id`'s presence, of which this object is the owner.
    Presence { user_id: String, change: PresenceOp },
}

/// Tells a user's waiters that something at `positions` concerns them.
pub async fn notify(env: &Env, user_id: &str, positions: Positions) -> Result<()> {
    notify_many(env, vec![user_id.to_owned()], positions).await
}

/// Tells the waiters of each of `users` that something at `positions` concerns them, through the
/// relay tree. Past the tree's width, only those who hold a lease (one D1 query); up to it, all of
/// them directly, which keeps the D1 round trip off the wake-up of a small room.
/// The first failure is returned once every call has ended.
pub async fn notify_many(env: &Env, users: Vec<String>, positions: Positions) -> Result<()> {
    let users = match users.len() {
        0 => return Ok(()),
        n if n <= relay::width(env) => users,
        // Calling a user who is not waiting is harmless: on a failed read, call them all.
        _ => match leased(env, &users).await {
            Ok(leased) => leased,
            Err(e) => {
                crate::log::error(&format!("reading sync leases: {e:?}"));
                users
            }
        },
    };
    relay_many(env, users, positions).await
}

async fn leased(env: &Env, users: &[String]) -> Result<Vec<String>> {
    sync_waiters::leased(&Db::new(env)?, users, now_ms()).await
}

/// Tells each of `users` through the relay tree: at most [`relay::width`] calls from this
/// invocation, whatever their number.
async fn relay_many(env: &Env, users: Vec<String>, positions: Positions) -> Result<()> {
    let calls = relay::groups(users, relay::width(env)).into_iter().map(|mut group| {
        let head = group.remove(0);
        async move { call(env, &head, &SyncRequest::Notify { positions, relay: group }).await }
    });
    futures::future::join_all(calls).await.into_iter().find(Result::is_err).unwrap_or(Ok(Value::Null)).map(|_| ())
}

/// Hands a presence change to the user's presence owner; returns once it is written.
pub async fn presence(env: &Env, user_id: &str, op: PresenceOp) -> Result<()> {
    call(env, user_id, &SyncRequest::Presence { user_id: user_id.to_owned(), change: op }).await.map(|_| ())
}

/// Tells the joined members of a room that something at `positions` concerns them.
pub async fn notify_room(env: &Env, db: &crate::storage::Db, room_id: &str, positions: Positions) -> Result<()> {
    let members = crate::storage::current_state::members(db, room_id).await?;
    let joined = members.into_iter().filter(|(_, m)| m == "join").map(|(user, _)| user).collect();
    notify_many(env, joined, positions).await
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Waited {
    /// Something beyond the covered positions concerns the user.
    Woken,
    TimedOut,
    /// The object was just (re)started and cannot tell what it missed: read D1 again, then wait.
    Fresh,
    /// The same device waited too many times at once; this, its oldest wait, gives way.
    Superseded,
}

/// Waits until something beyond `covered` concerns the user, or `timeout_ms` passes.
/// `presence`: the sync affects presence, and its device counts as syncing while it waits.
pub async fn wait(
    env: &Env,
    user_id: &str,
    device: &str,
    covered: Positions,
    timeout_ms: u64,
    presence: bool,
) -> Result<Waited> {
    let request =
        SyncRequest::Wait { user_id: user_id.to_owned(), covered, timeout_ms, device: device.to_owned(), presence };
    let reply = call(env, user_id, &request).await?;
    serde_json::from_value(reply).map_err(|e| internal("user sync reply", e))
}

async fn call(env: &Env, user_id: &str, request: &SyncRequest) -> Result<Value> {
    match super::post(env, "USER_SYNC", user_id, "https://user-sync/", request).await? {
        (200, text) => serde_json::from_str(&text).map_err(|e| internal("user sync reply", e)),
        (_, text) => Err(internal("user sync", text)),
    }
}

/// A registered waiter.
struct Waiter {
    id: u64,
    device: String,
    covered: Positions,
    wake: oneshot::Sender<Waited>,
}

/// How a wait request was taken.
enum Registration {
    /// Answered at once.
    Answered(Waited),
    /// Registered under this ID; the receiver hears how it ends, unless it times out first.
    Waiting(u64, oneshot::Receiver<Waited>),
}

/// One user's waiters and the newest positions they were told of: the object's logic, apart
/// from its clock and its requests.
#[derive(Default)]
struct Waiters {
    /// The newest positions notified; `None` until the first request after a (re)start.
    latest: Option<Positions>,
    next_id: u64,
    waiting: Vec<Waiter>,
    /// Until when D1 has this object's lease, as far as it knows (0: none since it started).
    lease_until: u64,
}

/// What a new waiter needs of the lease first.
#[derive(Debug, PartialEq, Eq)]
enum Lease {
    /// It lasts past the waiter's longest wait.
    Held,
    /// It holds now but might not to the waiter's end: extend it to this time.
    Renew(u64),
    /// It lapsed (or was never taken): take it until this time, then start afresh.
    Lapsed(u64),
}

impl Waiters {
    fn lease(&self, now: u64) -> Lease {
        if self.lease_until > now + LEASE_MARGIN_MS {
            Lease::Held
        } else if self.lease_until > now {
            Lease::Renew(now + LEASE_MS)
        } else {
            Lease::Lapsed(now + LEASE_MS)
        }
    }

    /// The lease is written until `until`. After a lapse, wake-ups may have been skipped: the
    /// object forgets what it was told, so that its next waiter reads D1 again.
    fn leased(&mut self, until: u64, lapsed: bool) {
        self.lease_until = self.lease_until.max(until);
        if lapsed {
            self.latest = None;
        }
    }

    /// Compares `covered` with the newest positions and registers the waiter in one step, with
    /// no await in between: nothing notified since can be missed.
    fn register(&mut self, device: &str, covered: Positions) -> Registration {
        let Some(latest) = self.latest else {
            self.latest = Some(Positions::default());
            return Registration::Answered(Waited::Fresh);
        };
        if latest.any_beyond(&covered) {
            return Registration::Answered(Waited::Woken);
        }
        if self.waiting.iter().filter(|w| w.device == device).count() >= MAX_WAITERS_PER_DEVICE {
            if let Some(oldest) = self.waiting.iter().position(|w| w.device == device) {
                let _ = self.waiting.remove(oldest).wake.send(Waited::Superseded);
            }
        }
        let (wake, woken) = oneshot::channel();
        self.next_id += 1;
        self.waiting.push(Waiter { id: self.next_id, device: device.to_owned(), covered, wake });
        Registration::Waiting(self.next_id, woken)
    }

    /// Wakes the waiters that `positions` tells something new.
    fn notify(&mut self, positions: &Positions) {
        self.latest = Some(self.latest.unwrap_or_default().max_with(positions));
        let (woken, waiting) =
            std::mem::take(&mut self.waiting).into_iter().partition::<Vec<_>, _>(|w| positions.any_beyond(&w.covered));
        self.waiting = waiting;
        for waiter in woken {
            let _ = waiter.wake.send(Waited::Woken);
        }
    }

    /// Forgets a waiter whose wait ended.
    fn remove(&mut self, id: u64) {
        self.waiting.retain(|w| w.id != id);
    }
}

#[durable_object]
pub struct UserSync {
    state: State,
    env: Env,
    waiters: Rc<RefCell<Waiters>>,
    presence: Rc<Owner>,
}

impl DurableObject for UserSync {
    fn new(state: State, env: Env) -> Self {
        let presence = Rc::new(Owner::new(same_state(&state), env.clone()));
        Self { state, env, waiters: Rc::default(), presence }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let outcome = match serde_json::from_str::<SyncRequest>(&req.text().await?) {
            Ok(SyncRequest::Notify { positions, relay }) => {
                self.waiters.borrow_mut().notify(&positions);
                if !relay.is_empty() {
                    let env = self.env.clone();
                    self.state.wait_until(async move {
                        if let Err(e) = relay_many(&env, relay, positions).await {
                            crate::log::error(&format!("relaying a wake-up: {e:?}"));
                        }
                    });
                }
                Reply::json(&true)
            }
            Ok(SyncRequest::Wait { user_id, covered, timeout_ms, device, presence }) => {
                self.take_lease(&user_id).await;
                Reply::json(&self.wait(&req, &device, covered, timeout_ms, presence).await)
            }
            Ok(SyncRequest::Presence { user_id, change }) => match self.presence.apply(&user_id, change).await {
                Ok(published) => {
                    self.announce(published);
                    Reply::json(&true)
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(internal("sync request", e)),
        };
        match outcome {
            Ok(reply) => reply.into_response(None),
            Err(e) => Reply::error(&e).into_response(None),
        }
    }

    async fn alarm(&self) -> worker::Result<Response> {
        match self.presence.alarm().await {
            Ok(published) => {
                self.announce(published);
                Response::empty()
            }
            Err(e) => {
                // Thrown, the alarm is tried again; settling twice changes nothing.
                crate::log::error(&format!("presence alarm: {e:?}"));
                Err(worker::Error::RustError(format!("{e:?}")))
            }
        }
    }
}

impl UserSync {
    /// Makes sure D1 has the lease that fan-outs look for before a waiter registers.
    async fn take_lease(&self, user_id: &str) {
        let (until, lapsed) = match self.waiters.borrow().lease(now_ms()) {
            Lease::Held => return,
            Lease::Renew(until) => (until, false),
            Lease::Lapsed(until) => (until, true),
        };
        let written = match Db::new(&self.env) {
            Ok(db) => sync_waiters::lease(&db, user_id, until).await,
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => self.waiters.borrow_mut().leased(until, lapsed),
            // The waiter still waits: fan-outs may skip it until its timeout, but lose nothing.
            Err(e) => crate::log::error(&format!("taking a sync lease: {e:?}")),
        }
    }

    async fn wait(&self, req: &Request, device: &str, covered: Positions, timeout_ms: u64, presence: bool) -> Waited {
        let registration = self.waiters.borrow_mut().register(device, covered);
        let (id, woken) = match registration {
            Registration::Answered(waited) => return waited,
            Registration::Waiting(id, woken) => (id, woken),
        };
        if presence {
            self.presence.wait_started(device);
        }
        let timeout = Delay::from(Duration::from_millis(timeout_ms.min(MAX_WAIT_MS)));
        let waited = match select(woken, select(timeout, caller_gone(req))).await {
            Either::Left((Ok(waited), _)) => waited,
            Either::Left((Err(_), _)) | Either::Right(_) => Waited::TimedOut,
        };
        self.waiters.borrow_mut().remove(id);
        if presence {
            // The sync answers now: the offline timer runs from here, set after the answer.
            let (owner, device, this) = (self.presence.clone(), device.to_owned(), self.announcer());
            self.state.wait_until(async move {
                match owner.wait_ended(&device).await {
                    Ok(published) => this.announce(published),
                    Err(e) => crate::log::error(&format!("presence after a wait: {e:?}")),
                }
            });
        }
        waited
    }

    fn announcer(&self) -> Announcer {
        Announcer { state: same_state(&self.state), env: self.env.clone(), waiters: self.waiters.clone() }
    }

    fn announce(&self, published: Option<Published>) {
        self.announcer().announce(published);
    }
}

/// Another handle on the object's state.
fn same_state(state: &State) -> State {
    use wasm_bindgen::JsCast;
    let raw: &wasm_bindgen::JsValue = state.as_raw().as_ref();
    State::from(raw.clone().unchecked_into::<worker::worker_sys::DurableObjectState>())
}

/// Wakes the syncs a presence change concerns: the user's own here, the others' through the
/// tree, after the answer.
struct Announcer {
    state: State,
    env: Env,
    waiters: Rc<RefCell<Waiters>>,
}

impl Announcer {
    fn announce(&self, published: Option<Published>) {
        let Some(Published { position, recipients }) = published else { return };
        let positions = Positions { presence: position, ..Positions::default() };
        self.waiters.borrow_mut().notify(&positions);
        let env = self.env.clone();
        self.state.wait_until(async move {
            // Application services that take ephemeral data read the change from D1.
            if let Ok(config) = crate::config::Config::get(&env) {
                let (server_name, users) = (config.server_name.to_string(), Some(recipients.clone()));
                crate::appservice::ephemeral::poke_now(env.clone(), server_name, Stream::Ephemeral, users).await;
            }
            if let Err(e) = notify_many(&env, recipients, positions).await {
                // A missed wake-up delays a sync until its timeout; the change is recorded.
                crate::log::error(&format!("waking syncs for a presence change: {e:?}"));
            }
        });
    }
}

/// Resolves when the caller of `req` goes away: its abort signal fires when the worker's call is
/// cancelled, as it is when the client disconnects.
fn caller_gone(req: &Request) -> JsFuture {
    let signal = req.inner().signal();
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if signal.aborted() {
            let _ = resolve.call0(&wasm_bindgen::JsValue::UNDEFINED);
        } else {
            signal.set_onabort(Some(&resolve));
        }
    });
    JsFuture::from(promise)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(events: u64) -> Positions {
        Positions { events, ..Positions::default() }
    }

    fn waiting(r: Registration) -> (u64, oneshot::Receiver<Waited>) {
        match r {
            Registration::Waiting(id, rx) => (id, rx),
            Registration::Answered(w) => panic!("answered {w:?}"),
        }
    }

    fn answered(r: Registration) -> Waited {
        match r {
            Registration::Answered(w) => w,
            Registration::Waiting(..) => panic!("waiting"),
        }
    }

    #[test]
    fn a_fresh_object_answers_fresh_once_then_waits() {
        let mut w = Waiters::default();
        assert_eq!(answered(w.register("D", at(5))), Waited::Fresh);
        let (_, mut rx) = waiting(w.register("D", at(5)));
        assert_eq!(rx.try_recv().unwrap(), None);
    }

    #[test]
    fn a_change_before_registration_is_not_missed() {
        let mut w = Waiters { latest: Some(at(0)), ..Waiters::default() };
        w.notify(&Positions { typing: 3, ..at(7) });
        assert_eq!(answered(w.register("D", at(6))), Waited::Woken);
        assert_eq!(answered(w.register("D", Positions { typing: 2, ..at(7) })), Waited::Woken);
        let _still = waiting(w.register("D", Positions { typing: 3, ..at(7) }));
    }

    #[test]
    fn only_waiters_behind_the_change_wake() {
        let mut w = Waiters { latest: Some(at(0)), ..Waiters::default() };
        let (_, mut behind) = waiting(w.register("A", at(1)));
        let (_, mut ahead) = waiting(w.register("B", Positions { presence: 4, ..at(1) }));
        w.notify(&Positions { presence: 4, ..at(0) });
        assert_eq!(behind.try_recv().unwrap(), Some(Waited::Woken));
        assert_eq!(ahead.try_recv().unwrap(), None);
        assert_eq!(w.waiting.len(), 1);
    }

    #[test]
    fn a_device_over_its_limit_supersedes_its_oldest_waiter_only() {
        let mut w = Waiters { latest: Some(at(0)), ..Waiters::default() };
        let (_, mut other) = waiting(w.register("OTHER", at(0)));
        let mut mine: Vec<_> = (0..MAX_WAITERS_PER_DEVICE).map(|_| waiting(w.register("D", at(0))).1).collect();
        let _newest = waiting(w.register("D", at(0)));
        assert_eq!(mine[0].try_recv().unwrap(), Some(Waited::Superseded));
        for rx in &mut mine[1..] {
            assert_eq!(rx.try_recv().unwrap(), None);
        }
        assert_eq!(other.try_recv().unwrap(), None);
        assert_eq!(w.waiting.len(), MAX_WAITERS_PER_DEVICE + 1);
    }

    #[test]
    fn a_lease_is_taken_first_renewed_before_it_can_run_out_and_a_lapse_starts_afresh() {
        let mut w = Waiters::default();
        assert_eq!(w.lease(1_000), Lease::Lapsed(1_000 + LEASE_MS));
        w.leased(1_000 + LEASE_MS, true);
        assert_eq!(answered(w.register("D", at(5))), Waited::Fresh);
        assert_eq!(w.lease(2_000), Lease::Held);
        let _waiting = waiting(w.register("D", at(5)));
        // Close enough to the end that a wait could outlast it.
        let late = 1_000 + LEASE_MS - LEASE_MARGIN_MS;
        assert_eq!(w.lease(late), Lease::Renew(late + LEASE_MS));
        w.notify(&at(7));
        w.leased(late + LEASE_MS, false);
        assert_eq!(answered(w.register("D", at(5))), Waited::Woken, "a renewal keeps what it was told");
        // Past its end, fan-outs may have skipped the object: its next waiter reads D1 again.
        let after = late + LEASE_MS + 1;
        assert_eq!(w.lease(after), Lease::Lapsed(after + LEASE_MS));
        w.leased(after + LEASE_MS, true);
        assert_eq!(answered(w.register("D", at(5))), Waited::Fresh);
    }

    #[test]
    fn a_removed_waiter_frees_its_place() {
        let mut w = Waiters { latest: Some(at(0)), ..Waiters::default() };
        let mut mine: Vec<_> = (0..MAX_WAITERS_PER_DEVICE).map(|_| waiting(w.register("D", at(0)))).collect();
        let (gone, _) = mine.pop().unwrap();
        w.remove(gone);
        let _replacement = waiting(w.register("D", at(0)));
        for (_, rx) in &mut mine {
            assert_eq!(rx.try_recv().unwrap(), None);
        }
    }
}
