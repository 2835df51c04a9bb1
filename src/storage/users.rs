//! `users`: one row per account, guests included.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

const INSERT: &str =
    "INSERT INTO users (user_id, password_hash, is_guest, created_ms, appservice_id, admin, user_type) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const INSERT_IF_ABSENT: &str =
    "INSERT INTO users (user_id, password_hash, is_guest, created_ms) VALUES (?1, NULL, 0, ?2) \
     ON CONFLICT DO NOTHING";
const SELECT: &str =
    "SELECT user_id, password_hash, is_guest, deactivated, created_ms, admin, user_type, appservice_id FROM users \
     WHERE user_id = ?1";
const EXISTS: &str = "SELECT 1 AS found FROM users WHERE user_id = ?1";
const EXISTING: &str = "SELECT user_id FROM users WHERE user_id IN (SELECT value FROM json_each(?1))";
const SET_PASSWORD: &str = "UPDATE users SET password_hash = ?2 WHERE user_id = ?1";
const UPGRADE_GUEST: &str = "UPDATE users SET password_hash = ?2, is_guest = 0 WHERE user_id = ?1 AND is_guest = 1";
const DEACTIVATE: &str = "UPDATE users SET deactivated = 1, password_hash = NULL WHERE user_id = ?1";
const REACTIVATE: &str = "UPDATE users SET deactivated = 0 WHERE user_id = ?1";
const SET_ADMIN: &str = "UPDATE users SET admin = ?2 WHERE user_id = ?1";
const SET_USER_TYPE: &str = "UPDATE users SET user_type = ?2 WHERE user_id = ?1";
/// The admin API's list: `?1` a substring of the ID (or NULL), `?2` guests too, `?3` deactivated
/// too, `?4` admins only or non-admins only (or NULL); ordered by ID from offset `?5`, `?6` rows.
const LIST: &str = "SELECT user_id, password_hash, is_guest, deactivated, created_ms, admin, user_type, appservice_id \
     FROM users WHERE (?1 IS NULL OR instr(lower(user_id), lower(?1)) > 0) \
     AND (?2 = 1 OR is_guest = 0) AND (?3 = 1 OR deactivated = 0) AND (?4 IS NULL OR admin = ?4) \
     ORDER BY user_id LIMIT ?6 OFFSET ?5";
const COUNT: &str = "SELECT count(*) AS n FROM users WHERE (?1 IS NULL OR instr(lower(user_id), lower(?1)) > 0) \
     AND (?2 = 1 OR is_guest = 0) AND (?3 = 1 OR deactivated = 0) AND (?4 IS NULL OR admin = ?4)";

#[derive(Debug, Deserialize)]
pub struct User {
    pub user_id: String,
    pub password_hash: Option<String>,
    is_guest: f64,
    deactivated: f64,
    pub created_ms: f64,
    admin: f64,
    pub user_type: Option<String>,
    pub appservice_id: Option<String>,
}

impl User {
    pub fn is_deactivated(&self) -> bool {
        self.deactivated != 0.0
    }

    pub fn is_guest(&self) -> bool {
        self.is_guest != 0.0
    }

    pub fn is_admin(&self) -> bool {
        self.admin != 0.0
    }
}

/// What a new account is, beyond its ID and password.
#[derive(Debug, Default, Clone)]
pub struct NewUser<'a> {
    pub is_guest: bool,
    pub admin: bool,
    pub user_type: Option<&'a str>,
    /// The application service that registered the user.
    pub appservice_id: Option<&'a str>,
}

pub fn insert(
    db: &Db,
    user_id: &str,
    password_hash: Option<&str>,
    kind: &NewUser<'_>,
    now_ms: u64,
) -> Result<Statement> {
    db.prepare(
        INSERT,
        &[&user_id, &password_hash, &kind.is_guest, &now_ms, &kind.appservice_id, &kind.admin, &kind.user_type],
    )
}

/// A user the server itself acts as (the server notices user), made on first use.
pub fn insert_if_absent(db: &Db, user_id: &str, now_ms: u64) -> Result<Statement> {
    db.prepare(INSERT_IF_ABSENT, &[&user_id, &now_ms])
}

pub async fn get(db: &Db, user_id: &str) -> Result<Option<User>> {
    db.first(SELECT, &[&user_id]).await
}

/// Whether the ID is taken, by a live or a deactivated account.
pub async fn exists(db: &Db, user_id: &str) -> Result<bool> {
    Ok(db.first::<serde_json::Value>(EXISTS, &[&user_id]).await?.is_some())
}

/// Which of the users in the JSON list `users_json` exist.
pub async fn existing(db: &Db, users_json: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
    }
    let rows: Vec<Row> = db.all(EXISTING, &[&users_json]).await?;
    Ok(rows.into_iter().map(|r| r.user_id).collect())
}

pub fn set_password(db: &Db, user_id: &str, password_hash: &str) -> Result<Statement> {
    db.prepare(SET_PASSWORD, &[&user_id, &password_hash])
}

/// Makes a guest a full user with a password; changes nothing for anyone else.
pub fn upgrade_guest(db: &Db, user_id: &str, password_hash: &str) -> Result<Statement> {
    db.prepare(UPGRADE_GUEST, &[&user_id, &password_hash])
}

pub fn deactivate(db: &Db, user_id: &str) -> Result<Statement> {
    db.prepare(DEACTIVATE, &[&user_id])
}

pub fn reactivate(db: &Db, user_id: &str) -> Result<Statement> {
    db.prepare(REACTIVATE, &[&user_id])
}

pub fn set_admin(db: &Db, user_id: &str, admin: bool) -> Result<Statement> {
    db.prepare(SET_ADMIN, &[&user_id, &admin])
}

pub fn set_user_type(db: &Db, user_id: &str, user_type: Option<&str>) -> Result<Statement> {
    db.prepare(SET_USER_TYPE, &[&user_id, &user_type])
}

/// The admin API's filters.
pub struct ListFilter<'a> {
    pub name: Option<&'a str>,
    pub guests: bool,
    pub deactivated: bool,
    pub admins: Option<bool>,
}

/// A page of users and the total that match.
pub async fn list(db: &Db, filter: &ListFilter<'_>, from: u64, limit: u64) -> Result<(Vec<User>, u64)> {
    #[derive(Deserialize)]
    struct Count {
        n: f64,
    }
    let params: [&dyn super::Param; 6] =
        [&filter.name, &filter.guests, &filter.deactivated, &filter.admins, &from, &limit];
    let users = db.all(LIST, &params).await?;
    let total = db.first::<Count>(COUNT, &params[..4]).await?.map_or(0, |c| c.n as u64);
    Ok((users, total))
}
