//! What an application service's transactions read beside room events: the ephemeral streams
//! (typing, receipts, presence, to-device) and, for MSC3202, the device list stream and the key
//! counts of devices. One batch reads every stream past the service's positions together with
//! the heads, in one transaction, so that the new positions cover exactly what was read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{device_lists, presence, receipts, rows, to_device, typing, Db};
use crate::error::{internal, Result};

/// The rooms whose members decide whether a change concerns a service: rooms with typing or
/// receipt changes, and the rooms of users whose presence or device list changed.
const CANDIDATE_ROOMS: &str = "SELECT room_id FROM typing WHERE stream_id > ?1 \
     UNION SELECT room_id FROM receipts WHERE stream_id > ?2 \
     UNION SELECT room_id FROM current_state WHERE type = 'm.room.member' AND membership = 'join' \
       AND state_key IN (SELECT user_id FROM presence WHERE stream_id > ?3 \
         UNION SELECT user_id FROM device_lists_stream WHERE stream_id > ?4 AND visible_to = '')";
/// Each room with a typing change past ?1, with the joined users typing in it at ?2 (none: a
/// row with a NULL user).
const TYPING: &str = "SELECT r.room_id, t.user_id FROM (SELECT DISTINCT room_id FROM typing WHERE stream_id > ?1) r \
     LEFT JOIN typing t ON t.room_id = r.room_id AND t.expires_ms > ?2 \
       AND EXISTS (SELECT 1 FROM current_state cs WHERE cs.room_id = t.room_id AND cs.type = 'm.room.member' \
         AND cs.state_key = t.user_id AND cs.membership = 'join') \
     ORDER BY r.room_id, t.stream_id";
/// Public read receipts past ?1, oldest first, at most ?2.
const RECEIPTS: &str = "SELECT stream_id, room_id, receipt_type, user_id, thread_id, event_id, ts FROM receipts \
     WHERE stream_id > ?1 AND receipt_type = 'm.read' ORDER BY stream_id LIMIT ?2";
const PRESENCE: &str =
    "SELECT stream_id, user_id, presence, status_msg, last_active_ts, currently_active FROM presence \
     WHERE stream_id > ?1 ORDER BY stream_id LIMIT ?2";
const TO_DEVICE: &str = "SELECT stream_id, user_id, device_id, sender, type, content FROM to_device \
     WHERE stream_id > ?1 ORDER BY stream_id LIMIT ?2";
const DEVICE_LISTS: &str = "SELECT stream_id, user_id FROM device_lists_stream \
     WHERE stream_id > ?1 AND visible_to = '' ORDER BY stream_id LIMIT ?2";
/// One-time key counts of every device of the users in the JSON list ?1; a device without keys
/// has a row with a NULL algorithm.
const KEY_COUNTS: &str = "SELECT d.user_id, d.device_id, k.algorithm, count(k.id) AS count FROM devices d \
     LEFT JOIN e2e_one_time_keys k ON k.user_id = d.user_id AND k.device_id = d.device_id \
     WHERE d.user_id IN (SELECT value FROM json_each(?1)) GROUP BY d.user_id, d.device_id, k.algorithm";
const UNUSED_FALLBACKS: &str = "SELECT user_id, device_id, algorithm FROM e2e_fallback_keys \
     WHERE used = 0 AND user_id IN (SELECT value FROM json_each(?1)) ORDER BY user_id, device_id, algorithm";
/// The positions a service registered now starts from (set by migration 0009's trigger).
const START_POSITIONS: &str = "SELECT stream_positions FROM appservices WHERE id = ?1";

/// How many rows of one stream a transaction takes at most; the rest come in the next.
pub const LIMIT: u64 = 100;

/// A service's positions in the streams its transactions carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Positions {
    pub typing: u64,
    pub receipts: u64,
    pub presence: u64,
    pub to_device: u64,
    pub device_lists: u64,
}

#[derive(Debug, Deserialize)]
pub struct TypingRow {
    pub room_id: String,
    pub user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ReceiptRow {
    pub stream_id: f64,
    #[serde(flatten)]
    pub receipt: receipts::ReceiptRow,
}

#[derive(Debug, Deserialize)]
pub struct PresenceRow {
    pub stream_id: f64,
    #[serde(flatten)]
    pub presence: presence::PresenceRow,
}

#[derive(Debug, Deserialize)]
pub struct ToDeviceRow {
    pub stream_id: f64,
    pub user_id: String,
    pub device_id: String,
    pub sender: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub content: String,
}

#[derive(Debug, Deserialize)]
pub struct DeviceListRow {
    pub stream_id: f64,
    pub user_id: String,
}

#[derive(Debug, Deserialize)]
struct MemberRow {
    room_id: String,
    user_id: String,
}

#[derive(Debug, Deserialize)]
struct AliasRow {
    room_id: String,
    alias: String,
}

/// Everything past a service's positions, and the heads the batch saw.
#[derive(Debug, Default)]
pub struct Changes {
    pub heads: Positions,
    pub typing: Vec<TypingRow>,
    pub receipts: Vec<ReceiptRow>,
    pub presence: Vec<PresenceRow>,
    pub to_device: Vec<ToDeviceRow>,
    pub device_lists: Vec<DeviceListRow>,
    /// The joined members of each room a change may concern.
    pub members: BTreeMap<String, Vec<String>>,
    pub aliases: BTreeMap<String, Vec<String>>,
}

/// Which streams to read: ephemeral ones (`receive_ephemeral`), device lists (MSC3202).
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    pub ephemeral: bool,
    pub device_lists: bool,
}

/// Reads every wanted stream past `from` in one batch.
pub async fn changes(db: &Db, from: &Positions, wanted: Wanted, now_ms: u64) -> Result<Changes> {
    // A stream that is not wanted is read from its head: nothing.
    let far = 1u64 << 53;
    let e = |p: u64| if wanted.ephemeral { p } else { far };
    let (typing_from, receipts_from, presence_from, to_device_from) =
        (e(from.typing), e(from.receipts), e(from.presence), e(from.to_device));
    let lists_from = if wanted.device_lists { from.device_lists } else { far };
    let candidates: [&dyn super::Param; 4] = [&typing_from, &receipts_from, &presence_from, &lists_from];
    let statements = vec![
        db.prepare(&heads_sql(), &[])?,
        db.prepare(TYPING, &[&typing_from, &now_ms])?,
        db.prepare(RECEIPTS, &[&receipts_from, &LIMIT])?,
        db.prepare(PRESENCE, &[&presence_from, &LIMIT])?,
        db.prepare(TO_DEVICE, &[&to_device_from, &LIMIT])?,
        db.prepare(DEVICE_LISTS, &[&lists_from, &LIMIT])?,
        db.prepare(&members_sql(), &candidates)?,
        db.prepare(&aliases_sql(), &candidates)?,
    ];
    let results = db.batch_rows(statements).await.map_err(|e| match e {
        super::BatchError::Conflict(e) => internal("appservice streams", e),
        super::BatchError::Failed(e) => e,
    })?;
    let [heads, typing, receipts, presence, to_device, device_lists, members, aliases] = &results[..] else {
        return Err(internal("appservice streams", "a batch of 8 statements returned another count"));
    };
    let heads: Vec<HeadsRow> = rows(heads)?;
    let heads = heads.into_iter().next().map(HeadsRow::positions).unwrap_or_default();
    let mut by_room: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in rows::<MemberRow>(members)? {
        by_room.entry(m.room_id).or_default().push(m.user_id);
    }
    let mut room_aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in rows::<AliasRow>(aliases)? {
        room_aliases.entry(a.room_id).or_default().push(a.alias);
    }
    Ok(Changes {
        heads,
        typing: rows(typing)?,
        receipts: rows(receipts)?,
        presence: rows(presence)?,
        to_device: rows(to_device)?,
        device_lists: rows(device_lists)?,
        members: by_room,
        aliases: room_aliases,
    })
}

#[derive(Deserialize)]
struct HeadsRow {
    typing: f64,
    receipts: f64,
    presence: f64,
    to_device: f64,
    device_lists: f64,
}

impl HeadsRow {
    fn positions(self) -> Positions {
        Positions {
            typing: self.typing as u64,
            receipts: self.receipts as u64,
            presence: self.presence as u64,
            to_device: self.to_device as u64,
            device_lists: self.device_lists as u64,
        }
    }
}

fn heads_sql() -> String {
    format!(
        "SELECT ({}) AS typing, ({}) AS receipts, ({}) AS presence, ({}) AS to_device, ({}) AS device_lists",
        typing::MAX_STREAM_ID,
        receipts::MAX_STREAM_ID,
        presence::MAX_STREAM_ID,
        to_device::MAX_STREAM_ID,
        device_lists::MAX_STREAM_ID
    )
}

fn members_sql() -> String {
    format!(
        "SELECT room_id, state_key AS user_id FROM current_state WHERE type = 'm.room.member' \
         AND membership = 'join' AND room_id IN ({CANDIDATE_ROOMS})"
    )
}

fn aliases_sql() -> String {
    format!("SELECT room_id, alias FROM room_aliases WHERE room_id IN ({CANDIDATE_ROOMS})")
}

/// `{user: {device: {algorithm: count}}}` and `{user: {device: [algorithm]}}` for the devices
/// of `users`: every device counts `signed_curve25519`, 0 when it has none.
pub type KeyCounts = BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>>;
pub type FallbackTypes = BTreeMap<String, BTreeMap<String, Vec<String>>>;

pub async fn key_counts(db: &Db, users: &[String]) -> Result<(KeyCounts, FallbackTypes)> {
    #[derive(Deserialize)]
    struct CountRow {
        user_id: String,
        device_id: String,
        algorithm: Option<String>,
        count: f64,
    }
    #[derive(Deserialize)]
    struct FallbackRow {
        user_id: String,
        device_id: String,
        algorithm: String,
    }
    if users.is_empty() {
        return Ok(Default::default());
    }
    let list = serde_json::to_string(users).map_err(|e| internal("user list", e))?;
    let results = db
        .batch_rows(vec![db.prepare(KEY_COUNTS, &[&list])?, db.prepare(UNUSED_FALLBACKS, &[&list])?])
        .await
        .map_err(|e| match e {
            super::BatchError::Conflict(e) => internal("key counts", e),
            super::BatchError::Failed(e) => e,
        })?;
    let (Some(counts), Some(fallbacks)) = (results.first(), results.get(1)) else {
        return Err(internal("key counts", "a batch of 2 statements returned fewer results"));
    };
    let mut out = KeyCounts::new();
    for row in rows::<CountRow>(counts)? {
        let device = out.entry(row.user_id).or_default().entry(row.device_id).or_default();
        device.entry("signed_curve25519".into()).or_insert(0);
        if let Some(algorithm) = row.algorithm {
            device.insert(algorithm, row.count as u64);
        }
    }
    let mut types = FallbackTypes::new();
    for row in rows::<FallbackRow>(fallbacks)? {
        types.entry(row.user_id).or_default().entry(row.device_id).or_default().push(row.algorithm);
    }
    Ok((out, types))
}

/// Where a service starts: the heads when it was registered; `None` for a service registered
/// before migration 0009.
pub async fn start_positions(db: &Db, service_id: &str) -> Result<Option<Positions>> {
    #[derive(Deserialize)]
    struct Row {
        stream_positions: Option<String>,
    }
    let row: Option<Row> = db.first(START_POSITIONS, &[&service_id]).await?;
    let Some(json) = row.and_then(|r| r.stream_positions) else { return Ok(None) };
    let value: Value = serde_json::from_str(&json).map_err(|e| internal("stored positions", e))?;
    serde_json::from_value(value).map(Some).map_err(|e| internal("stored positions", e))
}
