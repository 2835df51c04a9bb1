//! `events`: every accepted event of every room, in global stream order.
//!
//! Readers get [`StoredEvent`] rows: the PDU's JSON with what serving it needs (the redaction
//! that applies, the sending device's transaction ID, the state it replaced).

use serde::Deserialize;

use super::{Db, Param, Statement};
use crate::error::Result;
use crate::room::visibility::Range;

/// The columns of a [`StoredEvent`], with the redaction joined in as `r`.
const COLUMNS: &str = "e.stream_ordering, e.event_id, e.room_id, e.type, e.state_key, e.sender, \
     e.origin_server_ts, e.membership, e.txn_device_id, e.txn_id, e.prev_state, e.json, r.json AS redaction_json, \
     r.event_id AS redaction_id, EXISTS (SELECT 1 FROM erased_users x WHERE x.user_id = e.sender) AS sender_erased";
const FROM: &str = "FROM events e LEFT JOIN events r ON r.event_id = e.redacted_by";
/// [`FROM`] through the state index: without it SQLite reads every event of the room.
const STATE_FROM: &str = "FROM events e INDEXED BY events_state LEFT JOIN events r ON r.event_id = e.redacted_by";

const INSERT: &str = "INSERT INTO events (event_id, room_id, depth, type, state_key, sender, origin_server_ts, \
     membership, relates_to, rel_type, contains_url, txn_device_id, txn_id, prev_state, json) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) RETURNING stream_ordering";
// A redacted event's content no longer relates it to anything nor carries a URL.
const SET_REDACTED: &str = "UPDATE events SET redacted_by = ?2, relates_to = NULL, rel_type = NULL, contains_url = 0 \
     WHERE event_id = ?1 AND room_id = ?3 AND redacted_by IS NULL";
const HEAD: &str = "SELECT event_id, depth FROM events WHERE room_id = ?1 ORDER BY depth DESC LIMIT 1";

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
    /// Whether the sender's account was erased (1): readers who were not in the room when it was
    /// sent see it redacted.
    #[serde(default)]
    pub sender_erased: f64,
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
        "SELECT {COLUMNS} {STATE_FROM} WHERE e.room_id = ?1 AND e.state_key IS NOT NULL AND e.stream_ordering = \
         (SELECT max(s.stream_ordering) FROM events s WHERE s.room_id = ?1 AND s.type = e.type \
          AND s.state_key = e.state_key AND s.stream_ordering <= ?2) ORDER BY e.stream_ordering"
    );
    db.all(&sql, &[&room_id, &at]).await
}

/// One state entry of a room just after stream position `at`.
pub async fn state_entry_at(
    db: &Db,
    room_id: &str,
    kind: &str,
    state_key: &str,
    at: u64,
) -> Result<Option<StoredEvent>> {
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
    /// Only events at these stream positions: what history visibility lets the reader see.
    pub visible: Option<Vec<Range>>,
    /// Leave out redacted events (a redacted relation no longer relates).
    pub exclude_redacted: bool,
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
    // Relations are found through their own index; the room's would scan the whole room.
    let from_clause = match selection.relates_to {
        Some(_) => FROM.replacen("events e", "events e INDEXED BY events_relations", 1),
        None => FROM.to_owned(),
    };
    let mut sql = format!("SELECT {COLUMNS} {from_clause} WHERE e.room_id = ?1");
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
    // Each list is one JSON array parameter: D1 binds at most 100 parameters per statement.
    let json_list = |items: &[String]| serde_json::Value::from(items.to_vec()).to_string();
    if let Some(types) = &selection.types {
        let (condition, patterns) = type_condition(types, true);
        bind(&mut sql, &condition, Box::new(patterns));
    }
    if !selection.not_types.is_empty() {
        let (condition, patterns) = type_condition(&selection.not_types, false);
        bind(&mut sql, &condition, Box::new(patterns));
    }
    if let Some(senders) = &selection.senders {
        bind(&mut sql, " AND e.sender IN (SELECT value FROM json_each(?))", Box::new(json_list(senders)));
    }
    if !selection.not_senders.is_empty() {
        bind(
            &mut sql,
            " AND e.sender NOT IN (SELECT value FROM json_each(?))",
            Box::new(json_list(&selection.not_senders)),
        );
    }
    // A redacted event has lost its `url` with the rest of its content.
    match selection.contains_url {
        Some(true) => sql.push_str(" AND e.contains_url = 1 AND e.redacted_by IS NULL"),
        Some(false) => sql.push_str(" AND (e.contains_url = 0 OR e.redacted_by IS NOT NULL)"),
        None => {}
    }
    if selection.exclude_redacted {
        sql.push_str(" AND e.redacted_by IS NULL");
    }
    if let Some(visible) = &selection.visible {
        sql.push_str(" AND ");
        sql.push_str(&positions_clause("e.stream_ordering", visible));
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

/// Whether `e.type` matches one of the patterns in the JSON parameter `?`, each given as the
/// pieces between its `*`s. One piece is an exact type. More must start and end the type, and
/// the pieces between them must follow in order in what lies between, each found leftmost (which
/// finds a match whenever there is one). No GLOB nor LIKE: D1 refuses their patterns past 50
/// bytes, and event types run to 255.
const TYPE_MATCHES: &str = "EXISTS (SELECT 1 FROM json_each(?) j WHERE CASE json_array_length(j.value) \
     WHEN 1 THEN e.type = json_extract(j.value, '$[0]') \
     ELSE length(e.type) >= length(json_extract(j.value, '$[0]')) + length(json_extract(j.value, '$[#-1]')) \
     AND substr(e.type, 1, length(json_extract(j.value, '$[0]'))) = json_extract(j.value, '$[0]') \
     AND substr(e.type, length(e.type) - length(json_extract(j.value, '$[#-1]')) + 1) \
         = json_extract(j.value, '$[#-1]') \
     AND (json_array_length(j.value) = 2 OR EXISTS (WITH RECURSIVE m(i, rest) AS ( \
         SELECT 1, substr(e.type, length(json_extract(j.value, '$[0]')) + 1, length(e.type) \
             - length(json_extract(j.value, '$[0]')) - length(json_extract(j.value, '$[#-1]'))) \
         UNION ALL SELECT i + 1, substr(rest, instr(rest, json_extract(j.value, '$[' || i || ']')) \
             + length(json_extract(j.value, '$[' || i || ']'))) FROM m \
         WHERE i < json_array_length(j.value) - 1 AND instr(rest, json_extract(j.value, '$[' || i || ']')) > 0) \
       SELECT 1 FROM m WHERE i = json_array_length(j.value) - 1)) END)";

/// The condition that an event's type matches one of a filter's patterns (`*` matches any run of
/// characters, every other character itself), or none of them, and its one parameter.
fn type_condition(patterns: &[String], matching: bool) -> (String, String) {
    let pieces: Vec<Vec<&str>> = patterns.iter().map(|p| p.split('*').collect()).collect();
    let negation = if matching { "" } else { "NOT " };
    (format!(" AND {negation}{TYPE_MATCHES}"), serde_json::Value::from(pieces).to_string())
}

/// The most ranges of positions a query spells out; past it, their hull, and the caller filters.
const MAX_SPELLED_RANGES: usize = 64;

/// An SQL condition that `column` lies in one of the ranges (none: false). The numbers are ours,
/// written inline, so any number of ranges costs no bound parameter. The unary `+` keeps SQLite
/// from scanning the whole table by rowid instead of using the room's index. Past
/// [`MAX_SPELLED_RANGES`] the condition is the ranges' hull, which lets through positions
/// between the ranges: callers check each row again.
pub fn positions_clause(column: &str, ranges: &[Range]) -> String {
    let (Some(first), Some(last)) = (ranges.first(), ranges.last()) else { return "0".to_owned() };
    let hull = [Range { first: first.first, last: last.last }];
    let ranges = if ranges.len() > MAX_SPELLED_RANGES { &hull[..] } else { ranges };
    let terms: Vec<String> = ranges
        .iter()
        .map(|r| match r.first == r.last {
            true => format!("+{column} = {}", r.first),
            false => format!("+{column} BETWEEN {} AND {}", r.first, r.last),
        })
        .collect();
    format!("({})", terms.join(" OR "))
}

/// What narrows the hull of [`positions_clause`] to the ranges themselves in a query that must be
/// exact: `None` (bound as NULL) when the clause spells them out, else a JSON array of
/// `[first, last]` pairs for [`in_ranges_of_param`].
fn ranges_past_spelled(ranges: &[Range]) -> Option<String> {
    (ranges.len() > MAX_SPELLED_RANGES)
        .then(|| serde_json::Value::from(ranges.iter().map(|r| vec![r.first, r.last]).collect::<Vec<_>>()).to_string())
}

/// An SQL condition that `column` lies in one of the ranges of parameter `?{param}`, bound to
/// [`ranges_past_spelled`]; true when that is NULL.
fn in_ranges_of_param(column: &str, param: usize) -> String {
    format!(
        "(?{param} IS NULL OR EXISTS (SELECT 1 FROM json_each(?{param}) v \
         WHERE {column} BETWEEN json_extract(v.value, '$[0]') AND json_extract(v.value, '$[1]')))"
    )
}

/// One row of a user's visibility timeline in a room: a history visibility setting, one of the
/// user's memberships, or the `head` row (the snapshot position, and whether the user forgot
/// the room).
#[derive(Debug, Deserialize)]
pub struct TimelineRow {
    pub stream_ordering: f64,
    /// `m.room.history_visibility`, `m.room.member` or `head`.
    pub kind: String,
    pub membership: Option<String>,
    pub visibility: Option<String>,
    /// On the `head` row: 1 when the user forgot the room.
    pub forgotten: Option<f64>,
}

/// Every history visibility setting of a room and every membership of one user in it, and the
/// highest committed stream position, all read at one snapshot. Both lookups use
/// `events_state`. The `head` row also reads `forgotten_rooms`, so that the user's whole view
/// of the room takes one query.
pub async fn visibility_timeline(db: &Db, room_id: &str, user_id: &str) -> Result<Vec<TimelineRow>> {
    let sql = "SELECT stream_ordering, type AS kind, NULL AS membership, \
         json_extract(json, '$.content.history_visibility') AS visibility, NULL AS forgotten FROM events \
         WHERE room_id = ?1 AND type = 'm.room.history_visibility' AND state_key = '' \
         UNION ALL SELECT stream_ordering, type, membership, NULL, NULL FROM events \
         WHERE room_id = ?1 AND type = 'm.room.member' AND state_key = ?2 \
         UNION ALL SELECT (SELECT coalesce(max(stream_ordering), 0) FROM events), 'head', NULL, NULL, \
         EXISTS (SELECT 1 FROM forgotten_rooms WHERE user_id = ?2 AND room_id = ?1)";
    db.all(sql, &[&room_id, &user_id]).await
}

/// The state events of one type in a room just after stream position `at`.
pub async fn state_of_type_at(db: &Db, room_id: &str, kind: &str, at: u64) -> Result<Vec<StoredEvent>> {
    let sql = format!(
        "SELECT {COLUMNS} {STATE_FROM} WHERE e.room_id = ?1 AND e.type = ?2 AND e.state_key IS NOT NULL \
         AND e.stream_ordering = (SELECT max(s.stream_ordering) FROM events s WHERE s.room_id = ?1 AND s.type = ?2 \
          AND s.state_key = e.state_key AND s.stream_ordering <= ?3) ORDER BY e.stream_ordering"
    );
    db.all(&sql, &[&room_id, &kind, &at]).await
}

/// The membership events of some users in a room just after stream position `at`.
pub async fn members_at(db: &Db, room_id: &str, user_ids: &[String], at: u64) -> Result<Vec<StoredEvent>> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {COLUMNS} {STATE_FROM} WHERE e.room_id = ?1 AND e.type = 'm.room.member' \
         AND e.state_key IN (SELECT value FROM json_each(?2)) \
         AND e.stream_ordering = (SELECT max(s.stream_ordering) FROM events s WHERE s.room_id = ?1 \
          AND s.type = 'm.room.member' AND s.state_key = e.state_key AND s.stream_ordering <= ?3) \
         ORDER BY e.stream_ordering"
    );
    let users = serde_json::Value::from(user_ids.to_vec()).to_string();
    db.all(&sql, &[&room_id, &users, &at]).await
}

/// Events by ID, in stream order; unknown IDs are left out.
pub async fn get_many(db: &Db, event_ids: &[String]) -> Result<Vec<StoredEvent>> {
    if event_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {COLUMNS} {FROM} WHERE e.event_id IN (SELECT value FROM json_each(?1)) ORDER BY e.stream_ordering"
    );
    db.all(&sql, &[&serde_json::Value::from(event_ids.to_vec()).to_string()]).await
}

/// The visible event closest to a timestamp in a direction: at or after it (forward), or at or
/// before it (backward). Uses `events_by_time`, whose entries end with the rowid.
pub async fn closest_visible_to_ts(
    db: &Db,
    room_id: &str,
    ts: u64,
    dir: Direction,
    visible: &[Range],
) -> Result<Vec<StoredEvent>> {
    let positions = positions_clause("e.stream_ordering", visible);
    let sql = match dir {
        Direction::Forward => format!(
            "SELECT {COLUMNS} {FROM} WHERE e.room_id = ?1 AND e.origin_server_ts >= ?2 AND {positions} \
             ORDER BY e.origin_server_ts ASC, e.stream_ordering ASC LIMIT 20"
        ),
        Direction::Backward => format!(
            "SELECT {COLUMNS} {FROM} WHERE e.room_id = ?1 AND e.origin_server_ts <= ?2 AND {positions} \
             ORDER BY e.origin_server_ts DESC, e.stream_ordering DESC LIMIT 20"
        ),
    };
    db.all(&sql, &[&room_id, &ts]).await
}

/// A thread as a reader sees it: its root, its newest reply and how many replies it has, among
/// the replies the reader may see.
#[derive(Debug, Clone, Deserialize)]
pub struct ThreadSummary {
    pub root: String,
    /// The newest visible reply's stream position and ID.
    pub latest: f64,
    pub latest_id: String,
    pub count: f64,
    /// 1 when the reader sent the root or a reply.
    pub participated: f64,
}

/// What [`thread_summaries`] looks at.
#[derive(Debug, Clone)]
pub struct ThreadQuery<'a> {
    pub room_id: &'a str,
    /// The reader, for `participated`.
    pub user_id: &'a str,
    /// The positions the reader may see: replies and roots outside them do not count.
    pub visible: &'a [Range],
    /// Only threads whose newest visible reply is at or before this position.
    pub up_to: Option<u64>,
    pub participated_only: bool,
    pub limit: u64,
}

/// Threads with their newest visible reply first. Redacted replies no longer relate, and are
/// left out. Exact however many ranges the reader sees: past the ones spelled out, the hull is
/// narrowed by a lookup in `?5`.
pub async fn thread_summaries(db: &Db, q: &ThreadQuery<'_>) -> Result<Vec<ThreadSummary>> {
    let replies = format!(
        "{} AND {}",
        positions_clause("t.stream_ordering", q.visible),
        in_ranges_of_param("t.stream_ordering", 5)
    );
    let roots_visible = format!(
        "{} AND {}",
        positions_clause("r.stream_ordering", q.visible),
        in_ranges_of_param("r.stream_ordering", 5)
    );
    let participated = if q.participated_only { " AND participated = 1" } else { "" };
    // The newest reply's ID: SQLite takes bare columns from the row that holds the max(), when
    // the query has only the one max() or min().
    let sql = format!(
        "SELECT t.relates_to AS root, max(t.stream_ordering) AS latest, t.event_id AS latest_id, \
         count(*) AS count, sum(t.sender = ?2 OR r.sender = ?2) > 0 AS participated \
         FROM events t INDEXED BY events_threads CROSS JOIN events r ON r.event_id = t.relates_to \
         WHERE t.room_id = ?1 AND t.rel_type = 'm.thread' AND t.redacted_by IS NULL AND r.room_id = ?1 \
         AND {replies} AND {roots_visible} \
         GROUP BY t.relates_to HAVING latest <= ?3{participated} ORDER BY latest DESC LIMIT ?4"
    );
    let up_to = q.up_to.unwrap_or(u64::MAX >> 11);
    let ranges = ranges_past_spelled(q.visible);
    db.all(&sql, &[&q.room_id, &q.user_id, &up_to, &q.limit, &ranges]).await
}

/// A parent event, with what its reader may see of its room: the events served around it.
#[derive(Debug, Clone)]
pub struct Parent<'a> {
    pub event_id: &'a str,
    pub room_id: &'a str,
    /// Nothing after this position counts.
    pub head: u64,
    /// The positions the reader may see.
    pub visible: &'a [Range],
}

/// Parents as one JSON parameter: `[event_id, room_id, head, [[first, last], ...]]` each.
fn parents_param(parents: &[Parent<'_>]) -> String {
    let rows: Vec<serde_json::Value> = parents
        .iter()
        .map(|p| {
            let ranges: Vec<[u64; 2]> = p.visible.iter().map(|r| [r.first, r.last]).collect();
            serde_json::json!([p.event_id, p.room_id, p.head, ranges])
        })
        .collect();
    serde_json::Value::from(rows).to_string()
}

/// The summaries of the threads rooted at some events, of any number of rooms in one query: per
/// root, its replies in its room that its reader may see, up to the root's `head` (a root the
/// reader may not see has none). Each root is one range of `events_relations`.
pub async fn thread_summaries_of_roots(db: &Db, user_id: &str, roots: &[Parent<'_>]) -> Result<Vec<ThreadSummary>> {
    if roots.is_empty() {
        return Ok(Vec::new());
    }
    db.all(THREAD_SUMMARIES_OF_ROOTS, &[&user_id, &parents_param(roots)]).await
}

/// `?2` is [`parents_param`]; the bare `t.event_id` is the max() row's, as in [`thread_summaries`].
const THREAD_SUMMARIES_OF_ROOTS: &str = "SELECT t.relates_to AS root, max(t.stream_ordering) AS latest, \
     t.event_id AS latest_id, count(*) AS count, sum(t.sender = ?1 OR r.sender = ?1) > 0 AS participated \
     FROM json_each(?2) j CROSS JOIN events t INDEXED BY events_relations CROSS JOIN events r ON r.event_id = t.relates_to \
     WHERE t.relates_to = json_extract(j.value, '$[0]') AND t.room_id = json_extract(j.value, '$[1]') \
     AND t.rel_type = 'm.thread' AND t.redacted_by IS NULL AND r.room_id = t.room_id \
     AND t.stream_ordering <= json_extract(j.value, '$[2]') AND r.stream_ordering <= json_extract(j.value, '$[2]') \
     AND EXISTS (SELECT 1 FROM json_each(json_extract(j.value, '$[3]')) v \
       WHERE t.stream_ordering BETWEEN json_extract(v.value, '$[0]') AND json_extract(v.value, '$[1]')) \
     AND EXISTS (SELECT 1 FROM json_each(json_extract(j.value, '$[3]')) v \
       WHERE r.stream_ordering BETWEEN json_extract(v.value, '$[0]') AND json_extract(v.value, '$[1]')) \
     GROUP BY t.relates_to";

/// Which of some events have children that the served events aggregate (`m.thread` replies,
/// `m.replace` edits, `m.reference` references) in their own room: `(parent, rel_type)` pairs,
/// each once. `parents` are `(room_id, event_id)`.
pub async fn aggregated_children(db: &Db, parents: &[(&str, &str)]) -> Result<Vec<(String, String)>> {
    #[derive(Deserialize)]
    struct Row {
        relates_to: String,
        rel_type: String,
    }
    if parents.is_empty() {
        return Ok(Vec::new());
    }
    let pairs: Vec<[&str; 2]> = parents.iter().map(|(room, event)| [*room, *event]).collect();
    let pairs = serde_json::to_string(&pairs).map_err(|e| crate::error::internal("aggregations", e))?;
    let rows: Vec<Row> = db.all(AGGREGATED_CHILDREN, &[&pairs]).await?;
    Ok(rows.into_iter().map(|r| (r.relates_to, r.rel_type)).collect())
}

const AGGREGATED_CHILDREN: &str = "SELECT DISTINCT e.relates_to, e.rel_type FROM json_each(?1) j \
     CROSS JOIN events e INDEXED BY events_relations WHERE e.relates_to = json_extract(j.value, '$[1]') \
     AND e.room_id = json_extract(j.value, '$[0]') AND e.rel_type IN ('m.thread', 'm.replace', 'm.reference')";

/// The replacements (`m.replace`) of some events, of any rooms, at or before stream position
/// `up_to` that the spec counts as valid, oldest first: in the original's room, from its sender,
/// of its type, neither of them a state event nor redacted, the original no replacement itself.
pub async fn replacements(db: &Db, targets: &[String], up_to: u64) -> Result<Vec<StoredEvent>> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM events e INDEXED BY events_relations LEFT JOIN events r ON r.event_id = e.redacted_by \
         CROSS JOIN events o ON o.event_id = e.relates_to \
         WHERE e.relates_to IN (SELECT value FROM json_each(?1)) AND e.rel_type = 'm.replace' \
         AND e.state_key IS NULL AND e.redacted_by IS NULL AND e.stream_ordering <= ?2 \
         AND o.room_id = e.room_id AND o.sender = e.sender AND o.type = e.type AND o.state_key IS NULL \
         AND o.redacted_by IS NULL AND o.rel_type IS NOT 'm.replace' ORDER BY e.stream_ordering"
    );
    let targets = serde_json::Value::from(targets.to_vec()).to_string();
    db.all(&sql, &[&targets, &up_to]).await
}

/// One reference (`m.reference`) to a served event.
#[derive(Debug, Clone, Deserialize)]
pub struct Reference {
    pub relates_to: String,
    pub event_id: String,
    pub room_id: String,
    pub stream_ordering: f64,
}

impl Reference {
    pub fn position(&self) -> u64 {
        self.stream_ordering as u64
    }
}

const REFERENCES: &str = "SELECT e.relates_to, e.event_id, e.room_id, e.stream_ordering \
     FROM events e INDEXED BY events_relations CROSS JOIN events o ON o.event_id = e.relates_to \
     WHERE e.relates_to IN (SELECT value FROM json_each(?1)) AND e.rel_type = 'm.reference' \
     AND e.redacted_by IS NULL AND e.stream_ordering <= ?2 AND o.room_id = e.room_id ORDER BY e.stream_ordering";

/// The unredacted references to some events, of any rooms, in their parent's room at or before
/// `up_to`, oldest first.
pub async fn references(db: &Db, targets: &[String], up_to: u64) -> Result<Vec<Reference>> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let targets = serde_json::Value::from(targets.to_vec()).to_string();
    db.all(REFERENCES, &[&targets, &up_to]).await
}

const REDACT_PREV_STATE: &str = "UPDATE events SET prev_state = json_set(prev_state, '$.content', json(?5)) \
     WHERE room_id = ?1 AND type = ?3 AND state_key = ?4 AND json_extract(prev_state, '$.event_id') = ?2";

/// Redacts the copy of a state event's content that the event replacing it keeps as
/// `prev_content`.
pub fn redact_prev_state(
    db: &Db,
    room_id: &str,
    event_id: &str,
    kind: &str,
    state_key: &str,
    redacted_content_json: &str,
) -> Result<Statement> {
    db.prepare(REDACT_PREV_STATE, &[&room_id, &event_id, &kind, &state_key, &redacted_content_json])
}

/// The highest stream position committed (see [`super::streams`]).
const ROOM_EVENTS_AFTER: &str = "SELECT stream_ordering, event_id, json FROM events INDEXED BY events_by_room \
     WHERE room_id = ?1 AND stream_ordering > ?2 ORDER BY stream_ordering LIMIT ?3";

/// An event as committed, for a hand-off that a room's writer has to do again.
#[derive(Debug, Deserialize)]
pub struct CommittedRow {
    pub stream_ordering: f64,
    pub event_id: String,
    pub json: String,
}

/// The oldest `limit` events of a room after stream position `after`, oldest first.
pub async fn room_events_after(db: &Db, room_id: &str, after: u64, limit: u64) -> Result<Vec<CommittedRow>> {
    db.all(ROOM_EVENTS_AFTER, &[&room_id, &after, &limit]).await
}

pub(super) const MAX_STREAM: &str = "SELECT coalesce(max(stream_ordering), 0) AS pos FROM events";
const ROOMS_WITH_EVENTS_BETWEEN: &str = "SELECT DISTINCT room_id FROM events INDEXED BY events_by_room \
     WHERE room_id IN (SELECT value FROM json_each(?1)) AND stream_ordering > ?2 AND stream_ordering <= ?3";

/// Which of the rooms have events in the stream range `(after, upto]`: one index range per room,
/// however old `after` is.
pub async fn rooms_with_events_between(db: &Db, room_ids: &[String], after: u64, upto: u64) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        room_id: String,
    }
    if room_ids.is_empty() || upto <= after {
        return Ok(Vec::new());
    }
    let ids = serde_json::to_string(room_ids).map_err(|e| crate::error::internal("room list", e))?;
    let rows: Vec<Row> = db.all(ROOMS_WITH_EVENTS_BETWEEN, &[&ids, &after, &upto]).await?;
    Ok(rows.into_iter().map(|r| r.room_id).collect())
}

/// Bounded timelines of many rooms in one query. `?1` is a JSON array of
/// `[room_id, after, upto, [[first, last], ...]]`: per room, its newest `?2` events in
/// `(after, upto]` at positions in the ranges. Each room is one index range read from its newest
/// end; `CROSS JOIN` keeps the rooms outermost. (SQLite takes no per-room LIMIT in a correlated
/// subquery, so rooms with different limits take a query per limit.)
const TIMELINES: &str = "SELECT e.stream_ordering, e.event_id, e.room_id, e.type, e.state_key, e.sender, \
     e.origin_server_ts, e.membership, e.txn_device_id, e.txn_id, e.prev_state, e.json, r.json AS redaction_json, \
     r.event_id AS redaction_id, EXISTS (SELECT 1 FROM erased_users x WHERE x.user_id = e.sender) AS sender_erased FROM json_each(?1) j CROSS JOIN events e LEFT JOIN events r ON r.event_id = e.redacted_by \
     WHERE e.stream_ordering IN (SELECT s.stream_ordering FROM events s INDEXED BY events_by_room \
       WHERE s.room_id = json_extract(j.value, '$[0]') AND s.stream_ordering > json_extract(j.value, '$[1]') \
       AND s.stream_ordering <= json_extract(j.value, '$[2]') \
       AND EXISTS (SELECT 1 FROM json_each(json_extract(j.value, '$[3]')) v \
         WHERE s.stream_ordering BETWEEN json_extract(v.value, '$[0]') AND json_extract(v.value, '$[1]')) \
       ORDER BY s.stream_ordering DESC LIMIT ?2) \
     ORDER BY e.stream_ordering";

/// What [`timelines`] reads of one room.
#[derive(Debug, Clone)]
pub struct TimelineWindow<'a> {
    pub room_id: &'a str,
    /// Only events after this position, and at or before `upto`.
    pub after: u64,
    pub upto: u64,
    /// The positions the reader may see.
    pub visible: &'a [Range],
}

/// The newest `limit` events of each window, all rooms in one query, oldest first.
pub async fn timelines(db: &Db, windows: &[TimelineWindow<'_>], limit: u64) -> Result<Vec<StoredEvent>> {
    let windows: Vec<serde_json::Value> = windows
        .iter()
        .filter(|w| w.upto > w.after && !w.visible.is_empty())
        .map(|w| {
            let ranges: Vec<[u64; 2]> = w.visible.iter().map(|r| [r.first, r.last]).collect();
            serde_json::json!([w.room_id, w.after, w.upto, ranges])
        })
        .collect();
    if windows.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    db.all(TIMELINES, &[&serde_json::Value::from(windows).to_string(), &limit]).await
}

/// The history visibility settings of many rooms and one user's memberships in them, each half
/// through `events_state`.
const VISIBILITY_TIMELINES: &str = "SELECT room_id, stream_ordering, type AS kind, NULL AS membership, \
     json_extract(json, '$.content.history_visibility') AS visibility FROM events INDEXED BY events_state \
     WHERE room_id IN (SELECT value FROM json_each(?1)) AND type = 'm.room.history_visibility' AND state_key = '' \
     UNION ALL SELECT room_id, stream_ordering, type, membership, NULL FROM events INDEXED BY events_state \
     WHERE room_id IN (SELECT value FROM json_each(?1)) AND type = 'm.room.member' AND state_key = ?2";

/// The rows of [`visibility_timeline`] of many rooms at once, by room, without their `head`
/// rows: the caller knows its snapshot.
pub async fn visibility_timelines(
    db: &Db,
    room_ids: &[String],
    user_id: &str,
) -> Result<std::collections::BTreeMap<String, Vec<TimelineRow>>> {
    #[derive(Deserialize)]
    struct Row {
        room_id: String,
        stream_ordering: f64,
        kind: String,
        membership: Option<String>,
        visibility: Option<String>,
    }
    let mut rooms: std::collections::BTreeMap<String, Vec<TimelineRow>> = std::collections::BTreeMap::new();
    if room_ids.is_empty() {
        return Ok(rooms);
    }
    let ids = serde_json::to_string(room_ids).map_err(|e| crate::error::internal("room list", e))?;
    let rows: Vec<Row> = db.all(VISIBILITY_TIMELINES, &[&ids, &user_id]).await?;
    for r in rows {
        let row = TimelineRow {
            stream_ordering: r.stream_ordering,
            kind: r.kind,
            membership: r.membership,
            visibility: r.visibility,
            forgotten: None,
        };
        rooms.entry(r.room_id).or_default().push(row);
    }
    Ok(rooms)
}

const MEMBERSHIP_AT: &str = "SELECT membership FROM events WHERE room_id = ?1 AND type = 'm.room.member' \
     AND state_key = ?2 AND stream_ordering <= ?3 ORDER BY stream_ordering DESC LIMIT 1";

/// A user's membership in a room just after stream position `at`, if any.
pub async fn membership_at(db: &Db, room_id: &str, user_id: &str, at: u64) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Row {
        membership: Option<String>,
    }
    let row: Option<Row> = db.first(MEMBERSHIP_AT, &[&room_id, &user_id, &at]).await?;
    Ok(row.and_then(|r| r.membership))
}

const JOINED_AFRESH: &str = "SELECT coalesce((SELECT membership FROM events WHERE room_id = ?1 \
     AND type = 'm.room.member' AND state_key = ?2 AND stream_ordering <= ?3 ORDER BY stream_ordering DESC LIMIT 1), '') \
     != 'join' OR EXISTS (SELECT 1 FROM events WHERE room_id = ?1 AND type = 'm.room.member' AND state_key = ?2 \
     AND stream_ordering > ?3 AND stream_ordering <= ?4 AND membership != 'join') AS afresh";

/// Whether a user (joined at `upto`) joined the room in `(after, upto]`: it was not joined just
/// after `after`, or it left and came back since.
pub async fn joined_afresh(db: &Db, room_id: &str, user_id: &str, after: u64, upto: u64) -> Result<bool> {
    #[derive(Deserialize)]
    struct Row {
        afresh: f64,
    }
    let row: Option<Row> = db.first(JOINED_AFRESH, &[&room_id, &user_id, &after, &upto]).await?;
    Ok(row.is_some_and(|r| r.afresh != 0.0))
}

#[cfg(test)]
mod positions_tests {
    use super::*;

    #[test]
    fn type_filters_need_no_glob_nor_like() {
        let long = format!("org.example.{}.event", "a".repeat(200));
        let patterns = ["m.room.message", "m.*", "*.member", "a*b**c"].map(str::to_owned).to_vec();
        let (condition, param) = type_condition(&[patterns, vec![long.clone()]].concat(), true);
        let upper = condition.to_uppercase();
        assert!(!upper.contains("GLOB") && !upper.contains("LIKE"), "{condition}");
        assert_eq!(condition.matches('?').count(), 1, "one parameter, bound by `page`");
        assert!(!condition.contains(&long), "patterns travel as a parameter, whatever their length");
        let pieces: Vec<Vec<String>> = serde_json::from_str(&param).unwrap();
        assert_eq!(pieces[..4], [vec!["m.room.message"], vec!["m.", ""], vec!["", ".member"], vec!["a", "b", "", "c"]]);
        assert_eq!(pieces[4], vec![long]);
        let (excluding, _) = type_condition(&["m.*".to_owned()], false);
        assert!(excluding.starts_with(" AND NOT EXISTS"));
    }

    #[test]
    fn positions_are_spelled_out_and_hidden_from_the_index() {
        assert_eq!(positions_clause("e.stream_ordering", &[]), "0");
        let ranges = [Range { first: 0, last: 4 }, Range { first: 9, last: 9 }];
        assert_eq!(
            positions_clause("e.stream_ordering", &ranges),
            "(+e.stream_ordering BETWEEN 0 AND 4 OR +e.stream_ordering = 9)"
        );
        let many: Vec<Range> = (0..100).map(|i| Range { first: i * 10, last: i * 10 + 1 }).collect();
        assert_eq!(positions_clause("t.stream_ordering", &many), "(+t.stream_ordering BETWEEN 0 AND 991)");
    }

    #[test]
    fn past_the_spelled_ranges_exact_queries_get_them_all_as_a_parameter() {
        let few: Vec<Range> = (0..64).map(|i| Range { first: i * 10, last: i * 10 + 1 }).collect();
        assert_eq!(ranges_past_spelled(&few), None);
        let many: Vec<Range> = (0..65).map(|i| Range { first: i * 10, last: i * 10 + 1 }).collect();
        let json: Vec<[u64; 2]> = serde_json::from_str(&ranges_past_spelled(&many).unwrap()).unwrap();
        assert_eq!(json.len(), 65);
        assert_eq!((json[0], json[64]), ([0, 1], [640, 641]));
        let clause = in_ranges_of_param("t.stream_ordering", 6);
        assert!(clause.starts_with("(?6 IS NULL OR EXISTS") && clause.contains("t.stream_ordering BETWEEN"));
    }
}
