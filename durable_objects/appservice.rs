//! One application service's transaction queue, named by the service's ID.
//!
//! Room writers hand it the events the service is interested in, each room's in order; they are
//! stored in the object's SQLite storage before the hand-off returns, and a room's events that
//! it already had (a writer that hands off again after a reload) are ignored. Alarms deliver them in stream order as
//! `PUT /_matrix/app/v1/transactions/{txnId}`, at most [`MAX_EVENTS`] at a time, one
//! transaction in flight. A transaction is stored whole before it is first sent, so that a retry
//! (after a failure, a restart or a repeated alarm) sends the same ID with the same body.
//! Failures back off exponentially up to [`MAX_BACKOFF_MS`]; nothing is dropped.
//!
//! A *poke* says that an ephemeral or device list stream moved (see
//! [`crate::appservice::ephemeral`]); the next transaction reads those streams in D1 past the
//! positions kept here, and the positions move with the transaction's delivery, so nothing is
//! sent twice or lost across restarts. An alarm sends at most [`TXNS_PER_ALARM`] transactions
//! and leaves the rest to the next, so that it stays within an invocation's subrequests.

use std::cell::Cell;

use serde::{Deserialize, Serialize};
use worker::{durable_object, DurableObject, Env, Method, Request, Response, SqlStorage, State};

use crate::appservice::ephemeral::{self, Extras};
use crate::appservice::{outbound, registry, Service};
use crate::config::Config;
use crate::error::{internal, Result};
use crate::http::Reply;
use crate::storage::appservice_streams::{self, Positions};
use crate::storage::Db;
use crate::time::now_ms;

pub const MAX_EVENTS: usize = 100;
const FIRST_BACKOFF_MS: i64 = 1_000;
pub const MAX_BACKOFF_MS: i64 = 240_000;
const SEND_TIMEOUT_MS: u64 = 30_000;
/// Each transaction costs a request and up to two D1 batches: 10 stay well inside the 50
/// subrequests of an invocation.
pub const TXNS_PER_ALARM: usize = 10;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queue (stream_ordering INTEGER PRIMARY KEY, event TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS txn (id INTEGER PRIMARY KEY, orderings TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rooms (room_id TEXT PRIMARY KEY, upto INTEGER NOT NULL);";
const INSERT_EVENT: &str = "INSERT OR IGNORE INTO queue (stream_ordering, event) VALUES (?, ?)";
const NEXT_EVENTS: &str = "SELECT stream_ordering, event FROM queue ORDER BY stream_ordering LIMIT ?";
const IN_FLIGHT: &str = "SELECT id, orderings, body FROM txn";
const INSERT_TXN: &str = "INSERT INTO txn (id, orderings, body) VALUES (?, ?, ?)";
const DELETE_DELIVERED: &str = "DELETE FROM queue WHERE stream_ordering IN (SELECT value FROM json_each(?))";
const DELETE_TXN: &str = "DELETE FROM txn";
/// The newest event of each room the object has had: a room's writer hands its events off in
/// order, so anything at or below it is a repeat.
const ROOM_UPTO: &str = "SELECT upto FROM rooms WHERE room_id = ?";
const SET_ROOM_UPTO: &str = "INSERT INTO rooms (room_id, upto) VALUES (?1, ?2) \
     ON CONFLICT (room_id) DO UPDATE SET upto = max(upto, excluded.upto)";
const GET_META: &str = "SELECT value FROM meta WHERE key = ?";
const SET_META: &str = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)";
const DELETE_META: &str = "DELETE FROM meta WHERE key = ?";

/// An event for the service, in client format, at its stream position.
#[derive(Debug, Serialize, Deserialize)]
pub struct Queued {
    pub stream_ordering: u64,
    pub event: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum AppserviceRequest {
    Enqueue {
        service_id: String,
        room_id: String,
        events: Vec<Queued>,
    },
    /// A stream the service may care about moved.
    Poke {
        service_id: String,
    },
}

/// Queues a room's events for a service, oldest first; returns once they are stored. Events at
/// or below the newest the object already has of the room are repeats, and ignored.
pub async fn enqueue(env: &Env, service_id: &str, room_id: &str, events: Vec<Queued>) -> Result<()> {
    let request = AppserviceRequest::Enqueue { service_id: service_id.to_owned(), room_id: room_id.to_owned(), events };
    call(env, service_id, request).await
}

/// Tells a service's object that a stream it reads moved.
pub async fn poke(env: &Env, service_id: &str) -> Result<()> {
    call(env, service_id, AppserviceRequest::Poke { service_id: service_id.to_owned() }).await
}

async fn call(env: &Env, service_id: &str, request: AppserviceRequest) -> Result<()> {
    match super::post(env, "APPSERVICE", service_id, "https://appservice/", &request).await? {
        (200, _) => Ok(()),
        (_, text) => Err(internal("appservice queue", text)),
    }
}

#[durable_object]
pub struct Appservice {
    state: State,
    env: Env,
    /// An alarm is sending: a repeated alarm leaves the work to it.
    sending: Cell<bool>,
}

#[derive(Deserialize)]
struct Row {
    stream_ordering: i64,
    event: String,
}

#[derive(Deserialize)]
struct InFlight {
    id: i64,
    orderings: String,
    body: String,
}

#[derive(Deserialize)]
struct RoomUpto {
    upto: i64,
}

#[derive(Deserialize)]
struct MetaValue {
    value: String,
}

impl DurableObject for Appservice {
    fn new(state: State, env: Env) -> Self {
        Self { state, env, sending: Cell::new(false) }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let outcome = match serde_json::from_str::<AppserviceRequest>(&req.text().await?) {
            Ok(AppserviceRequest::Enqueue { service_id, room_id, events }) => {
                self.enqueue(&service_id, Some((&room_id, events)), false).await
            }
            Ok(AppserviceRequest::Poke { service_id }) => self.enqueue(&service_id, None, true).await,
            Err(e) => Err(internal("appservice request", e)),
        };
        match outcome.and_then(|()| Reply::json(&serde_json::json!({}))) {
            Ok(reply) => reply.into_response(None),
            Err(e) => Reply::error(&e).into_response(None),
        }
    }

    async fn alarm(&self) -> worker::Result<Response> {
        if self.sending.replace(true) {
            return Response::ok("");
        }
        let outcome = self.deliver().await;
        self.sending.set(false);
        if let Err(e) = outcome {
            // Storage faults: try again later rather than lose the queue.
            crate::log::error(&format!("appservice delivery: {e:?}"));
            self.state.storage().set_alarm(FIRST_BACKOFF_MS).await?;
        }
        Response::ok("")
    }
}

impl Appservice {
    fn sql(&self) -> Result<SqlStorage> {
        let sql = self.state.storage().sql();
        sql.exec(SCHEMA, None).map_err(|e| internal("appservice schema", e))?;
        Ok(sql)
    }

    async fn enqueue(&self, service_id: &str, events: Option<(&str, Vec<Queued>)>, poked: bool) -> Result<()> {
        let sql = self.sql()?;
        sql.exec(SET_META, vec!["service_id".into(), service_id.into()]).map_err(|e| internal("appservice", e))?;
        if poked {
            sql.exec(SET_META, vec!["streams_moved".into(), "1".into()]).map_err(|e| internal("appservice", e))?;
        }
        if let Some((room_id, events)) = events {
            let had: Vec<RoomUpto> = sql.exec(ROOM_UPTO, vec![room_id.into()])?.to_array()?;
            let had = had.first().map_or(0, |r| r.upto);
            let mut newest = had;
            for e in events.into_iter().filter(|e| e.stream_ordering as i64 > had) {
                newest = newest.max(e.stream_ordering as i64);
                sql.exec(INSERT_EVENT, vec![(e.stream_ordering as i64).into(), e.event.into()])
                    .map_err(|e| internal("appservice queue", e))?;
            }
            if newest > had {
                sql.exec(SET_ROOM_UPTO, vec![room_id.into(), newest.into()])?;
            }
        }
        // A pending alarm (maybe a backoff) stays as it is: one delivery loop per service.
        if self.state.storage().get_alarm().await?.is_none() && !self.sending.get() {
            self.state.storage().set_alarm(0).await?;
        }
        Ok(())
    }

    fn meta(&self, sql: &SqlStorage, key: &str) -> Result<Option<String>> {
        let rows: Vec<MetaValue> = sql.exec(GET_META, vec![key.into()])?.to_array()?;
        Ok(rows.into_iter().next().map(|r| r.value))
    }

    /// Sends transactions until the queue is empty, the service fails, or this alarm has sent
    /// its share.
    async fn deliver(&self) -> Result<()> {
        let sql = self.sql()?;
        let Some(service_id) = self.meta(&sql, "service_id")? else { return Ok(()) };
        let config = Config::get(&self.env).map_err(|e| internal("configuration", e))?;
        let db = Db::new(&self.env)?;
        let mut rounds = 0;
        loop {
            if rounds == TXNS_PER_ALARM {
                self.state.storage().set_alarm(0).await?;
                return Ok(());
            }
            rounds += 1;
            // A removed service keeps its queue, undelivered, in case it comes back.
            let Some(service) = registry::by_id(&db, config.server_name.as_str(), &service_id).await? else {
                return Ok(());
            };
            let txn = match self.current_txn(&sql, &db, &service).await? {
                Next::Send(txn) => txn,
                Next::Again => continue,
                Next::Idle => return Ok(()),
            };
            let path = format!("/_matrix/app/v1/transactions/{}", txn.id);
            let answer = outbound::call(&service, Method::Put, &path, Some(txn.body.clone()), SEND_TIMEOUT_MS).await;
            match answer {
                Ok(a) if (200..300).contains(&a.status) => {
                    sql.exec(DELETE_DELIVERED, vec![txn.orderings.into()])?;
                    sql.exec(DELETE_TXN, None)?;
                    sql.exec(SET_META, vec!["failures".into(), "0".into()])?;
                    if let Some(positions) = self.meta(&sql, "txn_positions")? {
                        sql.exec(SET_META, vec!["positions".into(), positions.into()])?;
                        sql.exec(DELETE_META, vec!["txn_positions".into()])?;
                    }
                }
                failed => {
                    let failures: u32 = self.meta(&sql, "failures")?.and_then(|f| f.parse().ok()).unwrap_or(0);
                    sql.exec(SET_META, vec!["failures".into(), (failures + 1).to_string().into()])?;
                    let backoff = (FIRST_BACKOFF_MS << failures.min(20)).min(MAX_BACKOFF_MS);
                    let why = match failed {
                        Ok(a) => format!("status {}: {}", a.status, a.body.chars().take(200).collect::<String>()),
                        Err(e) => format!("{e:?}"),
                    };
                    crate::log::error(&format!(
                        "transaction {} to {service_id} failed ({why}); retry in {backoff} ms",
                        txn.id
                    ));
                    self.state.storage().set_alarm(backoff).await?;
                    return Ok(());
                }
            }
        }
    }

    /// The service's stream positions: kept here once known, else where its registration
    /// started them, else the heads the first read sees (`None`).
    async fn positions(&self, sql: &SqlStorage, db: &Db, service: &Service) -> Result<Option<Positions>> {
        if let Some(json) = self.meta(sql, "positions")? {
            return serde_json::from_str(&json).map(Some).map_err(|e| internal("appservice positions", e));
        }
        appservice_streams::start_positions(db, service.id()).await
    }

    /// What the streams add for the service since its positions, when a poke said they moved.
    async fn extras(&self, sql: &SqlStorage, db: &Db, service: &Service) -> Result<Option<Extras>> {
        let wanted = service.wants();
        if !(wanted.ephemeral || wanted.device_lists) || self.meta(sql, "streams_moved")?.as_deref() != Some("1") {
            return Ok(None);
        }
        // Cleared before the read: a poke that comes during it is seen by the next.
        sql.exec(SET_META, vec!["streams_moved".into(), "0".into()])?;
        let known = self.positions(sql, db, service).await?;
        let from = known.unwrap_or_default();
        let changes = appservice_streams::changes(db, &from, wanted, now_ms()).await?;
        let Some(_) = known else {
            // Nothing tells where this service started: from now on.
            let heads = serde_json::to_string(&changes.heads).map_err(|e| internal("positions", e))?;
            sql.exec(SET_META, vec!["positions".into(), heads.into()])?;
            return Ok(None);
        };
        let extras = ephemeral::select(service, &changes, &from, now_ms());
        if extras.more {
            sql.exec(SET_META, vec!["streams_moved".into(), "1".into()])?;
        }
        Ok(Some(extras))
    }

    /// The transaction in flight, or a new one from the head of the queue and the streams.
    async fn current_txn(&self, sql: &SqlStorage, db: &Db, service: &Service) -> Result<Next> {
        let in_flight: Vec<InFlight> = sql.exec(IN_FLIGHT, None)?.to_array()?;
        if let Some(txn) = in_flight.into_iter().next() {
            return Ok(Next::Send(txn));
        }
        let rows: Vec<Row> = sql.exec(NEXT_EVENTS, vec![(MAX_EVENTS as i64).into()])?.to_array()?;
        let extras = self.extras(sql, db, service).await?;
        let nothing_new = extras.as_ref().is_none_or(Extras::is_empty);
        if rows.is_empty() && nothing_new {
            if let Some(extras) = &extras {
                // Nothing there concerned the service: it has seen up to there.
                let upto = serde_json::to_string(&extras.upto).map_err(|e| internal("positions", e))?;
                sql.exec(SET_META, vec!["positions".into(), upto.into()])?;
            }
            return Ok(if extras.is_some_and(|e| e.more) { Next::Again } else { Next::Idle });
        }
        let orderings: Vec<i64> = rows.iter().map(|r| r.stream_ordering).collect();
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            events
                .push(serde_json::from_str::<serde_json::Value>(&row.event).map_err(|e| internal("queued event", e))?);
        }
        let keys = match (&extras, service.registration.msc3202) {
            (Some(extras), true) => {
                let mut users = extras.users.clone();
                for e in &events {
                    for field in ["sender", "state_key"] {
                        if let Some(user) = e.get(field).and_then(serde_json::Value::as_str) {
                            if service.is_interested_in_user(user) {
                                users.insert(user.to_owned());
                            }
                        }
                    }
                }
                let users: Vec<String> = users.into_iter().collect();
                Some(appservice_streams::key_counts(db, &users).await?)
            }
            _ => None,
        };
        let body = ephemeral::transaction_body(events, extras.as_ref(), keys.as_ref());
        let id = self.meta(sql, "next_txn")?.and_then(|n| n.parse::<i64>().ok()).unwrap_or(1);
        let txn = InFlight {
            id,
            orderings: serde_json::to_string(&orderings).map_err(|e| internal("txn", e))?,
            body: body.to_string(),
        };
        sql.exec(SET_META, vec!["next_txn".into(), (id + 1).to_string().into()])?;
        if let Some(extras) = &extras {
            let upto = serde_json::to_string(&extras.upto).map_err(|e| internal("positions", e))?;
            sql.exec(SET_META, vec!["txn_positions".into(), upto.into()])?;
        }
        sql.exec(INSERT_TXN, vec![txn.id.into(), txn.orderings.clone().into(), txn.body.clone().into()])?;
        Ok(Next::Send(txn))
    }
}

/// What the queue and the streams have for the service next.
enum Next {
    Send(InFlight),
    /// Only positions moved, and a stream has more: look again.
    Again,
    Idle,
}
