//! `events`: every accepted event of every room, in global stream order.
//!
//! Readers get [`StoredEvent`] rows: the PDU's JSON with what serving it needs (the redaction
//! that applies, the sending device's transaction ID, the state it replaced).

use serde::Deserialize;

use super::{Db, Param, Statement};
use crate::error::Result;

/// The columns of a [`StoredEvent`], with the redaction joined in as `r`.
const COLUMNS: &str = "e.stream_ordering, e.event_id, e.room_id, e.type, e.state_key, e.sender, \
     e.origin_server_ts, e.membership, e.txn_device_id, e.txn_id, e.prev_state, e.json, r.json AS redaction_json, \
     r.event_id AS redaction_id";
const FROM: &str = "FROM events e LEFT JOIN events r ON r.event_id = e.redacted_by";

const INSERT: &str = "INSERT INTO events (event_id, room_id, depth, type, state_key, sender, origin_server_ts, \
     membership, relates_to, rel_type, contains_url, txn_device_id, txn_id, prev_state, json) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) RETURNING stream_ordering";
const SET_REDACTED: &str =
    "UPDATE events SET redacted_by = ?2 WHERE event_id = ?1 AND room_id = ?3 AND redacted_by IS NULL";
const HEAD: &str = "SELECT event_id, depth FROM events WHERE room_id = ?1 ORDER BY depth DESC LIMIT 1";
const MAX_STREAM: &str = "SELECT coalesce(max(stream_ordering), 0) AS pos FROM events";

/// A new row: the PDU and the columns indexed out of it.
pub struct NewEvent<'a> {
    pub event_id: &'a str,
    pub room_id: &'a str,
    pub depth: u64,
    pub kind: &'a str,
    pub state_key: Option<&'a str>,
    pub sender: &'a str,
    pub origin_server_ts: u64,
    pub membership: Option<&'a str>,
    pub relates_to: Option<&'a str>,
    pub rel_type: Option<&'a str>,
    pub contains_url: bool,
    pub txn_device_id: Option<&'a str>,
    pub txn_id: Option<&'a str>,
    pub prev_state: Option<&'a str>,
    pub json: &'a str,
}

/// Inserts the event; its one result row is `{stream_ordering}`.
pub fn insert(db: &Db, e: &NewEvent<'_>) -> Result<Statement> {
    db.prepare(
        INSERT,
        &[
            &e.event_id,
            &e.room_id,
            &e.depth,
            &e.kind,
            &e.state_key,
            &e.sender,
            &e.origin_server_ts,
            &e.membership,
            &e.relates_to,
            &e.rel_type,
            &e.contains_url,
            &e.txn_device_id,
            &e.txn_id,
            &e.prev_state,
            &e.json,
        ],
    )
}

#[derive(Debug, Deserialize)]
pub struct StreamOrdering {
    pub stream_ordering: f64,
}

pub fn set_redacted(db: &Db, event_id: &str, redaction_id: &str, room_id: &str) -> Result<Statement> {
    db.prepare(SET_REDACTED, &[&event_id, &redaction_id, &room_id])
}

#[derive(Debug, Deserialize)]
pub struct Head {
    pub event_id: String,
    pub depth: f64,
}

/// The newest event of a room.
pub async fn head(db: &Db, room_id: &str) -> Result<Option<Head>> {
    db.first(HEAD, &[&room_id]).await
}

/// The highest stream position committed.
pub async fn max_stream_ordering(db: &Db) -> Result<u64> {
    #[derive(Deserialize)]
    struct Row {
        pos: f64,
    }
    Ok(db.first::<Row>(MAX_STREAM, &[]).await?.map_or(0, |r| r.pos as u64))
}

/// An event as stored, with what serving it needs.
#[derive(Debug, Clone, Deserialize)]
pub struct StoredEvent {
    pub stream_ordering: f64,
    pub event_id: String,
    pub room_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state_key: Option<String>,
    pub sender: String,
    pub origin_server_ts: f64,
    pub membership: Option<String>,
    pub txn_device_id: Option<String>,
    pub txn_id: Option<String>,
    /// JSON `{event_id, sender, content}` of the state event this one replaced.
    pub prev_state: Option<String>,
    pub json: String,
    /// The PDU of the redaction that applies to this event.
    pub redaction_json: Option<String>,
    pub redaction_id: Option<String>,
}

impl StoredEvent {
    pub fn position(&self) -> u64 {
        self.stream_ordering as u64
    }
}

pub async fn get(db: &Db, event_id: &str) -> Result<Option<StoredEvent>> {
    db.first(&format!("SELECT {COLUMNS} {FROM} WHERE e.event_id = ?1"), &[&event_id]).await
}

/// The state of a room just after stream position `at`: the newest event of each state key.
pub async fn state_at(db: &Db, room_id: &str, at: u64) -> Result<Vec<StoredEvent>> {
    let sql = format!(
        "SELECT {COLUMNS} {FROM} WHERE e.room_id = ?1 AND e.state_key IS NOT NULL AND e.stream_ordering = \
         (SELECT max(s.stream_ordering) FROM events s WHERE s.room_id = ?1 AND s.type = e.type \
          AND s.state_key = e.state_key AND s.stream_ordering <= ?2) ORDER BY e.stream_ordering"
    );
    db.all(&sql, &[&room_id, &at]).await
}

/// One state entry of a room just after stream position `at`.
pub async fn state_entry_at(db: &Db, room_id: &str, kind: &str, state_key: &str, at: u64) -> Result<Option<StoredEvent>> {
    let sql = format!(
        "SELECT {COLUMNS} {FROM} WHERE e.room_id = ?1 AND e.type = ?2 AND e.state_key = ?3 \
         AND e.stream_ordering <= ?4 ORDER BY e.stream_ordering DESC LIMIT 1"
    );
    db.first(&sql, &[&room_id, &kind, &state_key, &at]).await
}

/// Which way a page of events runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Newest first, from before `from`.
    Backward,
    /// Oldest first, from after `from`.
    Forward,
}

/// What a page of room events is narrowed to; the filter's lists, already validated.
#[derive(Debug, Default, Clone)]
pub struct EventSelection {
    pub types: Option<Vec<String>>,
    pub not_types: Vec<String>,
    pub senders: Option<Vec<String>>,
    pub not_senders: Vec<String>,
    pub contains_url: Option<bool>,
    /// Only events relating to this one (`relates_to`), with this `rel_type` and event type.
    pub relates_to: Option<String>,
    pub rel_type: Option<String>,
}

/// A page of a room's events strictly between the positions `from` and `to` (either may be
/// open), in the given direction.
pub async fn page(
    db: &Db,
    room_id: &str,
    dir: Direction,
    from: Option<u64>,
    to: Option<u64>,
    selection: &EventSelection,
    limit: u64,
) -> Result<Vec<StoredEvent>> {
    let mut sql = format!("SELECT {COLUMNS} {FROM} WHERE e.room_id = ?1");
    let mut params: Vec<Box<dyn Param>> = vec![Box::new(room_id.to_owned())];
    let mut bind = |sql: &mut String, fragment: &str, value: Box<dyn Param>| {
        params.push(value);
        sql.push_str(&fragment.replace('?', &format!("?{}", params.len())));
    };
    let (before, after) = match dir {
        Direction::Backward => (from, to),
        Direction::Forward => (to, from),
    };
    if let Some(before) = before {
        bind(&mut sql, " AND e.stream_ordering < ?", Box::new(before));
    }
    if let Some(after) = after {
        bind(&mut sql, " AND e.stream_ordering > ?", Box::new(after));
    }
    if let Some(types) = &selection.types {
        sql.push_str(" AND (0");
        for t in types {
            bind(&mut sql, " OR e.type GLOB ?", Box::new(glob(t)));
        }
        sql.push(')');
    }
    for t in &selection.not_types {
        bind(&mut sql, " AND e.type NOT GLOB ?", Box::new(glob(t)));
    }
    if let Some(senders) = &selection.senders {
        sql.push_str(" AND (0");
        for s in senders {
            bind(&mut sql, " OR e.sender = ?", Box::new(s.clone()));
        }
        sql.push(')');
    }
    for s in &selection.not_senders {
        bind(&mut sql, " AND e.sender != ?", Box::new(s.clone()));
    }
    if let Some(contains_url) = selection.contains_url {
        bind(&mut sql, " AND e.contains_url = ?", Box::new(contains_url));
    }
    if let Some(relates_to) = &selection.relates_to {
        bind(&mut sql, " AND e.relates_to = ?", Box::new(relates_to.clone()));
    }
    if let Some(rel_type) = &selection.rel_type {
        bind(&mut sql, " AND e.rel_type = ?", Box::new(rel_type.clone()));
    }
    let order = if dir == Direction::Backward { "DESC" } else { "ASC" };
    bind(&mut sql, &format!(" ORDER BY e.stream_ordering {order} LIMIT ?"), Box::new(limit));
    let refs: Vec<&dyn Param> = params.iter().map(|p| p.as_ref()).collect();
    db.all(&sql, &refs).await
}

/// A filter's event type pattern as a GLOB: `*` stays a wildcard, other GLOB syntax is literal.
fn glob(pattern: &str) -> String {
    pattern.replace('[', "[[]").replace('?', "[?]")
}

/// Thread roots of a room with their newest reply's position, newest first, before `before`.
pub async fn thread_roots(db: &Db, room_id: &str, before: Option<u64>, limit: u64) -> Result<Vec<(String, u64)>> {
    #[derive(Deserialize)]
    struct Row {
        root: String,
        latest: f64,
    }
    let sql = "SELECT relates_to AS root, max(stream_ordering) AS latest FROM events \
         WHERE room_id = ?1 AND rel_type = 'm.thread' GROUP BY relates_to HAVING latest < ?2 \
         ORDER BY latest DESC LIMIT ?3";
    let before = before.unwrap_or(u64::MAX >> 11);
    let rows: Vec<Row> = db.all(sql, &[&room_id, &before, &limit]).await?;
    Ok(rows.into_iter().map(|r| (r.root, r.latest as u64)).collect())
}

/// The event closest to a timestamp in a direction: at or after it (forward), at or before it.
pub async fn closest_to_ts(db: &Db, room_id: &str, ts: u64, dir: Direction) -> Result<Option<StoredEvent>> {
    let sql = match dir {
        Direction::Forward => format!(
            "SELECT {COLUMNS} {FROM} WHERE e.room_id = ?1 AND e.origin_server_ts >= ?2 \
             ORDER BY e.origin_server_ts ASC, e.stream_ordering ASC LIMIT 1"
        ),
        Direction::Backward => format!(
            "SELECT {COLUMNS} {FROM} WHERE e.room_id = ?1 AND e.origin_server_ts <= ?2 \
             ORDER BY e.origin_server_ts DESC, e.stream_ordering DESC LIMIT 1"
        ),
    };
    db.first(&sql, &[&room_id, &ts]).await
}

/// A user's membership event in a room at or before a position: `(membership, stream_ordering)`.
pub async fn membership_at(db: &Db, room_id: &str, user_id: &str, at: u64) -> Result<Option<(String, u64)>> {
    #[derive(Deserialize)]
    struct Row {
        membership: Option<String>,
        stream_ordering: f64,
    }
    let sql = "SELECT membership, stream_ordering FROM events WHERE room_id = ?1 AND type = 'm.room.member' \
         AND state_key = ?2 AND stream_ordering <= ?3 ORDER BY stream_ordering DESC LIMIT 1";
    let row: Option<Row> = db.first(sql, &[&room_id, &user_id, &at]).await?;
    Ok(row.map(|r| (r.membership.unwrap_or_default(), r.stream_ordering as u64)))
}

/// The state changes of a room in the half-open range `(after, upto]` for the given types, oldest
/// first: what a reader walking the timeline sees change.
pub async fn state_changes(db: &Db, room_id: &str, after: u64, upto: u64, types: &[&str]) -> Result<Vec<StoredEvent>> {
    let mut sql = format!(
        "SELECT {COLUMNS} {FROM} WHERE e.room_id = ?1 AND e.state_key IS NOT NULL \
         AND e.stream_ordering > ?2 AND e.stream_ordering <= ?3 AND e.type IN ("
    );
    let mut params: Vec<Box<dyn Param>> = vec![Box::new(room_id.to_owned()), Box::new(after), Box::new(upto)];
    for (i, t) in types.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        params.push(Box::new((*t).to_owned()));
        sql.push_str(&format!("?{}", params.len()));
    }
    sql.push_str(") ORDER BY e.stream_ordering");
    let refs: Vec<&dyn Param> = params.iter().map(|p| p.as_ref()).collect();
    db.all(&sql, &refs).await
}
