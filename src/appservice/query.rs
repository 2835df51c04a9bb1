//! Queries to services about users and aliases they may own: before an unknown user or alias in
//! a service's namespace is reported as not found, the service is asked
//! (`GET /_matrix/app/v1/users/{userId}`, `GET /_matrix/app/v1/rooms/{roomAlias}`), and may
//! create it then. As Synapse, a 2xx answer means the service knows it; the caller looks again.

use worker::Method;

use super::{outbound, registry, Scope};
use crate::error::Result;
use crate::storage::Db;

/// How long a query waits for a service.
const QUERY_TIMEOUT_MS: u64 = 10_000;

/// Which namespace a query is about.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    User,
    Alias,
}

/// At most this many unknown users of one request are asked about, side by side: each costs a
/// subrequest.
const MAX_USERS_ASKED: usize = 8;

/// Before a lookup of several users (`/keys/query`): asks the services about those of `users`
/// that are in a user namespace and do not exist. One D1 query, and only when a namespace
/// holds one of them.
pub async fn ask_unknown_users(db: &Db, server_name: &str, users: &[&str]) -> Result<()> {
    let services = registry::all(db, server_name).await?;
    let candidates: Vec<&str> = users
        .iter()
        .copied()
        .filter(|u| {
            services.iter().any(|e| e.service.registration.url.is_some() && e.service.user_in_namespace(u, Scope::Any))
        })
        .collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let list = serde_json::to_string(&candidates).map_err(|e| crate::error::internal("user list", e))?;
    let existing = crate::storage::users::existing(db, &list).await?;
    let unknown = candidates.into_iter().filter(|u| !existing.iter().any(|e| e == u)).take(MAX_USERS_ASKED);
    futures::future::try_join_all(unknown.map(|u| ask(db, server_name, Kind::User, u))).await?;
    Ok(())
}

/// Asks, one after the other, the services with a URL whose namespace holds `id`, until one
/// says it knows it. False when none does (or none is asked).
pub async fn ask(db: &Db, server_name: &str, kind: Kind, id: &str) -> Result<bool> {
    let services = registry::all(db, server_name).await?;
    let path = match kind {
        Kind::User => "users",
        Kind::Alias => "rooms",
    };
    let path = format!("/_matrix/app/v1/{path}/{}", outbound::segment(id));
    for entry in services.iter().filter(|e| e.service.registration.url.is_some()) {
        let service = &entry.service;
        let in_namespace = match kind {
            Kind::User => service.user_in_namespace(id, Scope::Any),
            Kind::Alias => service.alias_in_namespace(id, Scope::Any),
        };
        if !in_namespace {
            continue;
        }
        match outbound::call(service, Method::Get, &path, None, QUERY_TIMEOUT_MS).await {
            Ok(answer) if (200..300).contains(&answer.status) => return Ok(true),
            Ok(_) => {}
            Err(e) => crate::log::error(&format!("querying {} about {id}: {e:?}", service.id())),
        }
    }
    Ok(false)
}
