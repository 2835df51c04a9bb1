//! What a room's writer hands to the services after a commit: the events each service is
//! interested in, queued durably in the service's `Appservice` object before the hand-off
//! returns. The writer computes interest from the state it holds in memory (members, aliases),
//! with the registrations cached per isolate: no D1 query per event.

use std::rc::Rc;

use serde_json::{Map, Value};
use worker::Env;

use super::{registry, Service};
use crate::durable_objects::appservice::{enqueue, Queued};
use crate::durable_objects::room::Sent;
use crate::room::pdu::Pdu;
use crate::room::state::RoomState;
use crate::storage::Db;

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

/// The services that take transactions; none (and no work) when none is registered.
pub async fn services(db: &Db, server_name: &str) -> Vec<Rc<Service>> {
    match registry::all(db, server_name).await {
        Ok(all) => all.iter().filter(|e| e.service.registration.url.is_some()).map(|e| e.service.clone()).collect(),
        Err(e) => {
            // The events are committed; only these services miss them.
            crate::log::error(&format!("application services: {e:?}"));
            Vec::new()
        }
    }
}

/// The events of one commit, each for the services interested in it.
pub struct Handoff {
    room_id: String,
    queues: Vec<(Rc<Service>, Vec<Queued>)>,
}

impl Handoff {
    pub fn new(services: Vec<Rc<Service>>, room: &RoomState, committed: &[(Sent, Pdu)]) -> Option<Handoff> {
        if services.is_empty() || committed.is_empty() {
            return None;
        }
        let view = RoomView::of(room);
        let events: Vec<Outgoing> =
            committed.iter().map(|(sent, pdu)| Outgoing::of(&view.room_id, sent, pdu)).collect();
        let queues: Vec<_> = services
            .into_iter()
            .filter_map(|service| {
                let whole_room = view.concerns(&service);
                let queued: Vec<Queued> = events
                    .iter()
                    .filter(|e| whole_room || e.concerns(&service))
                    .map(|e| Queued { stream_ordering: e.stream_ordering, event: e.event.to_string() })
                    .collect();
                (!queued.is_empty()).then_some((service, queued))
            })
            .collect();
        (!queues.is_empty()).then_some(Handoff { room_id: view.room_id, queues })
    }

    /// Queues the events durably in each service's object, side by side.
    pub async fn send(self, env: &Env) {
        let room_id = &self.room_id;
        let calls = self.queues.into_iter().map(|(service, queued)| async move {
            if let Err(e) = enqueue(env, service.id(), queued).await {
                crate::log::error(&format!("queueing events of {room_id} for {}: {e:?}", service.id()));
            }
        });
        futures::future::join_all(calls).await;
    }
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
