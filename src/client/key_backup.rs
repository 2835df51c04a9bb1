//! Server-side key backups: `POST` and `GET /room_keys/version`; `GET`, `PUT` and
//! `DELETE /room_keys/version/{version}`; `PUT`, `GET` and `DELETE` of `/room_keys/keys`,
//! `/room_keys/keys/{roomId}` and `/room_keys/keys/{roomId}/{sessionId}`.
//!
//! The session data is encrypted by the client; the server keeps the better copy of a session
//! (see [`crate::storage::e2e_room_keys`]). Keys are written to the current version only: a write
//! to an older version that still exists gets `M_WRONG_ROOM_KEYS_VERSION` with the current
//! version's number (Synapse echoes the requested one instead). Versions are numbers here; a
//! version that is not one is unknown.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::error::{internal, invalid_param, missing_param, not_found, Error, ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::storage::e2e_room_keys::{self, Scope, SessionRow, Status};
use crate::storage::e2e_room_keys_versions::{self, VersionRow};
use crate::storage::{rows, BatchError, Statement};

#[derive(Deserialize)]
struct CreateBody {
    algorithm: String,
    auth_data: Map<String, Value>,
}

pub async fn create_backup_version(cx: Ctx) -> Result<Reply> {
    let body: CreateBody = cx.req.json()?;
    let user = cx.requester()?.user_id.as_str();
    let version = e2e_room_keys_versions::create(&cx.db, user, &body.algorithm, &to_json(&body.auth_data)?).await?;
    Reply::json(&json!({ "version": version.to_string() }))
}

pub async fn get_latest_backup_info(cx: Ctx) -> Result<Reply> {
    let user = cx.requester()?.user_id.as_str();
    let row = e2e_room_keys_versions::get(&cx.db, user, None).await?;
    Reply::json(&version_info(row.ok_or_else(|| not_found("No current backup version"))?)?)
}

pub async fn get_backup_info(cx: Ctx) -> Result<Reply> {
    let user = cx.requester()?.user_id.as_str();
    let row = existing_version(&cx, user, parse_version(cx.param("version"))).await?;
    Reply::json(&version_info(row)?)
}

fn version_info(row: VersionRow) -> Result<Value> {
    Ok(json!({
        "algorithm": row.algorithm,
        "auth_data": parse(&row.auth_data)?,
        "count": row.count,
        "etag": row.etag.to_string(),
        "version": row.version.to_string(),
    }))
}

#[derive(Deserialize)]
struct UpdateBody {
    algorithm: String,
    auth_data: Map<String, Value>,
    version: Option<String>,
}

/// Only `auth_data` changes; the algorithm must stay the same.
pub async fn update_backup_version(cx: Ctx) -> Result<Reply> {
    let body: UpdateBody = cx.req.json()?;
    let user = cx.requester()?.user_id.as_str();
    let raw = cx.param("version");
    if body.version.as_deref().is_some_and(|v| v != raw) {
        return Err(invalid_param("The version in the body does not match the version in the path"));
    }
    let row = existing_version(&cx, user, parse_version(raw)).await?;
    if body.algorithm != row.algorithm {
        return Err(invalid_param("Algorithm does not match"));
    }
    cx.db.run(e2e_room_keys_versions::set_auth_data(&cx.db, user, row.version, &to_json(&body.auth_data)?)?).await?;
    Ok(Reply::empty())
}

/// Deletes the version and its keys; deleting it again succeeds.
pub async fn delete_backup_version(cx: Ctx) -> Result<Reply> {
    let user = cx.requester()?.user_id.as_str();
    let unknown = || not_found("Unknown backup version");
    let version = parse_version(cx.param("version")).ok_or_else(unknown)?;
    match e2e_room_keys_versions::deleted(&cx.db, user, version).await? {
        None => Err(unknown()),
        Some(true) => Ok(Reply::empty()),
        Some(false) => {
            cx.db
                .batch(vec![
                    e2e_room_keys_versions::delete(&cx.db, user, version)?,
                    e2e_room_keys::delete(&cx.db, user, version, Scope::default())?,
                ])
                .await?;
            Ok(Reply::empty())
        }
    }
}

/// One backed-up session, as uploaded and served.
#[derive(Debug, Serialize, Deserialize)]
struct KeyBackupData {
    first_message_index: u64,
    forwarded_count: u64,
    is_verified: bool,
    session_data: Map<String, Value>,
}

#[derive(Deserialize)]
struct RoomKeyBackup {
    sessions: BTreeMap<String, KeyBackupData>,
}

#[derive(Deserialize)]
struct RoomsKeyBackup {
    rooms: BTreeMap<String, RoomKeyBackup>,
}

pub async fn add_backup_keys(cx: Ctx) -> Result<Reply> {
    let body: RoomsKeyBackup = cx.req.json()?;
    let sessions =
        body.rooms.iter().flat_map(|(room, r)| r.sessions.iter().map(move |(id, s)| (room.as_str(), id.as_str(), s)));
    put(&cx, sessions.collect()).await
}

pub async fn add_backup_keys_for_room(cx: Ctx) -> Result<Reply> {
    let body: RoomKeyBackup = cx.req.json()?;
    let room = cx.param("roomId");
    put(&cx, body.sessions.iter().map(|(id, s)| (room, id.as_str(), s)).collect()).await
}

pub async fn add_backup_keys_for_session(cx: Ctx) -> Result<Reply> {
    let body: KeyBackupData = cx.req.json()?;
    put(&cx, vec![(cx.param("roomId"), cx.param("sessionId"), &body)]).await
}

/// Stores sessions in the current version, keeping the better copy of each.
async fn put(cx: &Ctx, sessions: Vec<(&str, &str, &KeyBackupData)>) -> Result<Reply> {
    let user = cx.requester()?.user_id.as_str();
    let version = query_version(cx)?;
    let current = e2e_room_keys_versions::get(&cx.db, user, None).await?;
    let current = current.ok_or_else(|| not_found("No current backup version"))?.version;
    if version != Some(current) {
        // An older version that still exists is the wrong one; any other is unknown.
        existing_version(cx, user, version).await?;
        let kind = ErrorKind::WrongRoomKeysVersion { current_version: current };
        return Err(MatrixError::new(kind, "Wrong backup version").into());
    }
    let rows: Vec<(&str, &str, u64, u64, u8, String)> = sessions
        .iter()
        .map(|(room, id, s)| {
            let data = to_json(&s.session_data)?;
            Ok((*room, *id, s.first_message_index, s.forwarded_count, u8::from(s.is_verified), data))
        })
        .collect::<Result<_>>()?;
    status(cx, e2e_room_keys::put(&cx.db, user, current, &to_json(&rows)?)?).await
}

pub async fn get_backup_keys(cx: Ctx) -> Result<Reply> {
    let mut rooms: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for row in sessions(&cx, Scope::default()).await? {
        let room = rooms.entry(row.room_id.clone()).or_default();
        room.entry("sessions").or_insert_with(|| json!({}))[&row.session_id] = session(&row)?;
    }
    Reply::json(&json!({ "rooms": rooms }))
}

pub async fn get_backup_keys_for_room(cx: Ctx) -> Result<Reply> {
    let scope = Scope { room_id: Some(cx.param("roomId")), session_id: None };
    let sessions: Map<String, Value> = sessions(&cx, scope)
        .await?
        .iter()
        .map(|row| Ok((row.session_id.clone(), session(row)?)))
        .collect::<Result<_>>()?;
    Reply::json(&json!({ "sessions": sessions }))
}

pub async fn get_backup_keys_for_session(cx: Ctx) -> Result<Reply> {
    let scope = Scope { room_id: Some(cx.param("roomId")), session_id: Some(cx.param("sessionId")) };
    let found = sessions(&cx, scope).await?;
    Reply::json(&session(found.first().ok_or_else(|| not_found("Key not found"))?)?)
}

pub async fn delete_backup_keys(cx: Ctx) -> Result<Reply> {
    delete(&cx, Scope::default()).await
}

pub async fn delete_backup_keys_for_room(cx: Ctx) -> Result<Reply> {
    delete(&cx, Scope { room_id: Some(cx.param("roomId")), session_id: None }).await
}

pub async fn delete_backup_keys_for_session(cx: Ctx) -> Result<Reply> {
    delete(&cx, Scope { room_id: Some(cx.param("roomId")), session_id: Some(cx.param("sessionId")) }).await
}

/// The sessions of `scope` in the version the query names, which must exist.
async fn sessions(cx: &Ctx, scope: Scope<'_>) -> Result<Vec<SessionRow>> {
    let user = cx.requester()?.user_id.as_str();
    let version = query_version(cx)?;
    // Side by side: when the version does not exist, the sessions read are dropped with it.
    let (_, sessions) = futures::try_join!(
        existing_version(cx, user, version),
        e2e_room_keys::get(&cx.db, user, version.unwrap_or_default(), scope),
    )?;
    Ok(sessions)
}

/// Deletes the sessions of `scope` from the version the query names, which must exist.
async fn delete(cx: &Ctx, scope: Scope<'_>) -> Result<Reply> {
    let user = cx.requester()?.user_id.as_str();
    let version = existing_version(cx, user, query_version(cx)?).await?.version;
    let statements = vec![
        e2e_room_keys::delete(&cx.db, user, version, scope)?,
        e2e_room_keys::bump(&cx.db, user, version)?,
        e2e_room_keys::status(&cx.db, user, version)?,
    ];
    status(cx, statements).await
}

/// Runs a write whose last statement reads the version's status; answers it.
async fn status(cx: &Ctx, statements: Vec<Statement>) -> Result<Reply> {
    let results = cx.db.batch_rows(statements).await.map_err(|e| match e {
        BatchError::Conflict(message) => internal("backup keys", message),
        BatchError::Failed(e) => e,
    })?;
    let status: Option<Status> = match results.last() {
        Some(result) => rows::<Status>(result)?.into_iter().next(),
        None => None,
    };
    let status = status.ok_or_else(|| internal("backup keys", "no status row"))?;
    Reply::json(&json!({ "etag": status.etag.to_string(), "count": status.count }))
}

/// A version that exists and is not deleted, or `M_NOT_FOUND`.
async fn existing_version(cx: &Ctx, user: &str, version: Option<u64>) -> Result<VersionRow, Error> {
    let row = match version {
        Some(v) => e2e_room_keys_versions::get(&cx.db, user, Some(v)).await?,
        None => None,
    };
    row.ok_or_else(|| not_found("Unknown backup version"))
}

/// The required `version` query parameter; `None` if it is no version number.
fn query_version(cx: &Ctx) -> Result<Option<u64>> {
    Ok(parse_version(cx.req.query("version").ok_or_else(|| missing_param("version is required"))?))
}

fn parse_version(raw: &str) -> Option<u64> {
    raw.parse().ok().filter(|v| *v > 0)
}

fn session(row: &SessionRow) -> Result<Value> {
    let data = KeyBackupData {
        first_message_index: row.first_message_index,
        forwarded_count: row.forwarded_count,
        is_verified: row.is_verified == 1,
        session_data: serde_json::from_str(&row.session_data).map_err(|e| internal("stored session", e))?,
    };
    serde_json::to_value(data).map_err(|e| internal("serializing a session", e))
}

fn parse(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| internal("stored auth_data", e))
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| internal("serializing backup data", e))
}
