//! `appservices`: the registered application services. The worker only reads them; the
//! `npm run appservice` command writes them through `wrangler d1 execute`, which binds no
//! parameters, so its statements are rendered here with quoted literals.

use serde::Deserialize;

use super::Db;
use crate::error::Result;

const SELECT_ALL: &str = "SELECT id, as_token_hash, registration FROM appservices ORDER BY id";
/// What the command reads before it adds one: the values another may not reuse.
#[cfg(not(target_arch = "wasm32"))]
pub const SELECT_EXISTING: &str = "SELECT id, as_token_hash, hs_token FROM appservices";
#[cfg(not(target_arch = "wasm32"))]
pub const LIST: &str = "SELECT id, sender, json_extract(registration, '$.url') AS url FROM appservices ORDER BY id";

#[derive(Debug, Deserialize)]
pub struct Row {
    pub id: String,
    pub as_token_hash: String,
    pub registration: String,
}

pub async fn all(db: &Db) -> Result<Vec<Row>> {
    db.all(SELECT_ALL, &[]).await
}

#[cfg(not(target_arch = "wasm32"))]
/// One statement, so that the service and its sender (added by a trigger) appear together.
pub fn insert_sql(id: &str, as_token_hash: &str, hs_token: &str, sender: &str, registration: &str, now: u64) -> String {
    format!(
        "INSERT INTO appservices (id, as_token_hash, hs_token, sender, registration, created_ms) \
         VALUES ({}, {}, {}, {}, {}, {now})",
        quote(id),
        quote(as_token_hash),
        quote(hs_token),
        quote(sender),
        quote(registration)
    )
}

#[cfg(not(target_arch = "wasm32"))]
pub fn delete_sql(id: &str) -> String {
    format!("DELETE FROM appservices WHERE id = {}", quote(id))
}

/// An SQL string literal.
#[cfg(not(target_arch = "wasm32"))]
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn literals_are_quoted() {
        assert_eq!(super::delete_sql("it's"), "DELETE FROM appservices WHERE id = 'it''s'");
    }
}
