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
/// The admin API's view of users: the row with the profile's `displayname` and `avatar_url` (JSON
/// text) and whether the user is erased, with the rest of the query.
macro_rules! admin_view {
    ($($tail:tt)*) => {
        concat!(
            "SELECT u.user_id, u.password_hash, u.is_guest, u.deactivated, u.created_ms, u.admin, u.user_type, \
             u.appservice_id, \
             (SELECT value FROM profile_fields p WHERE p.user_id = u.user_id AND p.field = 'displayname') AS displayname, \
             (SELECT value FROM profile_fields p WHERE p.user_id = u.user_id AND p.field = 'avatar_url') AS avatar_url, \
             EXISTS (SELECT 1 FROM erased_users e WHERE e.user_id = u.user_id) AS erased FROM users u ",
            $($tail)*
        )
    };
}
/// Which users the admin API's list shows, as Synapse's: `?1` a substring of the localpart or the
/// display name (`name`), or NULL; `?2` guests too; `?3` deactivated too; `?4` admins only or
/// non-admins only, or NULL; `?5` a substring of the user ID (`user_id`, used without `name`).
macro_rules! listed {
    () => {
        "WHERE (?1 IS NULL OR instr(lower(substr(u.user_id, 2, instr(u.user_id, ':') - 2)), lower(?1)) > 0 \
         OR instr(lower(coalesce((SELECT json_extract(value, '$') FROM profile_fields p \
           WHERE p.user_id = u.user_id AND p.field = 'displayname'), '')), lower(?1)) > 0) \
         AND (?1 IS NOT NULL OR ?5 IS NULL OR instr(lower(u.user_id), lower(?5)) > 0) \
         AND (?2 = 1 OR u.is_guest = 0) AND (?3 = 1 OR u.deactivated = 0) AND (?4 IS NULL OR u.admin = ?4) "
    };
}
/// A page of [`listed!`] users ordered by ID, from offset `?6`, `?7` rows.
const LIST: &str = admin_view!(listed!(), "ORDER BY u.user_id LIMIT ?7 OFFSET ?6");
const COUNT: &str = concat!("SELECT count(*) AS n FROM users u ", listed!());
const ADMIN_GET: &str = admin_view!("WHERE u.user_id = ?1");

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
    /// The admin API's view only: profile fields as JSON text, and erasure.
    #[serde(default)]
    pub displayname: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub erased: f64,
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
    pub user_id: Option<&'a str>,
    pub guests: bool,
    pub deactivated: bool,
    pub admins: Option<bool>,
}

/// A page of users and the total that match.
/// A user with what the admin API shows of it (see [`list`]).
pub async fn get_for_admin(db: &Db, user_id: &str) -> Result<Option<User>> {
    db.first(ADMIN_GET, &[&user_id]).await
}

pub async fn list(db: &Db, filter: &ListFilter<'_>, from: u64, limit: u64) -> Result<(Vec<User>, u64)> {
    #[derive(Deserialize)]
    struct Count {
        n: f64,
    }
    let params: [&dyn super::Param; 7] =
        [&filter.name, &filter.guests, &filter.deactivated, &filter.admins, &filter.user_id, &from, &limit];
    let users = db.all(LIST, &params).await?;
    let total = db.first::<Count>(COUNT, &params[..5]).await?.map_or(0, |c| c.n as u64);
    Ok((users, total))
}
