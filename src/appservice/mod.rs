//! Application services: registrations and their namespaces, the per-isolate view of them that
//! auth and the room writers use, and the `npm run appservice` command's logic.

#[cfg(not(target_arch = "wasm32"))]
pub mod command;
pub(crate) mod ephemeral;
pub(crate) mod exclusive;
pub(crate) mod handoff;
pub(crate) mod outbound;
pub(crate) mod query;
pub mod registration;
pub(crate) mod registry;

pub(crate) use registration::{Scope, Service};
