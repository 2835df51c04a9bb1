//! One user's long-polling `/sync` waiters, woken by stream positions, never by data.
//!
//! A waiter registers with the positions its sync already covers, and only then compares them
//! with the newest positions this object has been told of: a change that lands between the
//! worker's read and the registration still wakes it. The woken sync reads D1 again. This object
//! keeps nothing durable: after an eviction it does not know what it missed, so its first waiter
//! returns at once, and that sync reads D1 and finds whatever there is.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::{select, Either};
use serde::{Deserialize, Serialize};
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
}

impl Positions {
    fn any_beyond(&self, other: &Positions) -> bool {
        self.events > other.events || self.account_data > other.account_data || self.to_device > other.to_device
    }

    fn merge(&mut self, other: &Positions) {
        self.events = self.events.max(other.events);
        self.account_data = self.account_data.max(other.account_data);
        self.to_device = self.to_device.max(other.to_device);
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

/// Waits until something beyond `covered` concerns the user; `true` if woken, `false` on timeout.
pub async fn wait(env: &Env, user_id: &str, covered: Positions, timeout_ms: u64) -> Result<bool> {
    call(env, user_id, &SyncRequest::Wait { covered, timeout_ms }).await
}

async fn call(env: &Env, user_id: &str, request: &SyncRequest) -> Result<bool> {
    let stub = env.durable_object("USER_SYNC")?.id_from_name(user_id)?.get_stub()?;
    let body = serde_json::to_string(request).map_err(|e| internal("sync request", e))?;
    let mut init = RequestInit::new();
    init.with_method(worker::Method::Post).with_body(Some(body.into()));
    let mut res = stub.fetch_with_request(Request::new_with_init("https://user-sync/", &init)?).await?;
    let text = res.text().await?;
    if res.status_code() != 200 {
        return Err(internal("user sync", text));
    }
    serde_json::from_str::<bool>(&text).map_err(|e| internal("user sync reply", e))
}

#[derive(Default)]
struct Inner {
    /// The newest positions notified since this object started; `None` until the first request.
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
            Ok(SyncRequest::Notify { positions }) => Ok(self.notified(positions)),
            Ok(SyncRequest::Wait { covered, timeout_ms }) => Ok(self.wait(covered, timeout_ms).await),
            Err(e) => Err(internal("sync request", e)),
        };
        match outcome.and_then(|woken| Reply::json(&woken)) {
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
        let (woken, waiting): (Vec<_>, Vec<_>) = waiters.into_iter().partition(|(covered, _)| positions.any_beyond(covered));
        inner.waiters = waiting;
        for (_, wake) in woken {
            let _ = wake.send(());
        }
        true
    }

    async fn wait(&self, covered: Positions, timeout_ms: u64) -> bool {
        let (wake, woken) = oneshot::channel();
        {
            // Looking and registering happen in one step, with no await between them: nothing
            // notified in between can be missed.
            let mut inner = self.inner.borrow_mut();
            let missed = match &inner.latest {
                Some(latest) => latest.any_beyond(&covered),
                // Fresh after an eviction: what was notified before is unknown, so look in D1.
                None => true,
            };
            inner.latest.get_or_insert_with(Positions::default);
            if missed {
                return true;
            }
            inner.waiters.push((covered, wake));
        }
        let timeout = Delay::from(Duration::from_millis(timeout_ms.min(MAX_WAIT_MS)));
        let woken = match select(woken, timeout).await {
            Either::Left((result, _)) => result.is_ok(),
            Either::Right(_) => false,
        };
        // Drop the waiters of syncs that timed out, this one included.
        self.inner.borrow_mut().waiters.retain(|(_, w)| !w.is_canceled());
        woken
    }
}
