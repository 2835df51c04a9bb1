//! The user directory, read from `current_state`, `users` and `profile_fields`: no table of its
//! own, so it is never stale. Whom a searcher sees are Synapse's default rules: the users who
//! share a joined room with the searcher, and the joined members of public rooms.

use serde::Deserialize;

use super::Db;
use crate::error::Result;

/// `instr` rather than `LIKE`: D1 refuses patterns longer than 50 bytes.
const SEARCH: &str = "WITH visible AS ( \
       SELECT DISTINCT cs.state_key AS user_id FROM current_state cs \
       WHERE cs.type = 'm.room.member' AND cs.membership = 'join' AND ( \
         cs.room_id IN (SELECT room_id FROM current_state \
           WHERE type = 'm.room.member' AND state_key = ?1 AND membership = 'join') \
         OR cs.room_id IN (SELECT jr.room_id FROM current_state jr JOIN events e ON e.event_id = jr.event_id \
           WHERE jr.type = 'm.room.join_rules' AND jr.state_key = '' AND e.redacted_by IS NULL \
           AND json_extract(e.json, '$.content.join_rule') = 'public'))) \
     SELECT v.user_id, json_extract(dn.value, '$') AS display_name, json_extract(av.value, '$') AS avatar_url \
     FROM visible v JOIN users u ON u.user_id = v.user_id AND u.deactivated = 0 \
     LEFT JOIN profile_fields dn ON dn.user_id = v.user_id AND dn.field = 'displayname' \
     LEFT JOIN profile_fields av ON av.user_id = v.user_id AND av.field = 'avatar_url' \
     WHERE instr(lower(v.user_id), ?2) > 0 OR instr(lower(coalesce(json_extract(dn.value, '$'), '')), ?2) > 0 \
     ORDER BY v.user_id LIMIT ?3";

#[derive(Debug, Deserialize)]
pub struct Entry {
    pub user_id: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
}

/// Up to `limit` users `searcher` may see whose ID or display name contains `term`
/// (lowercase), by user ID.
pub async fn search(db: &Db, searcher: &str, term: &str, limit: u64) -> Result<Vec<Entry>> {
    db.all(SEARCH, &[&searcher, &term, &limit]).await
}
