//! One user's push deliveries: a durable queue per pusher, sent to push gateways in order and
//! retried with backoff through alarms, so that one slow or failing gateway never delays
//! another pusher's or another user's pushes.
//!
//! A request stores one queue item per (pusher, notification) in the object's SQLite storage and
//! answers once they are stored; delivery runs after the answer. Each pass claims the pushers
//! that have items and no retry pending, marks them in flight (one request in flight per
//! pusher), and sends each pusher's items in order, one request each, with the pushers'
//! settings and the user's unread count: those the room's writer read with the notifications,
//! for the pass that follows an enqueue; current ones from D1 for any other pass. A failed request leaves the item at the head and
//! the pusher waits 1, 2, 4 s … up to an hour before its next try; a new event never jumps that
//! wait. After every pass the alarm rings by the earliest moment something is due, so the
//! queue survives evictions: the alarm runs a pass too, and a pass sends only what is still
//! stored, so a repeated alarm does no harm (nor one left ringing when nothing is queued,
//! which saves the storage write of deleting it). A pass sends a bounded number of requests (the
//! platform limits subrequests per invocation) and leaves the rest to an immediate alarm.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use futures::future::{join_all, select, Either};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use worker::{
    durable_object, AbortController, Delay, DurableObject, Env, Fetch, Headers, Method, Request, RequestInit, Response,
    SqlCursor, SqlStorage, SqlStorageValue, State, Storage,
};

use super::relay;
use crate::error::{internal, Result};
use crate::http::Reply;
use crate::push::gateway::{self, Target};
use crate::push::notification::EventNotification;
use crate::storage::pushers::{self, Pusher};
use crate::storage::{event_push_actions, Db};
use crate::time::now_ms;

/// The most gateway requests one pass makes: with a relay's calls (at most
/// [`relay::width`]), below the 50 subrequests of an invocation.
const MAX_SENDS_PER_PASS: usize = 24;
/// How long a gateway may take to answer.
const GATEWAY_TIMEOUT_MS: u64 = 30_000;
/// While a pusher is in flight, the alarm is set this far ahead, in case the object is evicted
/// before the pass ends; the pass sets it properly when it does.
const IN_FLIGHT_BACKSTOP_MS: u64 = 2 * GATEWAY_TIMEOUT_MS;
/// After a pass that failed (D1 unreachable), the earliest the next one runs.
const FAILED_PASS_RETRY_MS: u64 = 10_000;

/// What the worker and the room writers ask of a user's push queue.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PushRequest {
    /// Events that notify the user, in stream order: queue them for each of `pushers`, the
    /// user's pushers, whose badge is now `unread`; then hand `relay` on (see [`super::relay`]).
    Enqueue {
        notifications: Vec<EventNotification>,
        pushers: Vec<Pusher>,
        unread: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        relay: Vec<Delivery>,
    },
    /// The user's counts changed without a new notification (a read receipt): send each pusher
    /// a counts-only update.
    Badge,
}

/// What one user's push queue gets: notifications for the user's pushers, as read with the
/// user's badge count.
#[derive(Debug, Serialize, Deserialize)]
pub struct Delivery {
    pub user_id: String,
    pub notifications: Vec<EventNotification>,
    pub pushers: Vec<Pusher>,
    pub unread: u64,
}

/// Queues each delivery in its user's push queue, through the relay tree: at most
/// [`relay::width`] calls from this invocation. Returns once this invocation's calls have
/// ended, with the first failure; the queues store what they get before they answer.
pub async fn enqueue_many(env: &Env, deliveries: Vec<Delivery>) -> Result<()> {
    let calls = relay::groups(deliveries, relay::width(env)).into_iter().map(|mut group| {
        let Delivery { user_id, notifications, pushers, unread } = group.remove(0);
        async move {
            let request = PushRequest::Enqueue { notifications, pushers, unread, relay: group };
            call(env, &user_id, &request).await
        }
    });
    futures::future::join_all(calls).await.into_iter().find(Result::is_err).unwrap_or(Ok(()))
}

/// Tells the user's pushers that the counts changed.
pub async fn badge(env: &Env, user_id: &str) -> Result<()> {
    call(env, user_id, &PushRequest::Badge).await
}

async fn call(env: &Env, user_id: &str, request: &PushRequest) -> Result<()> {
    // The object learns whose queue it is from the URL: alarms come without a request.
    let url = worker::Url::parse_with_params("https://push-queue/", [("user", user_id)])
        .map_err(|e| internal("push queue URL", e))?;
    match super::post(env, "PUSH_QUEUE", user_id, url.as_str(), request).await? {
        (200, _) => Ok(()),
        (_, text) => Err(internal("push queue", text)),
    }
}

/// The object's own tables: whose queue it is, the queue, and each pusher's retry state.
const SCHEMA: &str = "\
    CREATE TABLE IF NOT EXISTS owner (id INTEGER PRIMARY KEY CHECK (id = 1), user_id TEXT NOT NULL); \
    CREATE TABLE IF NOT EXISTS queue ( \
        id INTEGER PRIMARY KEY AUTOINCREMENT, \
        app_id TEXT NOT NULL, \
        pushkey TEXT NOT NULL, \
        notification TEXT, \
        queued_ms INTEGER NOT NULL); \
    CREATE INDEX IF NOT EXISTS queue_by_pusher ON queue (app_id, pushkey, id); \
    CREATE TABLE IF NOT EXISTS pusher_state ( \
        app_id TEXT NOT NULL, \
        pushkey TEXT NOT NULL, \
        retry_at INTEGER NOT NULL, \
        delay_ms INTEGER NOT NULL, \
        last_unread INTEGER, \
        PRIMARY KEY (app_id, pushkey))";
// `queue.notification` is an `EventNotification`'s JSON, or NULL for a counts-only update.
// `pusher_state`: no try before `retry_at` (ms); `delay_ms` is the wait after the last failure,
// 0 after a success; `last_unread` is the count the gateway last got.
const SET_OWNER: &str = "INSERT OR REPLACE INTO owner (id, user_id) VALUES (1, ?)";
const OWNER: &str = "SELECT user_id FROM owner";
const PUSH: &str = "INSERT INTO queue (app_id, pushkey, notification, queued_ms) VALUES (?, ?, ?, ?)";
const PENDING: &str = "SELECT q.app_id, q.pushkey, coalesce(s.retry_at, 0) AS retry_at \
     FROM (SELECT DISTINCT app_id, pushkey FROM queue) q \
     LEFT JOIN pusher_state s ON s.app_id = q.app_id AND s.pushkey = q.pushkey";
const HEAD: &str = "SELECT id, notification FROM queue WHERE app_id = ? AND pushkey = ? ORDER BY id LIMIT ?";
const STATE: &str = "SELECT delay_ms, last_unread FROM pusher_state WHERE app_id = ? AND pushkey = ?";
const DONE: &str = "DELETE FROM queue WHERE id = ?";
const SUCCEEDED: &str = "INSERT INTO pusher_state (app_id, pushkey, retry_at, delay_ms, last_unread) \
     VALUES (?, ?, 0, 0, ?) ON CONFLICT (app_id, pushkey) DO UPDATE SET \
     retry_at = 0, delay_ms = 0, last_unread = excluded.last_unread";
const FAILED: &str = "INSERT INTO pusher_state (app_id, pushkey, retry_at, delay_ms) VALUES (?, ?, ?, ?) \
     ON CONFLICT (app_id, pushkey) DO UPDATE SET retry_at = excluded.retry_at, delay_ms = excluded.delay_ms";
const EXPIRE: &str = "DELETE FROM queue WHERE app_id = ? AND pushkey = ? AND queued_ms <= ?";
const FORGET_QUEUE: &str = "DELETE FROM queue WHERE app_id = ? AND pushkey = ?";
const FORGET_STATE: &str = "DELETE FROM pusher_state WHERE app_id = ? AND pushkey = ?";

/// A pusher as the queue knows it: (app_id, pushkey).
type Key = (String, String);

/// A pusher with queued items, and when it may be tried.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Pending {
    app_id: String,
    pushkey: String,
    retry_at: u64,
}

impl Pending {
    fn key(&self) -> Key {
        (self.app_id.clone(), self.pushkey.clone())
    }
}

/// The pushers a pass may try now: due, and not in flight in another pass.
fn ready(now: u64, pending: &[Pending], in_flight: &BTreeSet<Key>) -> Vec<Key> {
    pending.iter().filter(|p| p.retry_at <= now && !in_flight.contains(&p.key())).map(Pending::key).collect()
}

/// When the alarm should next ring: the earliest moment a pusher with items is due, a backstop
/// for the ones in flight, and not before a pause after a failed pass. `None`: nothing is queued.
fn next_alarm(now: u64, pending: &[Pending], in_flight: &BTreeSet<Key>, pass_failed: bool) -> Option<u64> {
    let due = |p: &Pending| {
        if in_flight.contains(&p.key()) {
            now + IN_FLIGHT_BACKSTOP_MS
        } else {
            p.retry_at.max(now)
        }
    };
    let earliest = pending.iter().map(due).min()?;
    Some(if pass_failed { earliest.max(now + FAILED_PASS_RETRY_MS) } else { earliest })
}

/// Whether an alarm set to ring at `set` serves for one due at `at`: it rings no later, and
/// not before `now` (an overdue alarm may be ringing already, its pass over).
fn keeps(set: Option<u64>, now: u64, at: u64) -> bool {
    set.is_some_and(|set| now <= set && set <= at)
}

/// The pushers one pass delivers to, in flight until it is dropped.
struct Claim {
    keys: Vec<Key>,
    shared: Rc<Shared>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut in_flight = self.shared.in_flight.borrow_mut();
        for key in &self.keys {
            in_flight.remove(key);
        }
    }
}

/// A queued item.
#[derive(Deserialize)]
struct Item {
    id: i64,
    notification: Option<String>,
}

#[derive(Default, Deserialize)]
struct PusherState {
    delay_ms: u64,
    last_unread: Option<u64>,
}

/// What the object's passes share, whichever invocation runs them.
struct Shared {
    env: Env,
    sql: SqlStorage,
    storage: Storage,
    in_flight: RefCell<BTreeSet<Key>>,
    owner: RefCell<Option<String>>,
    /// When the alarm this instance set will ring, until it does; `None` when unknown.
    alarm_at: Cell<Option<u64>>,
}

#[durable_object]
pub struct PushQueue {
    state: State,
    shared: Rc<Shared>,
}

impl DurableObject for PushQueue {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        if let Err(e) = sql.exec(SCHEMA, None) {
            crate::log::error(&format!("push queue schema: {e}"));
        }
        let shared = Shared {
            env,
            sql,
            storage: state.storage(),
            in_flight: RefCell::default(),
            owner: RefCell::default(),
            alarm_at: Cell::default(),
        };
        Self { state, shared: Rc::new(shared) }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let user = req.url()?.query_pairs().find(|(k, _)| k == "user").map(|(_, v)| v.into_owned());
        let outcome = match (user, serde_json::from_str::<PushRequest>(&req.text().await?)) {
            (Some(user), Ok(request)) => self.queue(&user, request).await,
            (None, _) => Err(internal("push request", "no user")),
            (_, Err(e)) => Err(internal("push request", e)),
        };
        match outcome.and_then(|()| Reply::json(&serde_json::json!({}))) {
            Ok(reply) => reply.into_response(None),
            Err(e) => Reply::error(&e).into_response(None),
        }
    }

    async fn alarm(&self) -> worker::Result<Response> {
        self.shared.alarm_at.set(None);
        pass(&self.shared, None).await;
        Response::ok("")
    }
}

impl PushQueue {
    /// Stores the request's items for each of the user's pushers, then starts a pass that the
    /// answer does not wait for.
    async fn queue(&self, user: &str, request: PushRequest) -> Result<()> {
        self.shared.set_owner(user)?;
        let (items, fresh): (Vec<Option<String>>, _) = match request {
            PushRequest::Enqueue { mut notifications, pushers, unread, relay } => {
                self.relay(relay);
                notifications.sort_by_key(|n| n.event_stream);
                let json = notifications.iter().map(|n| serde_json::to_string(n).map(Some));
                let items =
                    json.collect::<std::result::Result<_, _>>().map_err(|e| internal("push notification", e))?;
                (items, Some(Fresh { pushers, unread }))
            }
            PushRequest::Badge => (vec![None], None),
        };
        if items.is_empty() {
            return Ok(());
        }
        let targets = match &fresh {
            Some(fresh) => fresh.pushers.clone(),
            None => pushers::for_user(&Db::new(&self.shared.env)?, user).await?,
        };
        if targets.is_empty() {
            return Ok(());
        }
        let now = now_ms() as i64;
        for item in &items {
            for p in &targets {
                let values = vec![p.app_id.as_str().into(), p.pushkey.as_str().into(), item.clone().into(), now.into()];
                self.shared.exec(PUSH, values)?;
            }
        }
        let shared = self.shared.clone();
        self.state.wait_until(async move { pass(&shared, fresh).await });
        Ok(())
    }
}

impl PushQueue {
    /// Hands the deliveries of other users on, after this request's answer.
    fn relay(&self, relay: Vec<Delivery>) {
        if relay.is_empty() {
            return;
        }
        let env = self.shared.env.clone();
        self.state.wait_until(async move {
            if let Err(e) = enqueue_many(&env, relay).await {
                crate::log::error(&format!("relaying pushes: {e:?}"));
            }
        });
    }
}

/// The user's pushers and badge as the room's writer read them a moment ago.
struct Fresh {
    pushers: Vec<Pusher>,
    unread: u64,
}

/// One delivery pass: claims the due pushers, delivers to them, and sets the alarm for what
/// remains. Errors are logged; the alarm brings the next try.
async fn pass(shared: &Rc<Shared>, fresh: Option<Fresh>) {
    let claim = match shared.claim() {
        Ok(claim) => claim,
        Err(_) => return shared.schedule(true).await,
    };
    // Should this pass die with the object, the backstop alarm finishes its work.
    shared.schedule(false).await;
    if claim.keys.is_empty() {
        return;
    }
    let delivered = shared.deliver(&claim, fresh).await;
    drop(claim);
    shared.schedule(delivered.is_err()).await;
}

impl Shared {
    fn exec(&self, query: &str, values: Vec<SqlStorageValue>) -> Result<SqlCursor> {
        self.sql.exec(query, values).map_err(|e| internal(query, e))
    }

    fn rows<T: DeserializeOwned>(&self, query: &str, values: Vec<SqlStorageValue>) -> Result<Vec<T>> {
        self.exec(query, values)?.to_array().map_err(|e| internal(query, e))
    }

    fn set_owner(&self, user: &str) -> Result<()> {
        if self.owner.borrow().as_deref() != Some(user) {
            self.exec(SET_OWNER, vec![user.into()])?;
            *self.owner.borrow_mut() = Some(user.to_owned());
        }
        Ok(())
    }

    fn owner(&self) -> Result<Option<String>> {
        if self.owner.borrow().is_none() {
            #[derive(Deserialize)]
            struct Row {
                user_id: String,
            }
            let row = self.rows::<Row>(OWNER, vec![])?.pop();
            *self.owner.borrow_mut() = row.map(|r| r.user_id);
        }
        Ok(self.owner.borrow().clone())
    }

    fn pending(&self) -> Result<Vec<Pending>> {
        self.rows(PENDING, vec![])
    }

    /// Marks the pushers that are due and not in flight as in flight, for one pass.
    fn claim(self: &Rc<Self>) -> Result<Claim> {
        let keys = ready(now_ms(), &self.pending()?, &self.in_flight.borrow());
        self.in_flight.borrow_mut().extend(keys.iter().cloned());
        Ok(Claim { keys, shared: self.clone() })
    }

    /// Makes sure the alarm rings by the time something is next due. An alarm this instance
    /// already set to ring sooner is kept (its pass sets the next one), and one left when
    /// nothing is queued rings for nothing: each alarm write is a storage write, and so a pass
    /// that delivers everything at once writes none.
    async fn schedule(&self, pass_failed: bool) {
        let now = now_ms();
        let next = self.pending().map(|pending| next_alarm(now, &pending, &self.in_flight.borrow(), pass_failed));
        let at = match next {
            Ok(Some(at)) => at,
            Ok(None) => return,
            // Storage itself failed: try again in a while.
            Err(_) => now + FAILED_PASS_RETRY_MS,
        };
        if keeps(self.alarm_at.get(), now, at) {
            return;
        }
        match self.storage.set_alarm((at - now) as i64).await {
            Ok(()) => self.alarm_at.set(Some(at)),
            Err(e) => {
                self.alarm_at.set(None);
                crate::log::error(&format!("push queue alarm: {e}"));
            }
        }
    }

    /// Delivers the claimed pushers' items, the pushers side by side.
    async fn deliver(&self, claim: &Claim, fresh: Option<Fresh>) -> Result<()> {
        let Some(user) = self.owner()? else { return Ok(()) };
        let db = Db::new(&self.env)?;
        let (stored, unread) = match fresh {
            Some(Fresh { pushers, unread }) => (pushers, unread),
            None => futures::try_join!(pushers::for_user(&db, &user), event_push_actions::unread_rooms(&db, &user))?,
        };
        let budget = (MAX_SENDS_PER_PASS / claim.keys.len()).max(1);
        let mut runs = Vec::new();
        for key in &claim.keys {
            let stored = stored.iter().find(|p| (&p.app_id, &p.pushkey) == (&key.0, &key.1));
            match stored.and_then(Target::new) {
                Some(target) => runs.push(self.deliver_to(&db, &user, target, unread, budget)),
                // The pusher is gone (deleted, or its device logged out): so are its items.
                None => self.forget(key)?,
            }
        }
        join_all(runs).await.into_iter().collect()
    }

    /// Sends up to `budget` of one pusher's items, in order, until one fails.
    async fn deliver_to(&self, db: &Db, user: &str, target: Target, unread: u64, budget: usize) -> Result<()> {
        let key = || vec![target.app_id.as_str().into(), target.pushkey.as_str().into()];
        let items: Vec<Item> = self.rows(HEAD, [key(), vec![(budget as i64).into()]].concat())?;
        let state = self.rows::<PusherState>(STATE, key())?.pop().unwrap_or_default();
        let (mut delay_ms, mut last_unread) = (state.delay_ms, state.last_unread);
        for item in items {
            let body = match &item.notification {
                Some(json) => match serde_json::from_str::<EventNotification>(json) {
                    Ok(n) => gateway::event_request(&n, &target, unread),
                    Err(e) => {
                        crate::log::error(&format!("unreadable queued notification: {e}"));
                        self.exec(DONE, vec![item.id.into()])?;
                        continue;
                    }
                },
                // The gateway has this count already (as in Synapse, a badge goes only on a change).
                None if last_unread == Some(unread) => {
                    self.exec(DONE, vec![item.id.into()])?;
                    continue;
                }
                None => gateway::badge_request(&target, unread),
            };
            match post(&target.url, &body.to_string()).await {
                Ok(answer) => {
                    self.exec(DONE, vec![item.id.into()])?;
                    self.exec(SUCCEEDED, [key(), vec![(unread as i64).into()]].concat())?;
                    (delay_ms, last_unread) = (0, Some(unread));
                    if gateway::rejects(&answer, &target.pushkey) {
                        // The spec: stop sending to a rejected pushkey and remove its pusher.
                        db.run(pushers::delete(db, user, &target.app_id, &target.pushkey)?).await?;
                        return self.forget(&(target.app_id.clone(), target.pushkey.clone()));
                    }
                }
                Err(reason) => {
                    crate::log::error(&format!("push to {} failed: {reason}", target.url));
                    let now = now_ms();
                    let cutoff = now.saturating_sub(gateway::GIVE_UP_AFTER_MS) as i64;
                    self.exec(EXPIRE, [key(), vec![cutoff.into()]].concat())?;
                    delay_ms = gateway::next_retry_delay(delay_ms);
                    let retry = vec![((now + delay_ms) as i64).into(), (delay_ms as i64).into()];
                    self.exec(FAILED, [key(), retry].concat())?;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Drops a pusher's items and state.
    fn forget(&self, key: &Key) -> Result<()> {
        for query in [FORGET_QUEUE, FORGET_STATE] {
            self.exec(query, vec![key.0.as_str().into(), key.1.as_str().into()])?;
        }
        Ok(())
    }
}

/// POSTs one request to a gateway: its answer's body if it answered 2xx in time.
async fn post(url: &str, body: &str) -> std::result::Result<String, String> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json").map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(body.into()));
    crate::cost::fetch();
    let fetch = Fetch::Request(Request::new_with_init(url, &init).map_err(|e| e.to_string())?);
    let controller = AbortController::default();
    let signal = controller.signal();
    let answer = Box::pin(async move {
        let mut res = fetch.send_with_signal(&signal).await?;
        Ok::<_, worker::Error>((res.status_code(), res.text().await?))
    });
    let timeout = Delay::from(Duration::from_millis(GATEWAY_TIMEOUT_MS));
    match select(answer, timeout).await {
        Either::Left((Ok((status, text)), _)) if (200..300).contains(&status) => Ok(text),
        Either::Left((Ok((status, _)), _)) => Err(format!("status {status}")),
        Either::Left((Err(e), _)) => Err(e.to_string()),
        Either::Right(_) => {
            controller.abort();
            Err(format!("no answer within {GATEWAY_TIMEOUT_MS} ms"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(app_id: &str, retry_at: u64) -> Pending {
        Pending { app_id: app_id.into(), pushkey: "k".into(), retry_at }
    }

    fn key(app_id: &str) -> Key {
        (app_id.into(), "k".into())
    }

    #[test]
    fn a_pass_takes_due_pushers_that_are_not_in_flight() {
        let list = [pending("due", 0), pending("waiting", 2_000), pending("busy", 500), pending("just", 1_000)];
        let in_flight = BTreeSet::from([key("busy")]);
        assert_eq!(ready(1_000, &list, &in_flight), vec![key("due"), key("just")]);
    }

    #[test]
    fn the_alarm_rings_for_the_earliest_due_pusher() {
        let none = BTreeSet::new();
        assert_eq!(next_alarm(1_000, &[], &none, false), None);
        assert_eq!(next_alarm(1_000, &[pending("a", 5_000), pending("b", 3_000)], &none, false), Some(3_000));
        // A due pusher (left over by a pass's budget) rings at once.
        assert_eq!(next_alarm(1_000, &[pending("a", 5_000), pending("b", 0)], &none, false), Some(1_000));
    }

    #[test]
    fn an_alarm_that_rings_soon_enough_is_kept() {
        assert!(!keeps(None, 1_000, 5_000));
        assert!(keeps(Some(3_000), 1_000, 5_000));
        assert!(keeps(Some(5_000), 1_000, 5_000));
        // It would ring too late, or may be ringing now: set it again.
        assert!(!keeps(Some(6_000), 1_000, 5_000));
        assert!(!keeps(Some(900), 1_000, 5_000));
    }

    #[test]
    fn in_flight_pushers_get_a_backstop_and_a_failed_pass_a_pause() {
        let in_flight = BTreeSet::from([key("a")]);
        let list = [pending("a", 0)];
        assert_eq!(next_alarm(1_000, &list, &in_flight, false), Some(1_000 + IN_FLIGHT_BACKSTOP_MS));
        let waiting = [pending("b", 0), pending("c", 1_000_000)];
        assert_eq!(next_alarm(1_000, &waiting, &BTreeSet::new(), true), Some(1_000 + FAILED_PASS_RETRY_MS));
        assert_eq!(next_alarm(1_000, &[pending("c", 1_000_000)], &BTreeSet::new(), true), Some(1_000_000));
    }
}
