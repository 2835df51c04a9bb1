//! The room event model, shared by the worker and the Room Durable Object: room versions, the
//! server's signing key, PDUs and how they are built, room state and its authorization, and the
//! client format events are served in. Everything here is pure and runs natively under
//! `cargo test`.

pub mod client_format;
pub mod pdu;
pub mod signing;
pub mod state;
pub mod versions;
pub mod visibility;

#[cfg(test)]
mod auth_fixtures;
#[cfg(test)]
mod test_vectors;
