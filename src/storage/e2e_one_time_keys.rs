//! `e2e_one_time_keys`: one-time keys waiting to be claimed, oldest upload first.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{e2e_fallback_keys, Db, Statement};
use crate::error::Result;

/// ?3 is a JSON array of `[algorithm, key_id, key_json]`; keys the device has already are kept.
const INSERT: &str = "INSERT INTO e2e_one_time_keys (user_id, device_id, algorithm, key_id, key_json) \
     SELECT ?1, ?2, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]') \
     FROM json_each(?3) WHERE true ON CONFLICT DO NOTHING";
/// The stored keys among the `[algorithm, key_id]` pairs of the JSON array ?3.
const EXISTING: &str = "SELECT algorithm, key_id, key_json FROM e2e_one_time_keys \
     WHERE user_id = ?1 AND device_id = ?2 AND (algorithm, key_id) IN \
     (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?3))";
const COUNTS: &str = "SELECT algorithm, count(*) AS count, 0 AS fallback FROM e2e_one_time_keys \
     WHERE user_id = ?1 AND device_id = ?2 GROUP BY algorithm";
/// Takes the oldest key of each `[user_id, device_id, algorithm]` of the JSON array ?1, in one
/// statement: two claims never get the same key.
const CLAIM: &str = "DELETE FROM e2e_one_time_keys WHERE id IN (SELECT (SELECT k.id FROM e2e_one_time_keys k \
       WHERE k.user_id = json_extract(q.value, '$[0]') AND k.device_id = json_extract(q.value, '$[1]') \
       AND k.algorithm = json_extract(q.value, '$[2]') ORDER BY k.id LIMIT 1) FROM json_each(?1) q) \
     RETURNING user_id, device_id, algorithm, key_id, key_json";

/// A stored or claimed key.
#[derive(Debug, Deserialize)]
pub struct KeyRow {
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub device_id: String,
    pub algorithm: String,
    pub key_id: String,
    /// JSON text: a string or a signed object.
    pub key_json: String,
}

/// Stores keys: `keys_json` is a JSON array of `[algorithm, key_id, key_json]`.
pub fn insert(db: &Db, user_id: &str, device_id: &str, keys_json: &str) -> Result<Statement> {
    db.prepare(INSERT, &[&user_id, &device_id, &keys_json])
}

/// The keys of the device already stored among `ids_json`, a JSON array of `[algorithm, key_id]`.
pub async fn existing(db: &Db, user_id: &str, device_id: &str, ids_json: &str) -> Result<Vec<KeyRow>> {
    db.all(EXISTING, &[&user_id, &device_id, &ids_json]).await
}

/// Claims the oldest key of each `[user_id, device_id, algorithm]` of `query_json`; the statement
/// returns [`KeyRow`]s.
pub fn claim(db: &Db, query_json: &str) -> Result<Statement> {
    db.prepare(CLAIM, &[&query_json])
}

/// What a device's own syncs learn of its keys.
#[derive(Debug, Default)]
pub struct KeyCounts {
    /// Unclaimed one-time keys per algorithm.
    pub one_time: BTreeMap<String, u64>,
    /// The algorithms whose fallback key has not been handed out.
    pub unused_fallback: Vec<String>,
}

/// The device's unclaimed one-time keys by algorithm.
pub async fn counts(db: &Db, user_id: &str, device_id: &str) -> Result<BTreeMap<String, u64>> {
    Ok(counts_rows(db, COUNTS, user_id, device_id).await?.one_time)
}

/// The device's one-time key counts and unused fallback key algorithms, in one query.
pub async fn counts_and_fallbacks(db: &Db, user_id: &str, device_id: &str) -> Result<KeyCounts> {
    let sql = format!("{COUNTS} UNION ALL {}", e2e_fallback_keys::UNUSED);
    counts_rows(db, &sql, user_id, device_id).await
}

async fn counts_rows(db: &Db, sql: &str, user_id: &str, device_id: &str) -> Result<KeyCounts> {
    #[derive(Deserialize)]
    struct Row {
        algorithm: String,
        count: u64,
        fallback: u8,
    }
    let mut out = KeyCounts::default();
    for row in db.all::<Row>(sql, &[&user_id, &device_id]).await? {
        match row.fallback {
            0 => {
                out.one_time.insert(row.algorithm, row.count);
            }
            _ => out.unused_fallback.push(row.algorithm),
        }
    }
    Ok(out)
}
