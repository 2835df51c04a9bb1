//! `pushers`: where each user's notifications are delivered. (app_id, pushkey) is unique per
//! user. A pusher belongs to the device that first set it: deleting or logging out that device
//! removes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Db, Statement};
use crate::error::{internal, Result};

/// Setting a pusher again updates it, and keeps its device: as in Synapse, one device may edit
/// another's pusher without taking it over.
const UPSERT: &str = "INSERT INTO pushers (user_id, app_id, pushkey, kind, app_display_name, device_display_name, \
     profile_tag, lang, data, device_id, pushkey_ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
     ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET kind = excluded.kind, \
     app_display_name = excluded.app_display_name, device_display_name = excluded.device_display_name, \
     profile_tag = excluded.profile_tag, lang = excluded.lang, data = excluded.data, pushkey_ts = excluded.pushkey_ts";
const SELECT_FOR_USER: &str = "SELECT app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, \
     lang, data, pushkey_ts FROM pushers WHERE user_id = ?1 ORDER BY app_id, pushkey";
/// Each row's pusher comes as one JSON object, so that one [`Pusher`] type reads both queries.
const SELECT_FOR_USERS: &str = "SELECT user_id, json_object('app_id', app_id, 'pushkey', pushkey, 'kind', kind, \
     'app_display_name', app_display_name, 'device_display_name', device_display_name, 'profile_tag', profile_tag, \
     'lang', lang, 'data', data, 'pushkey_ts', pushkey_ts) AS pusher FROM pushers \
     WHERE user_id IN (SELECT value FROM json_each(?1)) ORDER BY user_id, app_id, pushkey";
const DELETE_ONE: &str = "DELETE FROM pushers WHERE user_id = ?1 AND app_id = ?2 AND pushkey = ?3";
const DELETE_OF_OTHER_USERS: &str = "DELETE FROM pushers WHERE app_id = ?1 AND pushkey = ?2 AND user_id != ?3";
const DELETE_FOR_DEVICE: &str = "DELETE FROM pushers WHERE user_id = ?1 AND device_id = ?2";
const DELETE_ALL: &str = "DELETE FROM pushers WHERE user_id = ?1";
const DELETE_ALL_BUT: &str = "DELETE FROM pushers WHERE user_id = ?1 AND device_id IS NOT ?2";

/// A stored pusher.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pusher {
    pub app_id: String,
    pub pushkey: String,
    pub kind: String,
    pub app_display_name: String,
    pub device_display_name: String,
    pub profile_tag: Option<String>,
    pub lang: String,
    /// The JSON text of the `data` object, `url` included.
    pub data: String,
    /// ms; when it was last set.
    pub pushkey_ts: u64,
}

/// A pusher to create or update.
pub struct NewPusher<'a> {
    pub user_id: &'a str,
    pub app_id: &'a str,
    pub pushkey: &'a str,
    pub kind: &'a str,
    pub app_display_name: &'a str,
    pub device_display_name: &'a str,
    pub profile_tag: Option<&'a str>,
    pub lang: &'a str,
    /// The JSON text of the `data` object.
    pub data: &'a str,
    pub device_id: &'a str,
    pub now_ms: u64,
}

pub fn upsert(db: &Db, p: &NewPusher) -> Result<Statement> {
    db.prepare(
        UPSERT,
        &[
            &p.user_id,
            &p.app_id,
            &p.pushkey,
            &p.kind,
            &p.app_display_name,
            &p.device_display_name,
            &p.profile_tag,
            &p.lang,
            &p.data,
            &p.device_id,
            &p.now_ms,
        ],
    )
}

pub async fn for_user(db: &Db, user_id: &str) -> Result<Vec<Pusher>> {
    db.all(SELECT_FOR_USER, &[&user_id]).await
}

/// The pushers of each of `users` that has any; the list goes in as one JSON parameter.
pub async fn for_users(db: &Db, users: &[&str]) -> Result<BTreeMap<String, Vec<Pusher>>> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
        pusher: String,
    }
    let mut pushers: BTreeMap<String, Vec<Pusher>> = BTreeMap::new();
    if users.is_empty() {
        return Ok(pushers);
    }
    let list = serde_json::to_string(users).map_err(|e| internal("pusher users", e))?;
    for row in db.all::<Row>(SELECT_FOR_USERS, &[&list]).await? {
        let pusher = serde_json::from_str(&row.pusher).map_err(|e| internal("stored pusher", e))?;
        pushers.entry(row.user_id).or_default().push(pusher);
    }
    Ok(pushers)
}

pub fn delete(db: &Db, user_id: &str, app_id: &str, pushkey: &str) -> Result<Statement> {
    db.prepare(DELETE_ONE, &[&user_id, &app_id, &pushkey])
}

/// Removes the pushers with this app ID and pushkey that other users set.
pub fn delete_of_other_users(db: &Db, app_id: &str, pushkey: &str, user_id: &str) -> Result<Statement> {
    db.prepare(DELETE_OF_OTHER_USERS, &[&app_id, &pushkey, &user_id])
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
