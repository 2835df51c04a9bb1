//! `event_txns`: the event each (device, endpoint, transaction ID) produced, so that a retried
//! request returns the same event instead of sending another.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

const SELECT: &str =
    "SELECT event_id FROM event_txns WHERE user_id = ?1 AND device_id = ?2 AND scope = ?3 AND txn_id = ?4";
const INSERT: &str = "INSERT INTO event_txns (user_id, device_id, scope, txn_id, event_id, created_ms) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// A transaction: who sent it, where, and its ID.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct Txn {
    pub user_id: String,
    pub device_id: String,
    /// The room and endpoint, e.g. `!room:hs/send`.
    pub scope: String,
    pub txn_id: String,
}

pub async fn get(db: &Db, txn: &Txn) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Row {
        event_id: String,
    }
    let row: Option<Row> = db.first(SELECT, &[&txn.user_id, &txn.device_id, &txn.scope, &txn.txn_id]).await?;
    Ok(row.map(|r| r.event_id))
}

pub fn insert(db: &Db, txn: &Txn, event_id: &str, now_ms: u64) -> Result<Statement> {
    db.prepare(INSERT, &[&txn.user_id, &txn.device_id, &txn.scope, &txn.txn_id, &event_id, &now_ms])
}
