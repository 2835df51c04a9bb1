//! `filters`: the filters each user uploaded, numbered per user from 0.

use serde::Deserialize;

use super::{rows, BatchError, Db};
use crate::error::{internal, Result};

/// Takes the user's next ID, unless the same filter text is already stored for them.
const INSERT_NEW: &str = "INSERT INTO filters (user_id, filter_id, filter) \
     SELECT ?1, (SELECT coalesce(max(filter_id) + 1, 0) FROM filters WHERE user_id = ?1), ?2 \
     WHERE NOT EXISTS (SELECT 1 FROM filters WHERE user_id = ?1 AND filter = ?2)";
const SELECT_ID: &str = "SELECT filter_id FROM filters WHERE user_id = ?1 AND filter = ?2 ORDER BY filter_id LIMIT 1";
const SELECT_ONE: &str = "SELECT filter FROM filters WHERE user_id = ?1 AND filter_id = ?2";

/// Stores a filter (JSON text) and returns its ID; an identical filter the user stored before
/// keeps its ID, so that clients that upload their filter at every start do not pile them up.
pub async fn insert(db: &Db, user_id: &str, filter_json: &str) -> Result<u64> {
    #[derive(Deserialize)]
    struct Row {
        filter_id: f64,
    }
    let statements =
        vec![db.prepare(INSERT_NEW, &[&user_id, &filter_json])?, db.prepare(SELECT_ID, &[&user_id, &filter_json])?];
    // Both run in one transaction, so the select sees the row whichever way the insert went.
    let results = db.batch_rows(statements).await.map_err(|e| match e {
        BatchError::Conflict(message) => internal("inserting a filter", message),
        BatchError::Failed(e) => e,
    })?;
    let row = results.get(1).map(rows::<Row>).transpose()?.and_then(|r| r.into_iter().next());
    row.map(|r| r.filter_id as u64).ok_or_else(|| internal("inserting a filter", "the filter row is missing"))
}

/// The JSON text of one of the user's filters.
pub async fn get(db: &Db, user_id: &str, filter_id: u64) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Row {
        filter: String,
    }
    Ok(db.first::<Row>(SELECT_ONE, &[&user_id, &filter_id]).await?.map(|r| r.filter))
}
