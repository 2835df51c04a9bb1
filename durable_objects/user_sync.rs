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

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::{select, Either};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{durable_object, Delay, DurableObject, Env, Request, RequestInit, Response, State};

use crate::error::{internal, Result};
use crate::http::Reply;

/// The longest a sync may wait, whatever timeout it asks for.
pub const MAX_WAIT_MS: u64 = 60_000;

/// Positions in the streams a sync covers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Positions {
    pub events: u64,
    pub account_data: u64,
    pub to_device: u64,
    #[serde(default)]
    pub receipts: u64,
    #[serde(default)]
    pub typing: u64,
}

impl Positions {
    pub fn as_array(&self) -> [u64; 5] {
        [self.events, self.account_data, self.to_device, self.receipts, self.typing]
    }

    pub fn from_array(p: [u64; 5]) -> Self {
        Positions { events: p[0], account_data: p[1], to_device: p[2], receipts: p[3], typing: p[4] }
    }

    fn any_beyond(&self, other: &Positions) -> bool {
        self.as_array().iter().zip(other.as_array()).any(|(a, b)| *a > b)
    }

    /// The larger of each position.
    pub fn max_with(&self, other: &Positions) -> Positions {
        let (a, b) = (self.as_array(), other.as_array());
        Positions::from_array(std::array::from_fn(|i| a[i].max(b[i])))
    }

    fn merge(&mut self, other: &Positions) {
        *self = self.max_with(other);
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SyncRequest {
    /// Something at these positions concerns the user.
    Notify { positions: Positions },
    /// Returns when something beyond `covered` concerns the user, or after `timeout_ms`.
    Wait { covered: Positions, timeout_ms: u64 },
}

/// Tells a user's waiters that something at `positions` concerns them.
pub async fn notify(env: &Env, user_id: &str, positions: Positions) -> Result<()> {
    call(env, user_id, &SyncRequest::Notify { positions }).await.map(|_| ())
}

/// Tells the joined members of a room that something at `positions` concerns them.
pub async fn notify_room(env: &Env, db: &crate::storage::Db, room_id: &str, positions: Positions) -> Result<()> {
    let members = crate::storage::current_state::members(db, room_id).await?;
    let wakes = members.iter().filter(|(_, m)| m == "join").map(|(user, _)| notify(env, user, positions));
    futures::future::try_join_all(wakes).await.map(|_| ())
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
}

/// Waits until something beyond `covered` concerns the user, or `timeout_ms` passes.
pub async fn wait(env: &Env, user_id: &str, covered: Positions, timeout_ms: u64) -> Result<Waited> {
    let reply = call(env, user_id, &SyncRequest::Wait { covered, timeout_ms }).await?;
    serde_json::from_value(reply).map_err(|e| internal("user sync reply", e))
}

async fn call(env: &Env, user_id: &str, request: &SyncRequest) -> Result<Value> {
    let stub = env.durable_object("USER_SYNC")?.id_from_name(user_id)?.get_stub()?;
    let body = serde_json::to_string(request).map_err(|e| internal("sync request", e))?;
    let mut init = RequestInit::new();
    init.with_method(worker::Method::Post).with_body(Some(body.into()));
    let mut res = stub.fetch_with_request(Request::new_with_init("https://user-sync/", &init)?).await?;
    let text = res.text().await?;
    if res.status_code() != 200 {
        return Err(internal("user sync", text));
    }
    serde_json::from_str(&text).map_err(|e| internal("user sync reply", e))
}

#[derive(Default)]
struct Inner {
    /// The newest positions notified; `None` until the first request after a (re)start.
    latest: Option<Positions>,
    waiters: Vec<(Positions, oneshot::Sender<()>)>,
}

#[durable_object]
pub struct UserSync {
    inner: Rc<RefCell<Inner>>,
}

impl DurableObject for UserSync {
    fn new(_state: State, _env: Env) -> Self {
        Self { inner: Rc::default() }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let outcome = match serde_json::from_str::<SyncRequest>(&req.text().await?) {
            Ok(SyncRequest::Notify { positions }) => Reply::json(&self.notified(positions)),
            Ok(SyncRequest::Wait { covered, timeout_ms }) => Reply::json(&self.wait(covered, timeout_ms).await),
            Err(e) => Err(internal("sync request", e)),
        };
        match outcome {
            Ok(reply) => reply.into_response(None),
            Err(e) => Reply::error(&e).into_response(None),
        }
    }
}

impl UserSync {
    fn notified(&self, positions: Positions) -> bool {
        let mut inner = self.inner.borrow_mut();
        inner.latest.get_or_insert_with(Positions::default).merge(&positions);
        let waiters = std::mem::take(&mut inner.waiters);
        let (woken, waiting): (Vec<_>, Vec<_>) =
            waiters.into_iter().partition(|(covered, _)| positions.any_beyond(covered));
        inner.waiters = waiting;
        for (_, wake) in woken {
            let _ = wake.send(());
        }
        true
    }

    async fn wait(&self, covered: Positions, timeout_ms: u64) -> Waited {
        let (wake, woken) = oneshot::channel();
        {
            // Compared and registered in one step, with no await between: nothing notified
            // since can be missed.
            let mut inner = self.inner.borrow_mut();
            let Some(latest) = inner.latest else {
                inner.latest = Some(Positions::default());
                return Waited::Fresh;
            };
            if latest.any_beyond(&covered) {
                return Waited::Woken;
            }
            inner.waiters.push((covered, wake));
        }
        let timeout = Delay::from(Duration::from_millis(timeout_ms.min(MAX_WAIT_MS)));
        let waited = match select(woken, timeout).await {
            Either::Left((Ok(()), _)) => Waited::Woken,
            Either::Left((Err(_), _)) | Either::Right(_) => Waited::TimedOut,
        };
        // Drop the waiters of syncs that timed out, this one included.
        self.inner.borrow_mut().waiters.retain(|(_, w)| !w.is_canceled());
        waited
    }
}
