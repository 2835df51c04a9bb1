//! What a room's writer hands to the services after a commit: the events each service is
//! interested in, queued durably in the service's `Appservice` object. The writer computes
//! interest from the state it holds in memory (members, aliases), with the registrations cached
//! per isolate: no D1 query per event.
//!
//! The hand-offs run in one background loop per writer ([`run`]), so neither the sender nor the
//! writer's next batch waits for them, and the loop takes the commits in order, so each
//! service's queue gets a room's events in the room's order. How far the room is handed off is
//! kept in the writer's storage ([`HANDED_OFF`]): after a reload (an eviction, a failed batch)
//! or a failed hand-off, the loop first reads the room's events past it from D1 and hands them
//! off again. The `Appservice` object ignores what it already has of the room, so a repeated
//! hand-off queues nothing twice.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use ruma_common::OwnedEventId;
use serde_json::{Map, Value};
use worker::{Delay, Env, Storage};

use super::{registry, Service};
use crate::config::Config;
use crate::durable_objects::appservice::{enqueue, Queued};
use crate::durable_objects::room::Sent;
use crate::error::{internal, Result};
use crate::room::pdu::Pdu;
use crate::room::state::RoomState;
use crate::storage::{events, Db};

/// What the room looked like after the commit, as far as interest goes.
struct RoomView {
    room_id: String,
    joined: Vec<String>,
    aliases: Vec<String>,
}

impl RoomView {
    fn of(room: &RoomState) -> RoomView {
        let joined = room
            .state_events()
            .filter(|e| e.kind.to_string() == "m.room.member" && e.membership().as_deref() == Some("join"))
            .filter_map(|e| e.state_key.clone())
            .collect();
        let mut aliases = Vec::new();
        if let Some(canonical) = room.get("m.room.canonical_alias", "") {
            let content = canonical.content_value();
            aliases.extend(content.get("alias").and_then(Value::as_str).map(str::to_owned));
            if let Some(alt) = content.get("alt_aliases").and_then(Value::as_array) {
                aliases.extend(alt.iter().filter_map(Value::as_str).map(str::to_owned));
            }
        }
        RoomView { room_id: room.room_id.to_string(), joined, aliases }
    }

    /// The room's own claim on a service: its ID, an alias or a joined member in a namespace.
    fn concerns(&self, service: &Service) -> bool {
        service.room_in_namespace(&self.room_id)
            || self.aliases.iter().any(|a| service.alias_in_namespace(a, super::Scope::Any))
            || self.joined.iter().any(|m| service.is_interested_in_user(m))
    }
}

/// One committed event, ready for the services.
struct Outgoing {
    stream_ordering: u64,
    sender: String,
    state_key: Option<String>,
    event: Value,
}

impl Outgoing {
    fn of(room_id: &str, sent: &Sent, pdu: &Pdu) -> Outgoing {
        Outgoing {
            stream_ordering: sent.stream_ordering,
            sender: pdu.sender.to_string(),
            state_key: pdu.state_key.clone(),
            event: transaction_event(room_id, pdu),
        }
    }

    fn concerns(&self, service: &Service) -> bool {
        service.is_interested_in_user(&self.sender)
            || self.state_key.as_deref().is_some_and(|k| k.starts_with('@') && service.is_interested_in_user(k))
    }
}

/// The writer's storage key: every event of the room up to this stream position is handed off.
pub const HANDED_OFF: &str = "appservice_handed_off";
/// Events read back from D1 per page, when a hand-off is done again.
const RECOVERY_PAGE: u64 = 100;
/// Steps (a commit's hand-off or a recovered page) one loop takes before it leaves the rest to
/// the loop the next commit starts, so that one invocation's subrequests stay bounded.
const STEPS_PER_RUN: usize = 64;
/// Failed steps in a row before the loop leaves the rest to the writer's alarm, [`RETRY_MS`] later.
const ATTEMPTS: u32 = 3;
const RETRY_MS: i64 = 5_000;

/// The services that take transactions.
async fn services(db: &Db, server_name: &str) -> Result<Vec<Rc<Service>>> {
    let all = registry::all(db, server_name).await?;
    Ok(all.iter().filter(|e| e.service.registration.url.is_some()).map(|e| e.service.clone()).collect())
}

/// One commit's events, with the room as it was after the commit.
struct Batch {
    view: Rc<RoomView>,
    events: Vec<(Sent, Pdu)>,
}

/// Where the room's hand-offs stand, as far as this writer knows.
#[derive(Clone, Copy, PartialEq)]
enum Upto {
    /// Not read from storage yet.
    Unread,
    /// Nothing stored: no service was there to hand off to.
    Absent,
    At(u64),
}

/// A writer's hand-offs: the commits not handed off yet, in commit order.
pub struct Handoffs {
    pending: VecDeque<Batch>,
    /// A loop is running; it sets this before it starts (see [`Handoffs::start`]).
    running: bool,
    /// Committed events may not be handed off: read them from D1 past `upto` first.
    recover: bool,
    upto: Upto,
    latest_view: Option<Rc<RoomView>>,
}

impl Default for Handoffs {
    fn default() -> Self {
        Handoffs { pending: VecDeque::new(), running: false, recover: false, upto: Upto::Unread, latest_view: None }
    }
}

impl Handoffs {
    /// The writer reloaded the room from D1: what it committed before may not be handed off.
    pub fn reloaded(&mut self) {
        self.recover = true;
    }

    /// Adds a commit's events; true when the caller must start [`run`].
    pub fn push(&mut self, room: &RoomState, committed: &[(Sent, Pdu)]) -> bool {
        if committed.is_empty() || (self.upto == Upto::Absent && !self.recover && registry::known_none()) {
            // No service: no work, nothing stored that could go stale.
            return false;
        }
        let view = Rc::new(RoomView::of(room));
        self.latest_view = Some(view.clone());
        self.pending.push_back(Batch { view, events: committed.to_vec() });
        self.start()
    }

    /// Marks a loop as running; false when one already is.
    pub fn start(&mut self) -> bool {
        !std::mem::replace(&mut self.running, true)
    }
}

/// Resets the "loop running" flag however the loop ends.
struct Running(Rc<RefCell<Handoffs>>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.borrow_mut().running = false;
    }
}

/// What the loop does next.
enum Step {
    Recover(Rc<RoomView>),
    Batch(Batch),
}

/// Hands off the pending commits in order, recovering first what a reload or a failure left.
/// A run takes at most [`STEPS_PER_RUN`] steps; what is left then, or after [`ATTEMPTS`]
/// failures in a row, goes on in the writer's alarm (a fresh invocation), or with its next commit.
pub async fn run(shared: Rc<RefCell<Handoffs>>, env: Env, storage: Storage, room_id: String) {
    // The loop is marked done before the alarm is set, so that the alarm finds it done.
    let again_in = {
        let _running = Running(shared.clone());
        steps(&shared, &env, &storage, &room_id).await
    };
    if let Some(ms) = again_in {
        if let Err(e) = storage.set_alarm(ms).await {
            crate::log::error(&format!("setting the hand-off alarm of {room_id}: {e:?}"));
        }
    }
}

/// The loop's steps; when work is left, in how long the alarm should go on with it.
async fn steps(shared: &Rc<RefCell<Handoffs>>, env: &Env, storage: &Storage, room_id: &str) -> Option<i64> {
    let mut failures = 0;
    for _ in 0..STEPS_PER_RUN {
        let step = {
            let mut h = shared.borrow_mut();
            match (h.recover, h.latest_view.clone()) {
                (true, Some(view)) => Step::Recover(view),
                _ => Step::Batch(h.pending.pop_front()?),
            }
        };
        match take(shared, env, storage, room_id, step).await {
            Ok(()) => failures = 0,
            Err(e) => {
                // The events are in D1 and the stored position is behind them: read them again.
                crate::log::error(&format!("handing off events of {room_id} to application services: {e:?}"));
                shared.borrow_mut().recover = true;
                failures += 1;
                if failures == ATTEMPTS {
                    return Some(RETRY_MS);
                }
                Delay::from(Duration::from_millis(250 << failures)).await;
            }
        }
    }
    Some(0)
}

/// Whether the writer's alarm should run the loop again.
pub fn unfinished(shared: &RefCell<Handoffs>) -> bool {
    let h = shared.borrow();
    !h.running && (!h.pending.is_empty() || (h.recover && h.latest_view.is_some()))
}

async fn take(shared: &Rc<RefCell<Handoffs>>, env: &Env, storage: &Storage, room_id: &str, step: Step) -> Result<()> {
    let config = Config::get(env).map_err(|e| internal("configuration", e))?;
    let db = Db::new(env)?;
    let services = services(&db, config.server_name.as_str()).await?;
    if services.is_empty() {
        let stale = {
            let mut h = shared.borrow_mut();
            h.pending.clear();
            h.recover = false;
            std::mem::replace(&mut h.upto, Upto::Absent) != Upto::Absent
        };
        // A position kept now would make a service registered later get the events between.
        if stale {
            storage.delete(HANDED_OFF).await?;
        }
        return Ok(());
    }
    if shared.borrow().upto == Upto::Unread {
        let stored = storage.get::<u64>(HANDED_OFF).await?;
        shared.borrow_mut().upto = stored.map_or(Upto::Absent, Upto::At);
    }
    let upto = shared.borrow().upto;
    match step {
        Step::Recover(view) => {
            let Upto::At(after) = upto else {
                // Nothing was ever handed off here: nothing to do again.
                shared.borrow_mut().recover = false;
                return Ok(());
            };
            let rows = events::room_events_after(&db, room_id, after, RECOVERY_PAGE).await?;
            let Some(last) = rows.last().map(|r| r.stream_ordering as u64) else {
                shared.borrow_mut().recover = false;
                return Ok(());
            };
            let mut committed = Vec::with_capacity(rows.len());
            for row in rows {
                let event_id = OwnedEventId::try_from(row.event_id).map_err(|e| internal("stored event ID", e))?;
                let pdu = Pdu::from_json(event_id.clone(), row.json).map_err(|e| internal("stored event", e))?;
                committed.push((Sent { event_id, stream_ordering: row.stream_ordering as u64 }, pdu));
            }
            hand_off(env, &services, &view, &committed).await?;
            storage.put(HANDED_OFF, last).await?;
            shared.borrow_mut().upto = Upto::At(last);
        }
        Step::Batch(Batch { view, mut events }) => {
            if let Upto::At(after) = upto {
                events.retain(|(sent, _)| sent.stream_ordering > after);
            }
            let (Some(first), Some(last)) = (events.first(), events.last()) else { return Ok(()) };
            let (first, last) = (first.0.stream_ordering, last.0.stream_ordering);
            if upto == Upto::Absent {
                // Stored first, so that a writer that dies during the hand-off does it again.
                storage.put(HANDED_OFF, first - 1).await?;
                shared.borrow_mut().upto = Upto::At(first - 1);
            }
            hand_off(env, &services, &view, &events).await?;
            storage.put(HANDED_OFF, last).await?;
            shared.borrow_mut().upto = Upto::At(last);
        }
    }
    Ok(())
}

/// Queues each event in the objects of the services interested in it, side by side; fails if
/// any of them failed.
async fn hand_off(env: &Env, services: &[Rc<Service>], view: &RoomView, committed: &[(Sent, Pdu)]) -> Result<()> {
    let events: Vec<Outgoing> = committed.iter().map(|(sent, pdu)| Outgoing::of(&view.room_id, sent, pdu)).collect();
    let calls = services.iter().filter_map(|service| {
        let whole_room = view.concerns(service);
        let queued: Vec<Queued> = events
            .iter()
            .filter(|e| whole_room || e.concerns(service))
            .map(|e| Queued { stream_ordering: e.stream_ordering, event: e.event.to_string() })
            .collect();
        (!queued.is_empty()).then(|| enqueue(env, service.id(), &view.room_id, queued))
    });
    futures::future::join_all(calls).await.into_iter().collect()
}

/// The client format of a new event, as services receive it.
fn transaction_event(room_id: &str, pdu: &Pdu) -> Value {
    let full: Map<String, Value> = serde_json::from_str(&pdu.json).unwrap_or_default();
    let mut event = Map::new();
    event.insert("content".into(), pdu.content_value());
    event.insert("event_id".into(), pdu.event_id.as_str().into());
    for field in ["origin_server_ts", "sender", "type", "state_key", "redacts"] {
        if let Some(v) = full.get(field) {
            event.insert(field.into(), v.clone());
        }
    }
    if let (Some(redacts), false) = (&pdu.redacts, event.contains_key("redacts")) {
        event.insert("redacts".into(), redacts.as_str().into());
    }
    event.insert("room_id".into(), room_id.into());
    event.insert("unsigned".into(), Value::Object(Map::new()));
    Value::Object(event)
}
