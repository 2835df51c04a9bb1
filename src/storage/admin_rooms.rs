//! The admin API's view of rooms: each room with the state Synapse's room list shows, read from
//! `rooms`, `current_state` and `events` in one query.

use serde::{Deserialize, Serialize};

use super::Db;
use crate::error::Result;

/// Every room with its list fields; `?1` a search term (name, alias or room ID) or NULL, `?2` the
/// sort key (Synapse's `order_by`), `?3` 'f' or 'b', `?4` offset, `?5` limit. `total` is the count
/// of rooms that match, before the page is cut.
macro_rules! rooms {
    ($tail:literal) => {
        concat!(
            "WITH st AS (SELECT c.room_id, c.type, json_extract(e.json, '$.content') AS content \
             FROM current_state c JOIN events e ON e.event_id = c.event_id WHERE c.state_key = '' AND c.type IN \
             ('m.room.name', 'm.room.canonical_alias', 'm.room.join_rules', 'm.room.guest_access', \
              'm.room.history_visibility', 'm.room.encryption', 'm.room.topic', 'm.room.avatar', 'm.room.create')), \
             x AS (SELECT r.room_id, r.room_version AS version, r.creator, r.is_public AS public, \
             (SELECT json_extract(content, '$.name') FROM st WHERE st.room_id = r.room_id AND type = 'm.room.name') AS name, \
             (SELECT json_extract(content, '$.alias') FROM st WHERE st.room_id = r.room_id AND type = 'm.room.canonical_alias') AS canonical_alias, \
             (SELECT json_extract(content, '$.join_rule') FROM st WHERE st.room_id = r.room_id AND type = 'm.room.join_rules') AS join_rules, \
             (SELECT json_extract(content, '$.guest_access') FROM st WHERE st.room_id = r.room_id AND type = 'm.room.guest_access') AS guest_access, \
             (SELECT json_extract(content, '$.history_visibility') FROM st WHERE st.room_id = r.room_id AND type = 'm.room.history_visibility') AS history_visibility, \
             (SELECT json_extract(content, '$.algorithm') FROM st WHERE st.room_id = r.room_id AND type = 'm.room.encryption') AS encryption, \
             (SELECT json_extract(content, '$.topic') FROM st WHERE st.room_id = r.room_id AND type = 'm.room.topic') AS topic, \
             (SELECT json_extract(content, '$.url') FROM st WHERE st.room_id = r.room_id AND type = 'm.room.avatar') AS avatar, \
             (SELECT json_extract(content, '$.type') FROM st WHERE st.room_id = r.room_id AND type = 'm.room.create') AS room_type, \
             (SELECT count(*) FROM current_state m WHERE m.room_id = r.room_id AND m.type = 'm.room.member' \
              AND m.membership = 'join') AS joined_members, \
             (SELECT count(*) FROM current_state s WHERE s.room_id = r.room_id) AS state_events FROM rooms r) ",
            $tail
        )
    };
}
const LIST: &str = rooms!(
    "SELECT *, count(*) OVER () AS total FROM x \
     WHERE ?1 IS NULL OR instr(lower(coalesce(name, '')), lower(?1)) > 0 \
     OR instr(lower(coalesce(canonical_alias, '')), lower(?1)) > 0 OR room_id = ?1 \
     ORDER BY CASE WHEN ?3 = 'f' THEN CASE ?2 WHEN 'joined_members' THEN joined_members \
       WHEN 'state_events' THEN state_events WHEN 'canonical_alias' THEN canonical_alias \
       WHEN 'version' THEN version WHEN 'creator' THEN creator WHEN 'public' THEN public \
       WHEN 'join_rules' THEN join_rules WHEN 'guest_access' THEN guest_access \
       WHEN 'history_visibility' THEN history_visibility WHEN 'encryption' THEN encryption \
       ELSE lower(name) END END ASC, \
     CASE WHEN ?3 = 'b' THEN CASE ?2 WHEN 'joined_members' THEN joined_members \
       WHEN 'state_events' THEN state_events WHEN 'canonical_alias' THEN canonical_alias \
       WHEN 'version' THEN version WHEN 'creator' THEN creator WHEN 'public' THEN public \
       WHEN 'join_rules' THEN join_rules WHEN 'guest_access' THEN guest_access \
       WHEN 'history_visibility' THEN history_visibility WHEN 'encryption' THEN encryption \
       ELSE lower(name) END END DESC, room_id LIMIT ?5 OFFSET ?4"
);
const ONE: &str = rooms!("SELECT *, 1 AS total FROM x WHERE room_id = ?1");
const MEMBERS: &str = "SELECT state_key AS user_id FROM current_state \
     WHERE room_id = ?1 AND type = 'm.room.member' AND membership = 'join' ORDER BY state_key";

/// The sort keys `LIST` knows.
pub const ORDERS: &[&str] = &[
    "name",
    "canonical_alias",
    "joined_members",
    "state_events",
    "version",
    "creator",
    "public",
    "join_rules",
    "guest_access",
    "history_visibility",
    "encryption",
];

#[derive(Debug, Serialize, Deserialize)]
pub struct AdminRoom {
    pub room_id: String,
    pub name: Option<String>,
    pub canonical_alias: Option<String>,
    pub joined_members: u64,
    pub version: String,
    pub creator: String,
    pub public: f64,
    pub join_rules: Option<String>,
    pub guest_access: Option<String>,
    pub history_visibility: Option<String>,
    pub encryption: Option<String>,
    pub topic: Option<String>,
    pub avatar: Option<String>,
    pub room_type: Option<String>,
    pub state_events: u64,
    #[serde(skip_serializing)]
    pub total: u64,
}

pub async fn list(
    db: &Db,
    search: Option<&str>,
    order_by: &str,
    forwards: bool,
    from: u64,
    limit: u64,
) -> Result<Vec<AdminRoom>> {
    let dir = if forwards { "f" } else { "b" };
    db.all(LIST, &[&search, &order_by, &dir, &from, &limit]).await
}

pub async fn get(db: &Db, room_id: &str) -> Result<Option<AdminRoom>> {
    db.first(ONE, &[&room_id]).await
}

pub async fn members(db: &Db, room_id: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
    }
    Ok(db.all::<Row>(MEMBERS, &[&room_id]).await?.into_iter().map(|r| r.user_id).collect())
}
