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
