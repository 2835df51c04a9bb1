//! `pushers`: where each user's notifications go.

use serde::Deserialize;

use super::Db;
use crate::error::{internal, Result};

const USERS_WITH_PUSHERS: &str =
    "SELECT DISTINCT user_id FROM pushers WHERE user_id IN (SELECT value FROM json_each(?1))";

/// Which of `users` have at least one pusher. The users go in as one JSON parameter.
pub async fn users_with_pushers(db: &Db, users: &[&str]) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
    }
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let ids = serde_json::to_string(users).map_err(|e| internal("user list", e))?;
    let rows: Vec<Row> = db.all(USERS_WITH_PUSHERS, &[&ids]).await?;
    Ok(rows.into_iter().map(|r| r.user_id).collect())
}
