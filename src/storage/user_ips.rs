//! `user_ips`: where and with what each user's devices were last seen, as Synapse's table.

use serde::{Deserialize, Serialize};

use super::{Db, Statement};
use crate::error::Result;

const UPSERT: &str = "INSERT INTO user_ips (user_id, device_id, ip, user_agent, last_seen_ms) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (user_id, device_id, ip, user_agent) \
     DO UPDATE SET last_seen_ms = excluded.last_seen_ms";
const OF_USER: &str = "SELECT device_id, ip, user_agent, last_seen_ms FROM user_ips WHERE user_id = ?1 \
     ORDER BY device_id, last_seen_ms DESC";

#[derive(Debug, Serialize, Deserialize)]
pub struct Connection {
    pub device_id: String,
    pub ip: String,
    pub user_agent: String,
    pub last_seen_ms: f64,
}

pub fn upsert(db: &Db, user_id: &str, device_id: &str, ip: &str, user_agent: &str, now_ms: u64) -> Result<Statement> {
    db.prepare(UPSERT, &[&user_id, &device_id, &ip, &user_agent, &now_ms])
}

pub async fn of_user(db: &Db, user_id: &str) -> Result<Vec<Connection>> {
    db.all(OF_USER, &[&user_id]).await
}
