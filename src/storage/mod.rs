//! D1, the server's persistent tables. One file per table, its SQL at the top; this file holds
//! only the typed plumbing they share.
//!
//! Table functions that write return a prepared [`Statement`] rather than running it, so that a
//! handler can commit writes to several tables in one atomic [`Db::batch`].

pub mod access_tokens;
pub mod account_data;
pub mod admin_register_nonces;
pub mod admin_rooms;
pub mod aliases;
pub mod appservice_streams;
pub mod appservices;
pub mod current_state;
pub mod device_lists;
pub mod devices;
pub mod e2e_cross_signing_keys;
pub mod e2e_cross_signing_signatures;
pub mod e2e_device_keys;
pub mod e2e_fallback_keys;
pub mod e2e_one_time_keys;
pub mod e2e_room_keys;
pub mod e2e_room_keys_versions;
pub mod event_push_actions;
pub mod event_txns;
pub mod events;
pub mod filters;
pub mod forgotten_rooms;
pub mod media;
pub mod monthly_active_users;
pub mod openid_tokens;
pub mod presence;
pub mod profiles;
pub mod pushers;
pub mod rate_limits;
pub mod receipts;
pub mod registration_tokens;
pub mod room_deletions;
pub mod rooms;
pub mod server_keys;
pub mod server_notice_rooms;
pub mod sliding_sync_positions;
pub mod streams;
pub mod to_device;
pub mod typing;
pub mod uia_sessions;
pub mod user_directory;
pub mod user_ips;
pub mod user_threepids;
pub mod users;

use serde::de::DeserializeOwned;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, D1Result, Env};

use crate::cost;
use crate::error::{internal, Error, Result};

pub type Statement = D1PreparedStatement;

/// A value bound to a `?N` parameter.
pub trait Param {
    fn to_js(&self) -> JsValue;
}

impl Param for &str {
    fn to_js(&self) -> JsValue {
        JsValue::from_str(self)
    }
}

impl Param for String {
    fn to_js(&self) -> JsValue {
        JsValue::from_str(self)
    }
}

impl Param for u64 {
    // D1 numbers are doubles: exact up to 2^53, far beyond any timestamp or counter of ours.
    fn to_js(&self) -> JsValue {
        JsValue::from_f64(*self as f64)
    }
}

impl Param for f64 {
    fn to_js(&self) -> JsValue {
        JsValue::from_f64(*self)
    }
}

impl Param for bool {
    fn to_js(&self) -> JsValue {
        JsValue::from_f64(if *self { 1.0 } else { 0.0 })
    }
}

impl Param for i64 {
    fn to_js(&self) -> JsValue {
        JsValue::from_f64(*self as f64)
    }
}

impl<T: Param> Param for Option<T> {
    fn to_js(&self) -> JsValue {
        self.as_ref().map_or(JsValue::NULL, Param::to_js)
    }
}

/// The `DB` binding.
pub struct Db(D1Database);

impl Db {
    pub fn new(env: &Env) -> Result<Self> {
        env.d1("DB").map(Db).map_err(|e| internal("binding DB", e))
    }

    pub fn prepare(&self, sql: &str, params: &[&dyn Param]) -> Result<Statement> {
        let values: Vec<JsValue> = params.iter().map(|p| p.to_js()).collect();
        self.0.prepare(sql).bind(&values).map_err(|e| internal("binding parameters", e))
    }

    pub async fn first<T: DeserializeOwned>(&self, sql: &str, params: &[&dyn Param]) -> Result<Option<T>> {
        let statement = self.prepare(sql, params)?;
        cost::d1(1);
        statement.first(None).await.map_err(|e| internal(sql, e))
    }

    pub async fn all<T: DeserializeOwned>(&self, sql: &str, params: &[&dyn Param]) -> Result<Vec<T>> {
        let statement = self.prepare(sql, params)?;
        cost::d1(1);
        let result = statement.all().await.map_err(|e| internal(sql, e))?;
        if let Some(e) = result.error() {
            return Err(internal(sql, e));
        }
        result.results().map_err(|e| internal(sql, e))
    }

    /// Runs one write and returns how many rows it changed.
    pub async fn run(&self, statement: Statement) -> Result<u64> {
        cost::d1(1);
        let result = statement.run().await.map_err(|e| internal("write", e))?;
        Ok(changes(&result))
    }

    /// Runs the statements as one transaction: all of them take effect, or none.
    pub async fn batch(&self, statements: Vec<Statement>) -> Result<Vec<u64>> {
        cost::d1(statements.len());
        let results = self.0.batch(statements).await.map_err(|e| internal("batch", e))?;
        Ok(results.iter().map(changes).collect())
    }

    /// Like [`Db::batch`], but reports a broken UNIQUE or PRIMARY KEY constraint as `Ok(None)`:
    /// the row was there first, and nothing of the batch was written.
    pub async fn try_batch(&self, statements: Vec<Statement>) -> Result<Option<Vec<u64>>> {
        cost::d1(statements.len());
        match self.0.batch(statements).await {
            Ok(results) => Ok(Some(results.iter().map(changes).collect())),
            Err(e) if e.to_string().contains("UNIQUE constraint failed") => Ok(None),
            Err(e) => Err(internal("batch", e)),
        }
    }
}

/// How a batch ended when it did not commit.
#[derive(Debug)]
pub enum BatchError {
    /// A UNIQUE or PRIMARY KEY constraint broke: nothing was written. The message names it.
    Conflict(String),
    Failed(Error),
}

impl Db {
    /// Runs the statements as one transaction and returns each statement's result rows.
    pub async fn batch_rows(&self, statements: Vec<Statement>) -> std::result::Result<Vec<D1Result>, BatchError> {
        cost::d1(statements.len());
        match self.0.batch(statements).await {
            Ok(results) => Ok(results),
            Err(e) if e.to_string().contains("UNIQUE constraint failed") => Err(BatchError::Conflict(e.to_string())),
            Err(e) => Err(BatchError::Failed(internal("batch", e))),
        }
    }
}

/// The rows one statement of a batch returned.
pub fn rows<T: DeserializeOwned>(result: &D1Result) -> Result<Vec<T>> {
    result.results().map_err(|e| internal("batch rows", e))
}

fn changes(result: &worker::D1Result) -> u64 {
    result.meta().ok().flatten().and_then(|m| m.changes).unwrap_or(0) as u64
}
