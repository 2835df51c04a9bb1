//! `media`: the content repository's metadata; the bytes are in R2 (see `client/media.rs`).

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

/// A finished upload, in one statement.
const INSERT_UPLOADED: &str = "INSERT INTO media \
     (media_id, user_id, created_ms, upload_started_ms, size, content_type, upload_name) \
     VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6)";
/// An async upload's ID, pending until its bytes come.
const INSERT_PENDING: &str =
    "INSERT INTO media (media_id, user_id, created_ms, unused_expires_ms) VALUES (?1, ?2, ?3, ?4)";
/// Pending uploads past their deadline can never be completed.
const DELETE_EXPIRED: &str =
    "DELETE FROM media WHERE user_id = ?1 AND upload_started_ms IS NULL AND unused_expires_ms <= ?2";
const COUNT_PENDING: &str = "SELECT count(*) AS n FROM media \
     WHERE user_id = ?1 AND upload_started_ms IS NULL AND unused_expires_ms > ?2";
const SELECT_ONE: &str = "SELECT user_id, upload_started_ms, size, content_type, upload_name, \
     unused_expires_ms, quarantined FROM media WHERE media_id = ?1";
const SELECT_SIZE: &str = "SELECT size FROM media WHERE media_id = ?1";
/// Claims a pending upload for one uploader: only the first claim changes the row.
const CLAIM: &str = "UPDATE media SET upload_started_ms = ?3, content_type = ?4, upload_name = ?5, \
     unused_expires_ms = NULL \
     WHERE media_id = ?1 AND user_id = ?2 AND upload_started_ms IS NULL AND unused_expires_ms > ?3";
const FINISH: &str = "UPDATE media SET size = ?2 WHERE media_id = ?1";
/// A claimed upload whose bytes did not reach R2 is pending again.
const UNCLAIM: &str = "UPDATE media SET upload_started_ms = NULL, unused_expires_ms = ?2 \
     WHERE media_id = ?1 AND size IS NULL";

/// Quarantine (`?2` the admin) or release (`?2` NULL) one file; a protected one is not quarantined.
const SET_QUARANTINE: &str = "UPDATE media SET quarantined = ?2 IS NOT NULL, quarantined_by = ?2 \
     WHERE media_id = ?1 AND (?2 IS NULL OR safe_from_quarantine = 0)";
/// Quarantines every unprotected file of an uploader.
const QUARANTINE_OF_USER: &str =
    "UPDATE media SET quarantined = 1, quarantined_by = ?2 WHERE user_id = ?1 AND safe_from_quarantine = 0";
/// Quarantines the unprotected files of a JSON list of media IDs.
const QUARANTINE_IDS: &str = "UPDATE media SET quarantined = 1, quarantined_by = ?2 \
     WHERE media_id IN (SELECT value FROM json_each(?1)) AND safe_from_quarantine = 0";
/// The local media a room's events refer to, as Synapse finds them: `content.url` and
/// `content.info.thumbnail_url` of the unredacted events with a URL; `?2` is `mxc://{server}/`.
const IN_ROOM: &str = "SELECT DISTINCT substr(u.url, length(?2) + 1) AS media_id FROM \
     (SELECT json_extract(json, '$.content.url') AS url FROM events WHERE room_id = ?1 AND contains_url = 1 \
      UNION ALL SELECT json_extract(json, '$.content.info.thumbnail_url') FROM events \
      WHERE room_id = ?1 AND contains_url = 1) u \
     WHERE typeof(u.url) = 'text' AND substr(u.url, 1, length(?2)) = ?2 AND length(u.url) > length(?2)";
const PROTECT: &str = "UPDATE media SET safe_from_quarantine = ?2 WHERE media_id = ?1";

#[derive(Debug, Deserialize)]
pub struct Media {
    pub user_id: String,
    pub upload_started_ms: Option<f64>,
    /// Set once the bytes are in R2.
    pub size: Option<f64>,
    pub content_type: Option<String>,
    pub upload_name: Option<String>,
    pub unused_expires_ms: Option<f64>,
    pub quarantined: f64,
}

impl Media {
    pub fn is_uploaded(&self) -> bool {
        self.size.is_some()
    }

    /// A pending async upload whose deadline passed: it will never have bytes.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.upload_started_ms.is_none() && self.unused_expires_ms.is_some_and(|t| t <= now_ms as f64)
    }
}

pub fn insert_uploaded(
    db: &Db,
    media_id: &str,
    user_id: &str,
    now_ms: u64,
    size: u64,
    content_type: Option<&str>,
    upload_name: Option<&str>,
) -> Result<Statement> {
    db.prepare(INSERT_UPLOADED, &[&media_id, &user_id, &now_ms, &size, &content_type, &upload_name])
}

pub fn insert_pending(db: &Db, media_id: &str, user_id: &str, now_ms: u64, expires_ms: u64) -> Result<Statement> {
    db.prepare(INSERT_PENDING, &[&media_id, &user_id, &now_ms, &expires_ms])
}

pub fn delete_expired(db: &Db, user_id: &str, now_ms: u64) -> Result<Statement> {
    db.prepare(DELETE_EXPIRED, &[&user_id, &now_ms])
}

pub async fn count_pending(db: &Db, user_id: &str, now_ms: u64) -> Result<u64> {
    #[derive(Deserialize)]
    struct Row {
        n: f64,
    }
    Ok(db.first::<Row>(COUNT_PENDING, &[&user_id, &now_ms]).await?.map_or(0, |r| r.n as u64))
}

pub async fn get(db: &Db, media_id: &str) -> Result<Option<Media>> {
    db.first(SELECT_ONE, &[&media_id]).await
}

/// Whether the bytes of a media ID are in R2 yet; `None` if there is no such media.
pub async fn is_uploaded(db: &Db, media_id: &str) -> Result<Option<bool>> {
    #[derive(Deserialize)]
    struct Row {
        size: Option<f64>,
    }
    Ok(db.first::<Row>(SELECT_SIZE, &[&media_id]).await?.map(|r| r.size.is_some()))
}

pub fn claim(
    db: &Db,
    media_id: &str,
    user_id: &str,
    now_ms: u64,
    content_type: Option<&str>,
    upload_name: Option<&str>,
) -> Result<Statement> {
    db.prepare(CLAIM, &[&media_id, &user_id, &now_ms, &content_type, &upload_name])
}

pub fn finish(db: &Db, media_id: &str, size: u64) -> Result<Statement> {
    db.prepare(FINISH, &[&media_id, &size])
}

pub fn unclaim(db: &Db, media_id: &str, expires_ms: u64) -> Result<Statement> {
    db.prepare(UNCLAIM, &[&media_id, &expires_ms])
}

/// Quarantines a file for `admin`, or releases it (`None`).
pub fn set_quarantine(db: &Db, media_id: &str, admin: Option<&str>) -> Result<Statement> {
    db.prepare(SET_QUARANTINE, &[&media_id, &admin])
}

/// The number of files quarantined (those already quarantined included, as Synapse counts).
pub async fn quarantine_of_user(db: &Db, user_id: &str, admin: &str) -> Result<u64> {
    db.run(db.prepare(QUARANTINE_OF_USER, &[&user_id, &admin])?).await
}

/// Quarantines the files of `media_ids`; the number quarantined, as [`quarantine_of_user`].
pub async fn quarantine_ids(db: &Db, media_ids: &[String], admin: &str) -> Result<u64> {
    let ids = serde_json::to_string(media_ids).map_err(|e| crate::error::internal("media IDs", e))?;
    db.run(db.prepare(QUARANTINE_IDS, &[&ids, &admin])?).await
}

/// The media IDs of this server that a room's events refer to (`mxc_prefix`: `mxc://{server}/`).
pub async fn in_room(db: &Db, room_id: &str, mxc_prefix: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        media_id: String,
    }
    Ok(db.all::<Row>(IN_ROOM, &[&room_id, &mxc_prefix]).await?.into_iter().map(|r| r.media_id).collect())
}

pub fn protect(db: &Db, media_id: &str, safe: bool) -> Result<Statement> {
    db.prepare(PROTECT, &[&media_id, &safe])
}
