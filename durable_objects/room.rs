//! The single writer of one room: it orders, authorizes and persists the room's events.
//!
//! Requests queue up in arrival order. Whoever finds no commit in flight drains the queue: it
//! builds and authorizes each queued event against the state the previous ones left, and commits
//! all that were accepted in one D1 batch (a group commit). The in-memory state changes only
//! after D1 has the batch, so a failure or an eviction at any point leaves nothing half-written,
//! and a 200 always means the event is durable.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use futures::channel::oneshot;
use ruma_common::{OwnedEventId, OwnedRoomId, RoomId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{durable_object, DurableObject, Env, Request, Response, State};

use super::user_sync::{self, Positions};
use crate::appservice::handoff::{self, Handoffs};
use crate::config::Config;
use crate::error::{internal, not_found, Error, ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::push::evaluate::{PushEvent, RoomSnapshot};
use crate::push::fanout;
use crate::room::client_format::redacted_content;
use crate::room::pdu::{BuildError, EventTemplate, Pdu};
use crate::room::signing::ServerKey;
use crate::room::state::{Refusal, RoomState};
use crate::room::versions::RoomVersion;
use crate::server_keys::signing_key;
use crate::storage::event_txns::{self, Txn};
use crate::storage::events::{self, NewEvent, StreamOrdering};
use crate::storage::{aliases, current_state, forgotten_rooms, rooms, rows, BatchError, Db, Statement};
use crate::time::now_ms;

/// What the worker asks of a room. Requests are JSON on the wire, so variant sizes don't matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RoomRequest {
    /// Creates the room from its signed create event and the events that follow it.
    Create {
        version: String,
        create_event_id: OwnedEventId,
        create_json: String,
        events: Vec<EventTemplate>,
        is_public: bool,
        alias: Option<String>,
    },
    /// Sends one event.
    Send {
        room_id: OwnedRoomId,
        template: EventTemplate,
        txn: Option<Txn>,
        #[serde(default)]
        facts: Facts,
    },
}

/// What the worker looked up for the room, so that the writer need not wait on reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Facts {
    /// For a redaction: the sender of the event it redacts.
    pub redacted_sender: Option<String>,
    /// For a join: the rooms the joiner is in, for restricted join rules.
    pub joined_rooms: Vec<String>,
    /// For a redaction of a state event: its type, state key and content.
    pub redacted_state: Option<RedactedState>,
    /// An application service's `?ts=`: the event's `origin_server_ts` instead of now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_server_ts: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedactedState {
    #[serde(rename = "type")]
    pub kind: String,
    pub state_key: String,
    pub content: Value,
}

/// A committed event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sent {
    pub event_id: OwnedEventId,
    pub stream_ordering: u64,
}

/// Sends a request to a room's writer.
pub async fn call(env: &Env, room_id: &str, request: &RoomRequest) -> Result<Vec<Sent>> {
    let (status, text) = super::post(env, "ROOM", room_id, "https://room/", request).await?;
    if status == 200 {
        return serde_json::from_str(&text).map_err(|e| internal("room reply", e));
    }
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let errcode = body.get("errcode").and_then(Value::as_str).unwrap_or("M_UNKNOWN");
    let message = body.get("error").and_then(Value::as_str).unwrap_or("The room failed").to_owned();
    Err(MatrixError::new(ErrorKind::from_wire(errcode, status), message).into())
}

/// `user_id` leaves the room, as its own act: deactivation and an admin's room deletion.
pub async fn leave(env: &Env, room_id: &str, user_id: &str) -> Result<()> {
    let room_id = RoomId::parse(room_id).map_err(|e| internal("stored room ID", e))?;
    let sender = UserId::parse(user_id).map_err(|e| internal("stored user ID", e))?;
    let content =
        serde_json::from_value(serde_json::json!({"membership": "leave"})).map_err(|e| internal("leave", e))?;
    let template =
        EventTemplate { kind: "m.room.member".into(), state_key: Some(user_id.into()), sender, content, redacts: None };
    let request = RoomRequest::Send { room_id: room_id.clone(), template, txn: None, facts: Default::default() };
    call(env, room_id.as_str(), &request).await.map(|_| ())
}

type Outcome = Result<Vec<Sent>>;

struct Job {
    request: RoomRequest,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Inner {
    room: Option<RoomState>,
    queue: VecDeque<Job>,
    committing: bool,
    /// Transaction IDs this instance committed, so that most retries need no read.
    recent_txns: std::collections::BTreeMap<String, Sent>,
}

#[durable_object]
pub struct Room {
    state: State,
    env: Env,
    inner: Rc<RefCell<Inner>>,
    handoffs: Rc<RefCell<Handoffs>>,
}

impl DurableObject for Room {
    fn new(state: State, env: Env) -> Self {
        Self { state, env, inner: Rc::default(), handoffs: Rc::default() }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let outcome = match req.text().await.map(|t| serde_json::from_str::<RoomRequest>(&t)) {
            Ok(Ok(request)) => self.submit(request).await,
            Ok(Err(e)) => Err(internal("room request", e)),
            Err(e) => Err(internal("room request body", e)),
        };
        match outcome.and_then(|sent| Reply::json(&sent)) {
            Ok(reply) => reply.into_response(None),
            Err(e) => Reply::error(&e).into_response(None),
        }
    }

    /// Goes on with the services' hand-offs that a loop left (see [`handoff::run`]).
    async fn alarm(&self) -> worker::Result<Response> {
        let room_id = self.inner.borrow().room.as_ref().map(|r| r.room_id.to_string());
        if let (Some(room_id), true) = (room_id, handoff::unfinished(&self.handoffs)) {
            self.handoffs.borrow_mut().start();
            handoff::run(self.handoffs.clone(), self.env.clone(), self.state.storage(), room_id).await;
        }
        Response::ok("")
    }
}

/// Resets the "commit in flight" flag however the drain ends.
struct Draining(Rc<RefCell<Inner>>);

impl Drop for Draining {
    fn drop(&mut self) {
        self.0.borrow_mut().committing = false;
    }
}

impl Room {
    async fn submit(&self, request: RoomRequest) -> Outcome {
        let (reply, outcome) = oneshot::channel();
        let lead = {
            let mut inner = self.inner.borrow_mut();
            inner.queue.push_back(Job { request, reply });
            !std::mem::replace(&mut inner.committing, true)
        };
        if lead {
            let _draining = Draining(self.inner.clone());
            self.drain().await;
        }
        outcome.await.unwrap_or_else(|_| Err(internal("room", "the writer dropped a request")))
    }

    /// Commits queued requests, a batch at a time, until the queue is empty.
    async fn drain(&self) {
        loop {
            let jobs: Vec<Job> = self.inner.borrow_mut().queue.drain(..).collect();
            if jobs.is_empty() {
                return;
            }
            let context = match self.context().await {
                Ok(context) => context,
                Err(e) => {
                    for job in jobs {
                        let _ = job.reply.send(Err(copy_error(&e)));
                    }
                    continue;
                }
            };
            let conflicted = self.commit_batch(&context, jobs).await;
            // A conflict means a transaction ID or a depth D1 already had: the cache was stale.
            // Each request then goes alone, after a read of its transaction ID.
            for job in conflicted {
                if let Some(sent) = self.stored_txn(&context, &job.request).await {
                    let _ = job.reply.send(sent);
                    continue;
                }
                for retry in self.commit_batch(&context, vec![job]).await {
                    let _ = retry.reply.send(Err(internal("room commit", "conflict on a lone retry")));
                }
            }
        }
    }

    /// The events an earlier request with this one's transaction ID sent, if any.
    async fn stored_txn(&self, cx: &Context, request: &RoomRequest) -> Option<Outcome> {
        let RoomRequest::Send { txn: Some(txn), .. } = request else { return None };
        match event_txns::get(&cx.db, txn).await {
            Ok(Some(event_id)) => {
                let event_id = OwnedEventId::try_from(event_id).ok()?;
                let position = events::get(&cx.db, event_id.as_str()).await.ok().flatten()?.position();
                Some(Ok(vec![Sent { event_id, stream_ordering: position }]))
            }
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }

    async fn context(&self) -> Result<Context> {
        let config = Config::get(&self.env).map_err(|e| internal("configuration", e))?;
        let db = Db::new(&self.env)?;
        let key = signing_key(&db).await?;
        Ok(Context { server_name: config.server_name.to_string(), db, key })
    }

    /// Commits the jobs in one batch and answers them, except on a conflict: those jobs come back.
    async fn commit_batch(&self, cx: &Context, jobs: Vec<Job>) -> Vec<Job> {
        // Work on a copy of the state; it replaces the real one only once D1 has the batch.
        let loaded = self.inner.borrow().room.clone();
        let mut room = match loaded {
            Some(room) => Some(room),
            None => match load(cx, &jobs).await {
                Ok(room) => {
                    if room.is_some() {
                        self.handoffs.borrow_mut().reloaded();
                    }
                    room
                }
                Err(e) => {
                    for job in jobs {
                        let _ = job.reply.send(Err(copy_error(&e)));
                    }
                    return Vec::new();
                }
            },
        };
        let now = now_ms();
        let mut statements = Vec::new();
        let mut planned: Vec<(Job, Result<Plan>)> = Vec::new();
        for job in jobs {
            let plan = self.plan(cx, &mut room, job.request.clone(), now, &mut statements);
            planned.push((job, plan));
        }
        let Some(room) = room else {
            for (job, plan) in planned {
                let _ = job.reply.send(plan.map(|_| Vec::new()));
            }
            return Vec::new();
        };
        if statements.is_empty() {
            self.inner.borrow_mut().room = Some(room);
            for (job, plan) in planned {
                let _ = job.reply.send(plan.map(|p| p.already_sent));
            }
            return Vec::new();
        }
        match cx.db.batch_rows(statements).await {
            Ok(results) => {
                let room_id = room.room_id.clone();
                self.inner.borrow_mut().room = Some(room);
                let mut committed = Vec::new();
                for (job, plan) in planned {
                    let (outcome, staged) = match plan {
                        Ok(plan) => (plan.finish(&results), plan.staged),
                        Err(e) => (Err(e), Vec::new()),
                    };
                    if let (Ok(sent), RoomRequest::Send { txn: Some(txn), .. }) = (&outcome, &job.request) {
                        self.remember_txn(txn, sent);
                    }
                    if let Ok(sent) = &outcome {
                        // One position per staged event; what an earlier request sent has none here.
                        committed.extend(sent.iter().cloned().zip(staged));
                    }
                    let _ = job.reply.send(outcome);
                }
                self.hand_off(&committed);
                self.committed(&room_id, committed);
                Vec::new()
            }
            Err(failure) => {
                // What D1 holds is the truth: forget the cached state and read it again.
                self.inner.borrow_mut().room = None;
                let error = match failure {
                    BatchError::Conflict(what) if what.contains("room_aliases") => {
                        MatrixError::new(ErrorKind::RoomInUse, "The room alias is already taken").into()
                    }
                    BatchError::Conflict(what) if what.contains("rooms.room_id") => {
                        MatrixError::new(ErrorKind::RoomInUse, "The room already exists").into()
                    }
                    BatchError::Conflict(_) => {
                        let (retry, refused): (Vec<_>, Vec<_>) = planned.into_iter().partition(|(_, p)| p.is_ok());
                        for (job, plan) in refused {
                            let _ = job.reply.send(plan.map(|_| Vec::new()));
                        }
                        return retry.into_iter().map(|(job, _)| job).collect();
                    }
                    BatchError::Failed(e) => e,
                };
                for (job, plan) in planned {
                    let _ = job.reply.send(plan.and(Err(copy_error(&error))));
                }
                Vec::new()
            }
        }
    }

    fn remember_txn(&self, txn: &Txn, sent: &[Sent]) {
        const KEEP: usize = 1024;
        let Some(sent) = sent.first() else { return };
        let mut inner = self.inner.borrow_mut();
        if inner.recent_txns.len() >= KEEP {
            inner.recent_txns.clear();
        }
        inner.recent_txns.insert(txn_key(txn), sent.clone());
    }

    /// Gives the services' hand-off loop the commit, and starts the loop if it is idle.
    fn hand_off(&self, committed: &[(Sent, Pdu)]) {
        let room_id = {
            let inner = self.inner.borrow();
            let Some(room) = inner.room.as_ref() else { return };
            if !self.handoffs.borrow_mut().push(room, committed) {
                return;
            }
            room.room_id.to_string()
        };
        let (shared, env, storage) = (self.handoffs.clone(), self.env.clone(), self.state.storage());
        self.state.wait_until(async move { handoff::run(shared, env, storage, room_id).await });
    }

    /// The hand-off after a commit: the one place where committed events leave the room for
    /// fan-out, after the senders have their answers. Push rules are evaluated first, so that
    /// the syncs it then wakes read the new unread counts with the events; the wake goes to the
    /// users the events concern: the room's joined, invited and knocking members, and whoever
    /// the batch's membership events are about. Pushes go to the push queues beside the wake-ups.
    /// Application services get their events beside it ([`Self::hand_off`]).
    fn committed(&self, room_id: &RoomId, events: Vec<(Sent, Pdu)>) {
        let Some(newest) = events.iter().map(|(s, _)| s.stream_ordering).max() else { return };
        let (mut users, snapshot) = {
            let inner = self.inner.borrow();
            let Some(room) = inner.room.as_ref().filter(|r| *r.room_id == *room_id) else { return };
            let users: Vec<String> = room
                .state_events()
                .filter(|e| e.kind.to_string() == "m.room.member")
                .filter(|e| {
                    matches!(e.membership().as_deref(), Some("join" | "invite" | "knock"))
                        || events.iter().any(|(s, _)| s.event_id == e.event_id)
                })
                .filter_map(|e| e.state_key.clone())
                .collect();
            let senders: Vec<&UserId> = events.iter().map(|(_, pdu)| &*pdu.sender).collect();
            (users, RoomSnapshot::of(room, &senders))
        };
        users.sort();
        users.dedup();
        let push_events: Vec<PushEvent> =
            events.into_iter().map(|(sent, pdu)| PushEvent::of(&pdu, sent.stream_ordering)).collect();
        let env = self.env.clone();
        let room_id = room_id.to_string();
        self.state.wait_until(async move {
            let mut positions = Positions { events: newest, ..Positions::default() };
            let pushes = match Db::new(&env) {
                Ok(db) => match fanout::record(&db, &snapshot, &push_events).await {
                    Ok(recorded) => {
                        positions.notifications = recorded.position;
                        Some((db, recorded.pushes))
                    }
                    Err(e) => {
                        // The events are safe; only their notifications are lost.
                        crate::log::error(&format!("push rules in {room_id}: {e:?}"));
                        None
                    }
                },
                Err(e) => {
                    crate::log::error(&format!("push rules in {room_id}: {e:?}"));
                    None
                }
            };
            // Wake-ups and pushes side by side: neither waits for the other's calls.
            let wake = async {
                if let Err(e) = user_sync::notify_many(&env, users, positions).await {
                    // A missed wake-up delays a sync until its timeout; the events are safe.
                    crate::log::error(&format!("waking a sync of {room_id}: {e:?}"));
                }
            };
            let push = async {
                if let Some((db, pushes)) = pushes {
                    fanout::deliver(&env, &db, pushes).await;
                }
            };
            futures::join!(wake, push);
        });
    }

    /// Builds, authorizes and stages one request's events, applying them to `room`.
    fn plan(
        &self,
        cx: &Context,
        room: &mut Option<RoomState>,
        request: RoomRequest,
        now: u64,
        statements: &mut Vec<Statement>,
    ) -> Result<Plan> {
        match request {
            RoomRequest::Create { version, create_event_id, create_json, events, is_public, alias } => {
                if room.is_some() {
                    return Err(MatrixError::new(ErrorKind::RoomInUse, "The room already exists").into());
                }
                let version = RoomVersion::parse(&version)?;
                let create = Pdu::from_json(create_event_id, create_json).map_err(|e| internal("create event", e))?;
                let room_id = match &create.room_id {
                    Some(id) => id.clone(),
                    None => crate::room::pdu::room_id_from_create_event(&create).map_err(|e| internal("room id", e))?,
                };
                let mut new_room = RoomState::new(version.clone(), room_id.clone());
                new_room.authorize(&create).map_err(refusal)?;
                let mut staged = Vec::new();
                let mut room_statements = vec![rooms::insert(
                    &cx.db,
                    room_id.as_str(),
                    version.id.as_str(),
                    create.sender.as_str(),
                    is_public,
                    now,
                )?];
                if let Some(alias) = &alias {
                    room_statements.push(aliases::insert(
                        &cx.db,
                        alias,
                        room_id.as_str(),
                        create.sender.as_str(),
                        now,
                    )?);
                }
                stage(cx, &new_room, &create, None, &mut room_statements)?;
                new_room.apply(create.clone());
                staged.push(create);
                for template in &events {
                    let pdu = new_room.prepare(template, now, &cx.key, &cx.server_name).map_err(|r| match r {
                        Refusal::Forbidden(rule) => MatrixError::new(
                            ErrorKind::InvalidRoomState,
                            format!("The initial {} event is not allowed: {rule}", template.kind),
                        )
                        .into(),
                        other => refusal(other),
                    })?;
                    new_room.check_vouch(&pdu, &cx.server_name, &[]).map_err(refusal)?;
                    stage(cx, &new_room, &pdu, None, &mut room_statements)?;
                    staged.push(pdu.clone());
                    new_room.apply(pdu);
                }
                let first = statements.len();
                statements.extend(room_statements);
                *room = Some(new_room);
                Ok(Plan { already_sent: Vec::new(), staged, first_statement: first })
            }
            RoomRequest::Send { room_id, template, txn, facts } => {
                let Some(current) = room.as_mut().filter(|r| r.room_id == room_id) else {
                    return Err(not_found("Room not found"));
                };
                if let Some(txn) = &txn {
                    if let Some(sent) = self.inner.borrow().recent_txns.get(&txn_key(txn)) {
                        return Ok(Plan { already_sent: vec![sent.clone()], staged: Vec::new(), first_statement: 0 });
                    }
                }
                let template = prepare_template(current, template, &facts)?;
                let ts = facts.origin_server_ts.unwrap_or(now);
                let pdu = current.prepare(&template, ts, &cx.key, &cx.server_name).map_err(refusal)?;
                current.check_vouch(&pdu, &cx.server_name, &facts.joined_rooms).map_err(refusal)?;
                let mut staged = Vec::new();
                stage(cx, current, &pdu, txn.as_ref(), &mut staged)?;
                if let (Some(target), Some(state)) = (&pdu.redacts, &facts.redacted_state) {
                    let content = redacted_content(state.content.clone(), &state.kind, &current.version).to_string();
                    let room_id = current.room_id.as_str();
                    let (kind, key) = (state.kind.as_str(), state.state_key.as_str());
                    staged.push(events::redact_prev_state(&cx.db, room_id, target.as_str(), kind, key, &content)?);
                }
                if let Some(txn) = &txn {
                    staged.push(event_txns::insert(&cx.db, txn, pdu.event_id.as_str(), now)?);
                }
                let first = statements.len();
                statements.extend(staged);
                current.apply(pdu.clone());
                Ok(Plan { already_sent: Vec::new(), staged: vec![pdu], first_statement: first })
            }
        }
    }
}

/// What a request will have sent once the batch commits.
struct Plan {
    /// Events an earlier request with the same transaction ID sent.
    already_sent: Vec<Sent>,
    staged: Vec<Pdu>,
    first_statement: usize,
}

impl Plan {
    /// Reads each staged event's stream position from the batch results.
    fn finish(&self, results: &[worker::D1Result]) -> Outcome {
        if self.staged.is_empty() {
            return Ok(self.already_sent.clone());
        }
        // Each staged event's insert is the first of its statements; its rows carry the position.
        let mut sent = Vec::new();
        let mut staged = self.staged.iter();
        for result in &results[self.first_statement..] {
            let positions: Vec<StreamOrdering> = rows(result).unwrap_or_default();
            if let Some(position) = positions.first() {
                let Some(pdu) = staged.next() else { break };
                sent.push(Sent { event_id: pdu.event_id.clone(), stream_ordering: position.stream_ordering as u64 });
            }
        }
        Ok(sent)
    }
}

struct Context {
    server_name: String,
    db: Db,
    key: Rc<ServerKey>,
}

fn txn_key(txn: &Txn) -> String {
    format!("{}\n{}\n{}\n{}", txn.user_id, txn.device_id, txn.scope, txn.txn_id)
}

/// Loads the room from D1: `None` when it does not exist (a create request may make it).
async fn load(cx: &Context, jobs: &[Job]) -> Result<Option<RoomState>> {
    let Some(room_id) = jobs.iter().find_map(|j| match &j.request {
        RoomRequest::Send { room_id, .. } => Some(room_id.clone()),
        RoomRequest::Create { .. } => None,
    }) else {
        return Ok(None);
    };
    let Some(row) = rooms::get(&cx.db, room_id.as_str()).await? else { return Ok(None) };
    let version = RoomVersion::parse(&row.room_version)?;
    let head =
        events::head(&cx.db, room_id.as_str()).await?.ok_or_else(|| internal("room", "a room without events"))?;
    let head_id = OwnedEventId::try_from(head.event_id).map_err(|e| internal("stored event ID", e))?;
    let mut state = Vec::new();
    for e in current_state::room_state(&cx.db, room_id.as_str()).await? {
        let id = OwnedEventId::try_from(e.event_id).map_err(|e| internal("stored event ID", e))?;
        let pdu = Pdu::from_json(id, e.json).map_err(|e| internal("stored event", e))?;
        // The rules see a redacted state event as redacted.
        state.push(if e.redaction_id.is_some() { pdu.redacted(&version.rules) } else { pdu });
    }
    Ok(Some(RoomState::load(version, room_id, state, (head_id, head.depth as u64))))
}

/// Stages the statements that persist one accepted event and its effects.
fn stage(cx: &Context, room: &RoomState, pdu: &Pdu, txn: Option<&Txn>, out: &mut Vec<Statement>) -> Result<()> {
    let content = pdu.content_value();
    let relation = content.get("m.relates_to");
    let prev_state = pdu.state_key.as_deref().and_then(|k| room.get(pdu.kind.to_string().as_str(), k)).map(|prev| {
        serde_json::json!({"event_id": prev.event_id, "sender": prev.sender, "content": prev.content_value()})
            .to_string()
    });
    let membership = pdu.membership();
    let kind = pdu.kind.to_string();
    let room_id = room.room_id.as_str();
    out.push(events::insert(
        &cx.db,
        &NewEvent {
            event_id: pdu.event_id.as_str(),
            room_id,
            depth: pdu.depth,
            kind: &kind,
            state_key: pdu.state_key.as_deref(),
            sender: pdu.sender.as_str(),
            origin_server_ts: u64::from(pdu.origin_server_ts.get()),
            membership: membership.as_deref(),
            relates_to: relation.and_then(|r| r.get("event_id")).and_then(Value::as_str),
            rel_type: relation.and_then(|r| r.get("rel_type")).and_then(Value::as_str),
            contains_url: content.get("url").is_some_and(Value::is_string),
            txn_device_id: txn.map(|t| t.device_id.as_str()),
            txn_id: txn.map(|t| t.txn_id.as_str()),
            prev_state: prev_state.as_deref(),
            json: &pdu.json,
        },
    )?);
    if let Some(state_key) = &pdu.state_key {
        out.push(current_state::upsert(
            &cx.db,
            room_id,
            &kind,
            state_key,
            pdu.event_id.as_str(),
            membership.as_deref(),
        )?);
        if matches!(membership.as_deref(), Some("join" | "invite" | "knock")) {
            out.push(forgotten_rooms::delete(&cx.db, state_key, room_id)?);
        }
    }
    if let Some(target) = &pdu.redacts {
        out.push(events::set_redacted(&cx.db, target.as_str(), pdu.event_id.as_str(), room_id)?);
    }
    Ok(())
}

/// Applies the checks the authorization rules leave to the server, and fills in what the
/// server adds to a client's event.
fn prepare_template(room: &RoomState, mut template: EventTemplate, facts: &Facts) -> Result<EventTemplate> {
    let sender = template.sender.as_str();
    if template.kind == "m.room.redaction" {
        let own = facts.redacted_sender.as_deref() == Some(sender);
        if !own && room.user_power(sender) < room.action_power("redact") {
            return Err(MatrixError::new(
                ErrorKind::Forbidden,
                "You don't have permission to redact events sent by others",
            )
            .into());
        }
    }
    let is_join = template.kind == "m.room.member"
        && template.state_key.as_deref() == Some(sender)
        && template.content.get("membership").and_then(|m| m.as_str()) == Some("join");
    if is_join {
        // The server vouches for a restricted join, never the client: its value is replaced.
        template.content.remove("join_authorised_via_users_server");
        if let Some(authoriser) = room.restricted_join_authoriser(sender, &facts.joined_rooms) {
            template
                .content
                .insert("join_authorised_via_users_server".into(), ruma_common::CanonicalJsonValue::String(authoriser));
        }
    }
    Ok(template)
}

fn refusal(r: Refusal) -> Error {
    match r {
        Refusal::Forbidden(message) => MatrixError::new(ErrorKind::Forbidden, message).into(),
        Refusal::Build(BuildError::TooLarge) => {
            MatrixError::new(ErrorKind::TooLarge, "The event is larger than 64 KiB").into()
        }
        Refusal::Build(BuildError::DepthExhausted) => {
            MatrixError::new(ErrorKind::Forbidden, "The room has reached its maximum depth").into()
        }
        Refusal::Build(BuildError::Invalid(message)) => MatrixError::new(ErrorKind::BadJson, message).into(),
    }
}

fn copy_error(e: &Error) -> Error {
    match e.matrix() {
        Some(m) => m.clone().into(),
        None => internal("room", "unexpected error kind"),
    }
}
