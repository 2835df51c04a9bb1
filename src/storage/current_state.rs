//! `current_state`: each room's state after its newest event, and the memberships indexed out of
//! it.

use serde::Deserialize;

use super::events::StoredEvent;
use super::{Db, Statement};
use crate::error::Result;

const UPSERT: &str = "INSERT INTO current_state (room_id, type, state_key, event_id, stream_ordering, membership) \
     VALUES (?1, ?2, ?3, ?4, (SELECT stream_ordering FROM events WHERE event_id = ?4), ?5) \
     ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id, \
     stream_ordering = excluded.stream_ordering, membership = excluded.membership";
const STATE: &str = "SELECT e.stream_ordering, e.event_id, e.room_id, e.type, e.state_key, e.sender, \
     e.origin_server_ts, e.membership, e.txn_device_id, e.txn_id, e.prev_state, e.json, r.json AS redaction_json, \
     r.event_id AS redaction_id FROM current_state cs JOIN events e ON e.event_id = cs.event_id \
     LEFT JOIN events r ON r.event_id = e.redacted_by WHERE cs.room_id = ?1 ORDER BY e.stream_ordering";
const MEMBERSHIP: &str = "SELECT membership, stream_ordering FROM current_state \
     WHERE room_id = ?1 AND type = 'm.room.member' AND state_key = ?2";
const ROOMS_WITH_MEMBERSHIP: &str = "SELECT room_id FROM current_state \
     WHERE type = 'm.room.member' AND state_key = ?1 AND membership = ?2 ORDER BY room_id";

pub fn upsert(
    db: &Db,
    room_id: &str,
    kind: &str,
    state_key: &str,
    event_id: &str,
    membership: Option<&str>,
) -> Result<Statement> {
    db.prepare(UPSERT, &[&room_id, &kind, &state_key, &event_id, &membership])
}

/// The room's whole current state.
pub async fn room_state(db: &Db, room_id: &str) -> Result<Vec<StoredEvent>> {
    db.all(STATE, &[&room_id]).await
}

/// A user's current membership in a room and the position it took effect.
pub async fn membership(db: &Db, room_id: &str, user_id: &str) -> Result<Option<(String, u64)>> {
    #[derive(Deserialize)]
    struct Row {
        membership: Option<String>,
        stream_ordering: f64,
    }
    let row: Option<Row> = db.first(MEMBERSHIP, &[&room_id, &user_id]).await?;
    Ok(row.map(|r| (r.membership.unwrap_or_default(), r.stream_ordering as u64)))
}

/// The rooms where a user's membership is `membership`.
pub async fn rooms_with_membership(db: &Db, user_id: &str, membership: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        room_id: String,
    }
    Ok(db.all::<Row>(ROOMS_WITH_MEMBERSHIP, &[&user_id, &membership]).await?.into_iter().map(|r| r.room_id).collect())
}

/// The content of one current state entry, as JSON, redacted if a redaction applies to it.
pub async fn content_of(db: &Db, room_id: &str, kind: &str, state_key: &str) -> Result<Option<serde_json::Value>> {
    #[derive(Deserialize)]
    struct Row {
        content: Option<String>,
        redacted_by: Option<String>,
        room_version: String,
    }
    let sql = "SELECT json_extract(e.json, '$.content') AS content, e.redacted_by, r.room_version \
         FROM current_state cs JOIN events e ON e.event_id = cs.event_id JOIN rooms r ON r.room_id = cs.room_id \
         WHERE cs.room_id = ?1 AND cs.type = ?2 AND cs.state_key = ?3";
    let Some(row) = db.first::<Row>(sql, &[&room_id, &kind, &state_key]).await? else { return Ok(None) };
    let Some(content) = row.content.and_then(|c| serde_json::from_str(&c).ok()) else { return Ok(None) };
    if row.redacted_by.is_none() {
        return Ok(Some(content));
    }
    let version = crate::room::versions::RoomVersion::parse(&row.room_version)?;
    Ok(Some(crate::room::client_format::redacted_content(content, kind, &version)))
}

const POWER_STATE: &str = "SELECT e.stream_ordering, e.event_id, e.room_id, e.type, e.state_key, e.sender, \
     e.origin_server_ts, e.membership, e.txn_device_id, e.txn_id, e.prev_state, e.json, r.json AS redaction_json, \
     r.event_id AS redaction_id FROM current_state cs JOIN events e ON e.event_id = cs.event_id \
     LEFT JOIN events r ON r.event_id = e.redacted_by WHERE cs.room_id = ?1 AND ((cs.state_key = '' \
     AND cs.type IN ('m.room.create', 'm.room.power_levels')) OR (cs.type = 'm.room.member' AND cs.state_key = ?2)) \
     ORDER BY e.stream_ordering";

/// What decides a user's power in a room: its create event, its power levels and the user's
/// membership event, those of them that exist.
pub async fn power_state(db: &Db, room_id: &str, user_id: &str) -> Result<Vec<StoredEvent>> {
    db.all(POWER_STATE, &[&room_id, &user_id]).await
}

/// The room's current `m.room.member` events, by user ID.
pub async fn member_events(db: &Db, room_id: &str) -> Result<Vec<StoredEvent>> {
    let sql = "SELECT e.stream_ordering, e.event_id, e.room_id, e.type, e.state_key, e.sender, \
         e.origin_server_ts, e.membership, e.txn_device_id, e.txn_id, e.prev_state, e.json, r.json AS redaction_json, \
         r.event_id AS redaction_id FROM current_state cs JOIN events e ON e.event_id = cs.event_id \
         LEFT JOIN events r ON r.event_id = e.redacted_by WHERE cs.room_id = ?1 AND cs.type = 'm.room.member' \
         ORDER BY cs.state_key";
    db.all(sql, &[&room_id]).await
}

const JOINED_GUESTS: &str = "SELECT cs.state_key AS user_id FROM current_state cs \
     JOIN users u ON u.user_id = cs.state_key WHERE cs.room_id = ?1 AND cs.type = 'm.room.member' \
     AND cs.membership = 'join' AND u.is_guest = 1 ORDER BY cs.state_key LIMIT ?2";

/// Up to `limit` guests joined to a room.
pub async fn joined_guests(db: &Db, room_id: &str, limit: u64) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
    }
    Ok(db.all::<Row>(JOINED_GUESTS, &[&room_id, &limit]).await?.into_iter().map(|r| r.user_id).collect())
}

const JOINED_MEMBER_CONTENTS: &str = "SELECT cs.room_id, json_extract(e.json, '$.content') AS content \
     FROM current_state cs JOIN events e ON e.event_id = cs.event_id WHERE cs.type = 'm.room.member' \
     AND cs.state_key = ?1 AND cs.membership = 'join' AND cs.room_id IN (SELECT value FROM json_each(?2))";

/// The content of a user's current join in each of `rooms` where it is joined, by room ID.
pub async fn joined_member_contents(
    db: &Db,
    user_id: &str,
    rooms: &[String],
) -> Result<std::collections::BTreeMap<String, serde_json::Value>> {
    #[derive(Deserialize)]
    struct Row {
        room_id: String,
        content: Option<String>,
    }
    let rooms = serde_json::to_string(rooms).map_err(|e| crate::error::internal("room list", e))?;
    let rows: Vec<Row> = db.all(JOINED_MEMBER_CONTENTS, &[&user_id, &rooms]).await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.room_id, r.content.and_then(|c| serde_json::from_str(&c).ok()).unwrap_or_default()))
        .collect())
}

const MEMBERSHIPS_OF_USER: &str = "SELECT cs.room_id, cs.membership, cs.stream_ordering, e.sender, \
     EXISTS (SELECT 1 FROM forgotten_rooms f WHERE f.user_id = ?1 AND f.room_id = cs.room_id) AS forgotten \
     FROM current_state cs JOIN events e ON e.event_id = cs.event_id \
     WHERE cs.type = 'm.room.member' AND cs.state_key = ?1 ORDER BY cs.room_id";
const MEMBERS: &str = "SELECT state_key AS user_id, membership FROM current_state \
     WHERE room_id = ?1 AND type = 'm.room.member' ORDER BY stream_ordering";

/// A user's current membership in one room, and when it took effect.
#[derive(Debug, Deserialize)]
pub struct UserMembership {
    pub room_id: String,
    pub membership: String,
    /// Who set the membership: the inviter of an invite.
    pub sender: String,
    stream_ordering: f64,
    forgotten: f64,
}

impl UserMembership {
    pub fn position(&self) -> u64 {
        self.stream_ordering as u64
    }

    pub fn is_forgotten(&self) -> bool {
        self.forgotten != 0.0
    }
}

/// Every room a user has a membership in, whatever it is.
pub async fn memberships_of_user(db: &Db, user_id: &str) -> Result<Vec<UserMembership>> {
    db.all(MEMBERSHIPS_OF_USER, &[&user_id]).await
}

/// The members of a room and their memberships, oldest membership first.
pub async fn members(db: &Db, room_id: &str) -> Result<Vec<(String, String)>> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
        membership: Option<String>,
    }
    let rows: Vec<Row> = db.all(MEMBERS, &[&room_id]).await?;
    Ok(rows.into_iter().map(|r| (r.user_id, r.membership.unwrap_or_default())).collect())
}

/// The event types whose newest one orders a room by recency in sliding sync (MSC4186), as
/// Synapse's `DEFAULT_BUMP_EVENT_TYPES`.
pub const BUMP_EVENT_TYPES: &str = "'m.room.create', 'm.room.message', 'm.room.encrypted', 'm.sticker', \
     'm.call.invite', 'm.poll.start', 'm.beacon_info'";

/// What sliding sync lists sort and filter many rooms by, one row per room of `?1`, a JSON array
/// of `[room_id, bound]`: the position of the newest bump event at or before `bound` (through
/// `events_by_room`, from the newest end), whether the room is encrypted, its create type, its
/// version, and whether the user's own membership event says `is_direct`.
fn room_facts_sql() -> String {
    format!(
        "SELECT json_extract(j.value, '$[0]') AS room_id, \
         (SELECT s.stream_ordering FROM events s INDEXED BY events_by_room \
          WHERE s.room_id = json_extract(j.value, '$[0]') AND s.stream_ordering <= json_extract(j.value, '$[1]') \
          AND s.type IN ({BUMP_EVENT_TYPES}) ORDER BY s.stream_ordering DESC LIMIT 1) AS bump, \
         EXISTS (SELECT 1 FROM current_state c WHERE c.room_id = json_extract(j.value, '$[0]') \
          AND c.type = 'm.room.encryption' AND c.state_key = '') AS encrypted, \
         (SELECT json_extract(e.json, '$.content.type') FROM current_state c JOIN events e ON e.event_id = c.event_id \
          WHERE c.room_id = json_extract(j.value, '$[0]') AND c.type = 'm.room.create' AND c.state_key = '') \
          AS room_type, \
         (SELECT json_extract(e.json, '$.content.is_direct') FROM current_state c JOIN events e \
          ON e.event_id = c.event_id WHERE c.room_id = json_extract(j.value, '$[0]') AND c.type = 'm.room.member' \
          AND c.state_key = ?2) AS is_direct, \
         (SELECT room_version FROM rooms WHERE room_id = json_extract(j.value, '$[0]')) AS room_version \
         FROM json_each(?1) j"
    )
}

/// One room's row of [`room_facts`].
#[derive(Debug, Clone, Deserialize)]
pub struct RoomFacts {
    pub room_id: String,
    pub bump: Option<f64>,
    pub encrypted: f64,
    /// The create event's `type`, if it is a string.
    pub room_type: Option<serde_json::Value>,
    pub is_direct: Option<serde_json::Value>,
    pub room_version: Option<String>,
}

/// [`RoomFacts`] of each of `rooms`, given as (room ID, the position its bump stamp may not pass).
pub async fn room_facts(db: &Db, rooms: &[(String, u64)], user_id: &str) -> Result<Vec<RoomFacts>> {
    if rooms.is_empty() {
        return Ok(Vec::new());
    }
    let param = serde_json::to_string(rooms).map_err(|e| crate::error::internal("room list", e))?;
    db.all(&room_facts_sql(), &[&param, &user_id]).await
}

/// Current state events of many rooms that match wanted entries, each only if it took effect
/// after a position. `?1`: `[room_id, type, state_key, after]` (one entry, by primary key);
/// `?2`: `[room_id, type, after]` (every state key of a type); `?3`: `[room_id, state_key or
/// null, after]` (any type: scans the room's state).
const STATE_MATCHING: &str = "SELECT e.stream_ordering, e.event_id, e.room_id, e.type, e.state_key, e.sender, \
     e.origin_server_ts, e.membership, e.txn_device_id, e.txn_id, e.prev_state, e.json, r.json AS redaction_json, \
     r.event_id AS redaction_id FROM events e LEFT JOIN events r ON r.event_id = e.redacted_by \
     WHERE e.event_id IN ( \
       SELECT cs.event_id FROM json_each(?1) j CROSS JOIN current_state cs \
       WHERE cs.room_id = json_extract(j.value, '$[0]') AND cs.type = json_extract(j.value, '$[1]') \
       AND cs.state_key = json_extract(j.value, '$[2]') AND cs.stream_ordering > json_extract(j.value, '$[3]') \
       UNION SELECT cs.event_id FROM json_each(?2) j CROSS JOIN current_state cs \
       WHERE cs.room_id = json_extract(j.value, '$[0]') AND cs.type = json_extract(j.value, '$[1]') \
       AND cs.stream_ordering > json_extract(j.value, '$[2]') \
       UNION SELECT cs.event_id FROM json_each(?3) j CROSS JOIN current_state cs \
       WHERE cs.room_id = json_extract(j.value, '$[0]') \
       AND (json_extract(j.value, '$[1]') IS NULL OR cs.state_key = json_extract(j.value, '$[1]')) \
       AND cs.stream_ordering > json_extract(j.value, '$[2]')) \
     ORDER BY e.stream_ordering";

/// What [`state_matching`] looks for, each entry with the position after which it counts.
#[derive(Debug, Default)]
pub struct StateWanted {
    /// (room, type, state key, after)
    pub exact: Vec<(String, String, String, u64)>,
    /// (room, type, after): every state key.
    pub of_type: Vec<(String, String, u64)>,
    /// (room, state key or every one, after): every type.
    pub any_type: Vec<(String, Option<String>, u64)>,
}

/// The current state events of several rooms that [`StateWanted`] names, oldest first.
pub async fn state_matching(db: &Db, wanted: &StateWanted) -> Result<Vec<StoredEvent>> {
    if wanted.exact.is_empty() && wanted.of_type.is_empty() && wanted.any_type.is_empty() {
        return Ok(Vec::new());
    }
    let json = |v: serde_json::Result<String>| v.map_err(|e| crate::error::internal("state entries", e));
    let exact = json(serde_json::to_string(&wanted.exact))?;
    let of_type = json(serde_json::to_string(&wanted.of_type))?;
    let any_type = json(serde_json::to_string(&wanted.any_type))?;
    db.all(STATE_MATCHING, &[&exact, &of_type, &any_type]).await
}

/// Per room of `?1`: its joined and invited member counts, the newest position of a membership
/// change, and up to five heroes (joined or invited members other than `?2`, oldest membership
/// first, as `/sync`'s summary) as a JSON array of `[user_id, displayname, avatar_url]`.
const SUMMARIES: &str = "SELECT j.value AS room_id, \
     (SELECT count(*) FROM current_state c WHERE c.room_id = j.value AND c.type = 'm.room.member' \
      AND c.membership = 'join') AS joined, \
     (SELECT count(*) FROM current_state c WHERE c.room_id = j.value AND c.type = 'm.room.member' \
      AND c.membership = 'invite') AS invited, \
     (SELECT max(c.stream_ordering) FROM current_state c WHERE c.room_id = j.value AND c.type = 'm.room.member') \
      AS members_changed, \
     (SELECT json_group_array(json_array(h.user_id, h.displayname, h.avatar_url)) FROM ( \
       SELECT c.state_key AS user_id, json_extract(e.json, '$.content.displayname') AS displayname, \
       json_extract(e.json, '$.content.avatar_url') AS avatar_url FROM current_state c \
       JOIN events e ON e.event_id = c.event_id WHERE c.room_id = j.value AND c.type = 'm.room.member' \
       AND c.membership IN ('join', 'invite') AND c.state_key != ?2 ORDER BY c.stream_ordering LIMIT 5) h) AS heroes \
     FROM json_each(?1) j";

/// One room's row of [`summaries`].
#[derive(Debug, Clone, Deserialize)]
pub struct Summary {
    pub room_id: String,
    pub joined: f64,
    pub invited: f64,
    pub members_changed: Option<f64>,
    /// JSON text of `[[user_id, displayname, avatar_url], ...]`.
    pub heroes: String,
}

/// The member counts and heroes of several rooms, for `user_id`.
pub async fn summaries(db: &Db, room_ids: &[String], user_id: &str) -> Result<Vec<Summary>> {
    if room_ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = serde_json::to_string(room_ids).map_err(|e| crate::error::internal("room list", e))?;
    db.all(SUMMARIES, &[&ids, &user_id]).await
}

const SPACE_CHILDREN: &str = "SELECT cs.room_id AS space, cs.state_key AS child FROM current_state cs \
     JOIN events e ON e.event_id = cs.event_id WHERE cs.room_id IN (SELECT value FROM json_each(?1)) \
     AND cs.type = 'm.space.child' AND json_array_length(json_extract(e.json, '$.content.via')) > 0";

/// The children of some spaces: the rooms their `m.space.child` state names with a `via`.
pub async fn space_children(db: &Db, spaces: &[String]) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        child: String,
    }
    if spaces.is_empty() {
        return Ok(Vec::new());
    }
    let ids = serde_json::to_string(spaces).map_err(|e| crate::error::internal("room list", e))?;
    Ok(db.all::<Row>(SPACE_CHILDREN, &[&ids]).await?.into_iter().map(|r| r.child).collect())
}
