//! The registered services as this isolate knows them: read from D1 at most once per
//! [`TTL_MS`], so that a service added or removed with `npm run appservice` takes effect on a
//! running server within that time, at the cost of one small query per isolate per interval.

use std::cell::RefCell;
use std::rc::Rc;

use super::registration::{Registration, Service};
use crate::error::{internal, Result};
use crate::storage::{appservices, Db};
use crate::time::now_ms;

pub const TTL_MS: u64 = 2_000;

/// One service and the hash of its `as_token`.
#[derive(Debug)]
pub struct Entry {
    pub service: Rc<Service>,
    pub as_token_hash: String,
}

pub type Services = Rc<Vec<Entry>>;

thread_local! {
    static CACHE: RefCell<Option<(u64, Services)>> = const { RefCell::new(None) };
}

/// Every registered service.
pub async fn all(db: &Db, server_name: &str) -> Result<Services> {
    let now = now_ms();
    if let Some(services) =
        CACHE.with_borrow(|c| c.as_ref().filter(|(at, _)| now < at + TTL_MS).map(|(_, s)| s.clone()))
    {
        return Ok(services);
    }
    let mut services = Vec::new();
    for row in appservices::all(db).await? {
        let registration: Registration =
            serde_json::from_str(&row.registration).map_err(|e| internal("stored registration", e))?;
        // The command validated it; a regex that no longer compiles is a fault to see in the log.
        match Service::new(registration, server_name) {
            Ok(service) => services.push(Entry { service: Rc::new(service), as_token_hash: row.as_token_hash }),
            Err(e) => crate::log::error(&format!("application service {}: {e}", row.id)),
        }
    }
    let services = Rc::new(services);
    CACHE.with_borrow_mut(|c| *c = Some((now, services.clone())));
    Ok(services)
}

/// True when this isolate's fresh view holds no service that takes transactions, so that a
/// writer can skip the hand-off without a query.
pub fn known_none() -> bool {
    let now = now_ms();
    CACHE.with_borrow(|c| {
        c.as_ref().is_some_and(|(at, s)| now < at + TTL_MS && s.iter().all(|e| e.service.registration.url.is_none()))
    })
}

/// The service whose `as_token` has this hash.
pub async fn by_token_hash(db: &Db, server_name: &str, hash: &str) -> Result<Option<Rc<Service>>> {
    Ok(all(db, server_name).await?.iter().find(|e| e.as_token_hash == hash).map(|e| e.service.clone()))
}

pub async fn by_id(db: &Db, server_name: &str, id: &str) -> Result<Option<Rc<Service>>> {
    Ok(all(db, server_name).await?.iter().find(|e| e.service.id() == id).map(|e| e.service.clone()))
}
