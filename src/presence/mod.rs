//! Presence beyond the handlers: each user's state and timers ([`state`], kept by the user's
//! `UserSync` object), and who else gets a user's presence ([`router`], [`routers`]).

pub mod router;
pub mod routers;
pub mod state;
