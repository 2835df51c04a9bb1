//! `e2e_cross_signing_signatures`: verified signatures of devices and master keys, merged into
//! the signed key when `/keys/query` serves it.

use serde::Deserialize;

use super::{Db, Statement};
use crate::error::Result;

/// ?1 is a JSON array of `[target_user_id, target_key_id, signer_user_id, signer_key_id,
/// signature]`.
const INSERT: &str = "INSERT OR REPLACE INTO e2e_cross_signing_signatures \
     (target_user_id, target_key_id, signer_user_id, signer_key_id, signature) \
     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
       json_extract(value, '$[3]'), json_extract(value, '$[4]') FROM json_each(?1)";
/// The signatures of the keys of the users in the JSON array ?1 that ?2 may see: those a user
/// made of their own keys, and ?2's own.
const VISIBLE: &str = "SELECT target_user_id, target_key_id, signer_user_id, signer_key_id, signature \
     FROM e2e_cross_signing_signatures WHERE target_user_id IN (SELECT value FROM json_each(?1)) \
     AND (signer_user_id = target_user_id OR signer_user_id = ?2)";

#[derive(Debug, Deserialize)]
pub struct SignatureRow {
    pub target_user_id: String,
    /// A device ID, or a master key's public key.
    pub target_key_id: String,
    pub signer_user_id: String,
    pub signer_key_id: String,
    pub signature: String,
}

/// Stores signatures: `signatures_json` is a JSON array of `[target_user_id, target_key_id,
/// signer_user_id, signer_key_id, signature]`.
pub fn insert(db: &Db, signatures_json: &str) -> Result<Statement> {
    db.prepare(INSERT, &[&signatures_json])
}

/// The signatures of the keys of the users in `users_json` that `reader` may see.
pub async fn visible(db: &Db, users_json: &str, reader: &str) -> Result<Vec<SignatureRow>> {
    db.all(VISIBLE, &[&users_json, &reader]).await
}
