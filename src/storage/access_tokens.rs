//! `access_tokens`: the SHA-256 of each live access token, and whose device it acts for.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

const INSERT: &str = "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ms, puppeted_by, expires_ms) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/// The token's user, and what auth blocking needs of whoever stands behind it (the admin, for a
/// puppet token): one query, so that an active user's request costs no more than before.
macro_rules! lookup {
    ($extra:literal) => {
        concat!(
            "SELECT t.user_id, t.device_id, t.puppeted_by, t.expires_ms, t.last_used_ms, \
             u.is_guest, u.deactivated, u.admin, e.user_type AS entity_type, \
             e.created_ms AS entity_created_ms, m.timestamp AS entity_mau_ts, n.limit_notice_id",
            $extra,
            " FROM access_tokens t JOIN users u ON u.user_id = t.user_id \
             JOIN users e ON e.user_id = coalesce(t.puppeted_by, t.user_id) \
             LEFT JOIN monthly_active_users m ON m.user_id = e.user_id \
             LEFT JOIN server_notice_rooms n ON n.user_id = t.user_id \
             WHERE t.token_hash = ?1"
        )
    };
}
const LOOKUP: &str = lookup!("");
/// With the monthly active user limit on, the count (as `monthly_active_users::COUNT`) comes
/// along in the same query.
const LOOKUP_WITH_MAU_COUNT: &str = lookup!(
    ", (SELECT count(*) FROM monthly_active_users a LEFT JOIN users b ON b.user_id = a.user_id \
     WHERE b.appservice_id IS NULL) AS mau_count"
);
const MARK_USED: &str = "UPDATE access_tokens SET last_used_ms = ?2 WHERE token_hash = ?1";
const DELETE_PUPPETS: &str = "DELETE FROM access_tokens WHERE puppeted_by = ?1";
const DELETE_FOR_DEVICE: &str = "DELETE FROM access_tokens WHERE user_id = ?1 AND device_id = ?2";
const DELETE_ALL: &str = "DELETE FROM access_tokens WHERE user_id = ?1";
const DELETE_ALL_BUT: &str = "DELETE FROM access_tokens WHERE user_id = ?1 AND device_id != ?2";

/// The owner of a token, as authentication needs it.
#[derive(Debug, Deserialize)]
pub struct TokenOwner {
    pub user_id: String,
    pub device_id: String,
    pub puppeted_by: Option<String>,
    pub expires_ms: Option<f64>,
    pub last_used_ms: Option<f64>,
    is_guest: f64,
    deactivated: f64,
    admin: f64,
    pub entity_type: Option<String>,
    pub entity_created_ms: f64,
    pub entity_mau_ts: Option<f64>,
    pub limit_notice_id: Option<String>,
    pub mau_count: Option<f64>,
}

impl TokenOwner {
    pub fn is_guest(&self) -> bool {
        self.is_guest != 0.0
    }

    pub fn is_deactivated(&self) -> bool {
        self.deactivated != 0.0
    }

    pub fn is_admin(&self) -> bool {
        self.admin != 0.0
    }
}

pub fn insert(db: &Db, token_hash: &str, user_id: &str, device_id: &str, now_ms: u64) -> Result<Statement> {
    db.prepare(INSERT, &[&token_hash, &user_id, &device_id, &now_ms, &None::<&str>, &None::<u64>])
}

/// A token that acts as `user_id` for the admin `admin`, without a device.
pub fn insert_puppet(
    db: &Db,
    token_hash: &str,
    user_id: &str,
    admin: &str,
    now_ms: u64,
    expires_ms: Option<u64>,
) -> Result<Statement> {
    db.prepare(INSERT, &[&token_hash, &user_id, &"", &now_ms, &Some(admin), &expires_ms])
}

pub async fn lookup(db: &Db, token_hash: &str, with_mau_count: bool) -> Result<Option<TokenOwner>> {
    db.first(if with_mau_count { LOOKUP_WITH_MAU_COUNT } else { LOOKUP }, &[&token_hash]).await
}

pub fn mark_used(db: &Db, token_hash: &str, now_ms: u64) -> Result<Statement> {
    db.prepare(MARK_USED, &[&token_hash, &now_ms])
}

/// The puppet tokens an admin holds, which go when the admin is deactivated.
pub fn delete_puppets(db: &Db, admin: &str) -> Result<Statement> {
    db.prepare(DELETE_PUPPETS, &[&admin])
}

pub fn delete_for_device(db: &Db, user_id: &str, device_id: &str) -> Result<Statement> {
    db.prepare(DELETE_FOR_DEVICE, &[&user_id, &device_id])
}

pub fn delete_all(db: &Db, user_id: &str) -> Result<Statement> {
    db.prepare(DELETE_ALL, &[&user_id])
}

pub fn delete_all_but(db: &Db, user_id: &str, keep_device_id: &str) -> Result<Statement> {
    db.prepare(DELETE_ALL_BUT, &[&user_id, &keep_device_id])
}
