//! The Durable Object classes, one per job. Each is bound in wrangler.toml.

pub mod appservice;
pub mod deactivation;
pub mod push_queue;
pub mod room;
pub mod user_presence;
pub mod user_sync;
