//! `e2e_fallback_keys`: one fallback key per device and algorithm, handed out when no one-time
//! key is left and marked used until the device replaces it.

use super::{Db, Statement};
use crate::error::Result;

/// ?3 is a JSON array of `[algorithm, key_id, key_json]`. A new key replaces the algorithm's old
/// one and is unused; the same key again keeps its state.
const UPSERT: &str = "INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key_json, used) \
     SELECT ?1, ?2, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), 0 \
     FROM json_each(?3) WHERE true ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET \
     key_id = excluded.key_id, key_json = excluded.key_json, used = 0 \
     WHERE key_id != excluded.key_id OR key_json != excluded.key_json";
/// The algorithms of ?1's device ?2 whose fallback key is unused, in the shape of the one-time
/// key counts it is read with.
pub(super) const UNUSED: &str = "SELECT algorithm, 0 AS count, 1 AS fallback FROM e2e_fallback_keys \
     WHERE user_id = ?1 AND device_id = ?2 AND used = 0";
/// Hands out, and marks used, the fallback key of each `[user_id, device_id, algorithm]` of the
/// JSON array ?1 that has no one-time key left. Run before the one-time key claim in the same
/// batch, it sees the keys that claim will find.
const CLAIM: &str = "UPDATE e2e_fallback_keys SET used = 1 \
     WHERE (user_id, device_id, algorithm) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
       json_extract(value, '$[2]') FROM json_each(?1)) \
     AND NOT EXISTS (SELECT 1 FROM e2e_one_time_keys o WHERE o.user_id = e2e_fallback_keys.user_id \
       AND o.device_id = e2e_fallback_keys.device_id AND o.algorithm = e2e_fallback_keys.algorithm) \
     RETURNING user_id, device_id, algorithm, key_id, key_json";

/// Stores keys: `keys_json` is a JSON array of `[algorithm, key_id, key_json]`.
pub fn upsert(db: &Db, user_id: &str, device_id: &str, keys_json: &str) -> Result<Statement> {
    db.prepare(UPSERT, &[&user_id, &device_id, &keys_json])
}

/// Claims the fallback keys of `query_json`'s devices that have no one-time key of the
/// algorithm; the statement returns [`super::e2e_one_time_keys::KeyRow`]s.
pub fn claim(db: &Db, query_json: &str) -> Result<Statement> {
    db.prepare(CLAIM, &[&query_json])
}
