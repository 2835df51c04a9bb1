//! `monthly_active_users`: users active in the last 30 days, kept as Synapse keeps its table of
//! that name. Guests, support users and users in their trial days are never in it; application
//! services' users may be, but do not count.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

/// Users of application services do not count (as Synapse's `get_monthly_active_count`).
pub const COUNT: &str = "SELECT count(*) AS n FROM monthly_active_users a LEFT JOIN users b ON b.user_id = a.user_id \
     WHERE b.appservice_id IS NULL";
const TIMESTAMP: &str = "SELECT timestamp FROM monthly_active_users WHERE user_id = ?1";
/// Records activity: `?1` user, `?2` now, `?3` whether the limit applies, `?4` the limit, `?5`
/// the trial in ms. A user not yet in the table joins only while there is room.
const UPSERT: &str = "INSERT INTO monthly_active_users (user_id, timestamp) \
     SELECT ?1, ?2 FROM users u WHERE u.user_id = ?1 AND u.is_guest = 0 AND u.deactivated = 0 \
     AND coalesce(u.user_type, '') != 'support' AND u.created_ms + ?5 <= ?2 \
     AND (?3 = 0 OR EXISTS (SELECT 1 FROM monthly_active_users WHERE user_id = ?1) \
          OR (SELECT count(*) FROM monthly_active_users a LEFT JOIN users b ON b.user_id = a.user_id \
              WHERE b.appservice_id IS NULL) < ?4) \
     ON CONFLICT (user_id) DO UPDATE SET timestamp = excluded.timestamp";
/// A reserved user is active from the start, whatever the count.
const INSERT_RESERVED: &str = "INSERT INTO monthly_active_users (user_id, timestamp) VALUES (?1, ?2) \
     ON CONFLICT (user_id) DO UPDATE SET timestamp = excluded.timestamp";
/// Forgets users not seen for 30 days, except holders of the reserved third-party IDs (`?2`, a
/// JSON list of `[medium, address]`).
const REAP: &str = "DELETE FROM monthly_active_users WHERE timestamp < ?1 AND user_id NOT IN \
     (SELECT t.user_id FROM user_threepids t JOIN json_each(?2) j \
      ON t.medium = json_extract(j.value, '$[0]') AND t.address = json_extract(j.value, '$[1]'))";
const DELETE: &str = "DELETE FROM monthly_active_users WHERE user_id = ?1";

pub const MONTH_MS: u64 = 30 * 24 * 60 * 60 * 1000;

#[derive(Deserialize)]
struct Count {
    n: f64,
}

pub async fn count(db: &Db) -> Result<u64> {
    Ok(db.first::<Count>(COUNT, &[]).await?.map_or(0, |c| c.n as u64))
}

pub async fn timestamp(db: &Db, user_id: &str) -> Result<Option<u64>> {
    #[derive(Deserialize)]
    struct Row {
        timestamp: f64,
    }
    Ok(db.first::<Row>(TIMESTAMP, &[&user_id]).await?.map(|r| r.timestamp as u64))
}

pub fn upsert(db: &Db, user_id: &str, now_ms: u64, limit: Option<u64>, trial_ms: u64) -> Result<Statement> {
    db.prepare(UPSERT, &[&user_id, &now_ms, &limit.is_some(), &limit.unwrap_or(0), &trial_ms])
}

pub fn insert_reserved(db: &Db, user_id: &str, now_ms: u64) -> Result<Statement> {
    db.prepare(INSERT_RESERVED, &[&user_id, &now_ms])
}

pub fn reap(db: &Db, now_ms: u64, reserved_json: &str) -> Result<Statement> {
    db.prepare(REAP, &[&now_ms.saturating_sub(MONTH_MS), &reserved_json])
}

pub fn delete(db: &Db, user_id: &str) -> Result<Statement> {
    db.prepare(DELETE, &[&user_id])
}
