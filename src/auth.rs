//! Access tokens: where a request carries one, and whose device it stands for.

use ruma_common::{OwnedUserId, UserId};

use crate::error::{internal, unknown, ErrorKind, MatrixError, Result};
use crate::http::Incoming;
use crate::storage::{access_tokens, Db};
use crate::tokens::token_hash;

/// How stale a device's "last seen" may grow before a request refreshes it.
const LAST_SEEN_RESOLUTION_MS: u64 = 60_000;

/// The user and device behind a request's access token.
#[derive(Debug, Clone)]
pub struct Requester {
    pub user_id: OwnedUserId,
    pub device_id: String,
    pub is_guest: bool,
}

/// The token from `Authorization: Bearer …` or the `access_token` query parameter.
pub fn access_token(req: &Incoming) -> Result<Option<String>> {
    let header = req.header("authorization");
    match (header, req.query("access_token")) {
        (Some(_), Some(_)) => Err(unknown("Mixing Authorization headers and access_token query parameters")),
        (Some(header), None) => match header.trim().split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
                Ok(Some(token.trim().to_owned()))
            }
            _ => {
                Err(MatrixError::new(ErrorKind::MissingToken, "The Authorization header must be 'Bearer <token>'")
                    .into())
            }
        },
        (None, Some(token)) => Ok(Some(token.to_owned())),
        (None, None) => Ok(None),
    }
}

/// Resolves the request's token. Also says whether the device's "last seen" is due a refresh.
pub async fn authenticate(db: &Db, req: &Incoming, now_ms: u64) -> Result<(Requester, bool)> {
    let token = access_token(req)?.ok_or_else(|| MatrixError::new(ErrorKind::MissingToken, "Missing access token"))?;
    let hash = token_hash(&token);
    let unknown_token =
        || MatrixError::new(ErrorKind::UnknownToken { soft_logout: false }, "Unknown or revoked access token");
    let owner = access_tokens::lookup(db, &hash).await?.ok_or_else(unknown_token)?;
    if owner.is_deactivated() {
        return Err(unknown_token().into());
    }
    let user_id = UserId::parse(owner.user_id.as_str()).map_err(|e| internal("stored user ID", e))?;
    let seen_long_ago = owner.last_seen_ts.is_none_or(|t| (t as u64).saturating_add(LAST_SEEN_RESOLUTION_MS) < now_ms);
    let is_guest = owner.is_guest();
    let requester = Requester { user_id, device_id: owner.device_id, is_guest };
    Ok((requester, seen_long_ago))
}
