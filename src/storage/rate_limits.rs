//! `rate_limits`: leaky buckets. One statement drains, checks and fills a bucket, so two
//! concurrent requests can never both take the last place.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

/// ?1 key, ?2 now (ms), ?3 drain rate per ms, ?4 capacity. The action is allowed, and the bucket
/// gains one unit, only when the drained level plus one fits.
const ATTEMPT: &str = "INSERT INTO rate_limits (key, level, allowed, updated_ms) \
     VALUES (?1, CASE WHEN 1 <= ?4 THEN 1 ELSE 0 END, CASE WHEN 1 <= ?4 THEN 1 ELSE 0 END, ?2) \
     ON CONFLICT (key) DO UPDATE SET \
     allowed = (max(0, level - max(0, ?2 - updated_ms) * ?3) + 1 <= ?4), \
     level = max(0, level - max(0, ?2 - updated_ms) * ?3) \
         + (max(0, level - max(0, ?2 - updated_ms) * ?3) + 1 <= ?4), \
     updated_ms = max(updated_ms, ?2) \
     RETURNING level, allowed";
/// Keys of one scope `s` run from "s:" up to "s;", the next character after ':'.
const DELETE_IDLE: &str = "DELETE FROM rate_limits WHERE key > ?1 AND key < ?2 AND updated_ms < ?3";

#[derive(Debug, Deserialize)]
pub struct Bucket {
    pub level: f64,
    allowed: f64,
}

impl Bucket {
    pub fn allowed(&self) -> bool {
        self.allowed != 0.0
    }
}

pub async fn attempt(db: &Db, key: &str, now_ms: u64, drain_per_ms: f64, capacity: f64) -> Result<Option<Bucket>> {
    db.first(ATTEMPT, &[&key, &now_ms, &drain_per_ms, &capacity]).await
}

/// Drops the buckets of `scope` untouched since `before_ms`: by then they have drained to empty.
pub fn delete_idle(db: &Db, scope: &str, before_ms: u64) -> Result<Statement> {
    db.prepare(DELETE_IDLE, &[&format!("{scope}:"), &format!("{scope};"), &before_ms])
}
