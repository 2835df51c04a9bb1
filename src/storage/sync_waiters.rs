//! `sync_waiters`: the users whose `UserSync` object holds a lease, so that a fan-out calls only
//! objects that may have a waiting sync. The lease's rules are in `durable_objects/user_sync.rs`.

use serde::Deserialize;

use super::Db;
use crate::error::{internal, Result};

/// Takes or extends a user's lease; never shortens one.
const LEASE: &str = "INSERT INTO sync_waiters (user_id, until_ms) VALUES (?1, ?2) \
     ON CONFLICT (user_id) DO UPDATE SET until_ms = max(until_ms, excluded.until_ms)";
/// Which of a JSON array of users hold a lease at `?2`.
const LEASED: &str = "SELECT w.user_id FROM json_each(?1) j JOIN sync_waiters w ON w.user_id = j.value \
     WHERE w.until_ms > ?2";

/// Holds `user_id`'s lease until `until_ms` at least.
pub async fn lease(db: &Db, user_id: &str, until_ms: u64) -> Result<()> {
    db.run(db.prepare(LEASE, &[&user_id, &until_ms])?).await.map(|_| ())
}

/// The users among `users` whose lease runs past `now_ms`, in one query however many they are.
pub async fn leased(db: &Db, users: &[String], now_ms: u64) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
    }
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let list = serde_json::to_string(users).map_err(|e| internal("sync waiters", e))?;
    let rows: Vec<Row> = db.all(LEASED, &[&list, &now_ms]).await?;
    Ok(rows.into_iter().map(|r| r.user_id).collect())
}
