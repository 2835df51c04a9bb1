//! Access tokens: where a request carries one, and whose device it stands for. A user's token
//! names a device; an application service's `as_token` acts as its sender, or as a user of its
//! namespace that `?user_id=` names (and that user's device, with `?device_id=`).

use std::rc::Rc;

use ruma_common::{OwnedUserId, UserId};

use crate::appservice::{registry, Service};
use crate::auth_blocking::{Standing, SUPPORT};
use crate::config::MauLimits;
use crate::error::{internal, unknown, Error, ErrorKind, MatrixError, Result};
use crate::http::Incoming;
use crate::storage::{access_tokens, devices, users, Db};
use crate::tokens::token_hash;

/// How stale a token's "last used" may grow before a request records its use again: its client
/// address, its device's "last seen" and its user's monthly activity.
pub const LAST_SEEN_RESOLUTION_MS: u64 = 60_000;

/// The user and device behind a request's access token.
#[derive(Debug, Clone)]
pub struct Requester {
    pub user_id: OwnedUserId,
    pub device_id: String,
    pub is_guest: bool,
    /// The application service whose `as_token` the request carried.
    pub appservice: Option<Rc<Service>>,
    /// The admin behind a puppet token (`/_synapse/admin/v1/users/{userId}/login`).
    pub puppeted_by: Option<OwnedUserId>,
    /// Whether `user_id` is a server admin.
    pub is_admin: bool,
    /// What auth blocking knows of whoever stands behind the request, read with the token;
    /// none for a service.
    pub standing: Option<Standing>,
    /// The user's pinned usage-limit notice, if there is one.
    pub limit_notice_id: Option<String>,
}

impl Requester {
    /// Who is really acting: the admin behind a puppet token, else the user.
    pub fn entity(&self) -> &UserId {
        self.puppeted_by.as_deref().unwrap_or(&self.user_id)
    }
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

fn unknown_token() -> MatrixError {
    MatrixError::new(ErrorKind::UnknownToken { soft_logout: false }, "Unknown or revoked access token")
}

fn missing_token() -> Error {
    MatrixError::new(ErrorKind::MissingToken, "Missing access token").into()
}

/// Resolves the request's token, a user's or a service's. Also gives the token's hash when its
/// use is due to be recorded.
pub async fn authenticate(
    db: &Db,
    server_name: &str,
    req: &Incoming,
    now_ms: u64,
    mau: &MauLimits,
) -> Result<(Requester, Option<String>)> {
    let token = access_token(req)?.ok_or_else(missing_token)?;
    let hash = token_hash(&token);
    // Users' tokens first: their requests never pay for the services' lookup.
    let Some(owner) = access_tokens::lookup(db, &hash, mau.enabled).await? else {
        let service = registry::by_token_hash(db, server_name, &hash).await?.ok_or_else(unknown_token)?;
        return Ok((as_service(db, req, service).await?, None));
    };
    if owner.is_deactivated() {
        return Err(unknown_token().into());
    }
    if owner.expires_ms.is_some_and(|t| (t as u64) <= now_ms) {
        return Err(MatrixError::new(ErrorKind::UnknownToken { soft_logout: true }, "Access token has expired").into());
    }
    let parse = |id: &str| UserId::parse(id).map_err(|e| internal("stored user ID", e));
    let user_id = parse(&owner.user_id)?;
    let puppeted_by = owner.puppeted_by.as_deref().map(parse).transpose()?;
    let standing = Standing {
        user_id: puppeted_by.clone().unwrap_or_else(|| user_id.clone()),
        user_type: owner.entity_type.clone(),
        created_ms: owner.entity_created_ms as u64,
        mau_ts: owner.entity_mau_ts.map(|t| t as u64),
        mau_count: owner.mau_count.map(|n| n as u64),
    };
    // A user who may become active now is recorded now, not a minute later (say, at the end of
    // their trial), so that the count is right before the next newcomer's check.
    let becomes_active = mau.enabled
        && !owner.is_guest()
        && standing.mau_ts.is_none()
        && standing.user_type.as_deref() != Some(SUPPORT)
        && now_ms.saturating_sub(standing.created_ms) >= mau.trial_ms
        && standing.mau_count.is_some_and(|n| n < mau.max);
    let due = becomes_active
        || owner.last_used_ms.is_none_or(|t| (t as u64).saturating_add(LAST_SEEN_RESOLUTION_MS) < now_ms);
    let requester = Requester {
        user_id,
        is_guest: owner.is_guest(),
        is_admin: owner.is_admin(),
        appservice: None,
        puppeted_by,
        standing: Some(standing),
        limit_notice_id: owner.limit_notice_id,
        device_id: owner.device_id,
    };
    Ok((requester, due.then_some(hash)))
}

/// The application service behind the request's token: the scheme of service-only endpoints.
pub async fn authenticate_service(db: &Db, server_name: &str, req: &Incoming) -> Result<Requester> {
    let token = access_token(req)?.ok_or_else(missing_token)?;
    let service = registry::by_token_hash(db, server_name, &token_hash(&token)).await?.ok_or_else(unknown_token)?;
    if !service.allows_address(req.ip.as_deref()) {
        return Err(unknown_token().into());
    }
    Ok(sender_of(service))
}

/// A service acts without a device unless it names one.
fn sender_of(service: Rc<Service>) -> Requester {
    Requester {
        user_id: service.sender.clone(),
        device_id: String::new(),
        is_guest: false,
        appservice: Some(service),
        puppeted_by: None,
        is_admin: false,
        standing: None,
        limit_notice_id: None,
    }
}

/// The service acting as its sender, or masquerading as `?user_id=` and `?device_id=`.
async fn as_service(db: &Db, req: &Incoming, service: Rc<Service>) -> Result<Requester> {
    // As Synapse: outside the whitelist the token is as good as unknown.
    if !service.allows_address(req.ip.as_deref()) {
        return Err(unknown_token().into());
    }
    let mut requester = sender_of(service.clone());
    if let Some(user_id) = req.query("user_id") {
        if !service.is_interested_in_user(user_id) {
            return Err(MatrixError::new(
                ErrorKind::Forbidden,
                format!("Application service cannot masquerade as this user ({user_id})"),
            )
            .into());
        }
        let user_id = UserId::parse(user_id)
            .map_err(|_| MatrixError::new(ErrorKind::InvalidParam, "user_id is not a valid user ID"))?;
        if user_id != requester.user_id && !users::exists(db, user_id.as_str()).await? {
            return Err(MatrixError::new(
                ErrorKind::Forbidden,
                format!("Application service has not registered this user ({user_id})"),
            )
            .into());
        }
        requester.user_id = user_id;
    }
    let device = req.query("org.matrix.msc3202.device_id").or_else(|| req.query("device_id"));
    if let Some(device_id) = device {
        if devices::get(db, requester.user_id.as_str(), device_id).await?.is_none() {
            return Err(MatrixError::new(
                ErrorKind::Exclusive,
                format!("Application service has not registered this device ({device_id})"),
            )
            .into());
        }
        requester.device_id = device_id.to_owned();
    }
    Ok(requester)
}
