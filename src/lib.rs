//! Stratus, a Matrix homeserver that runs as Cloudflare Workers.
//!
//! The stateless worker (this crate's `fetch`) routes `/_matrix/...`, authenticates, validates,
//! reads D1 and calls the Durable Objects in `durable_objects/`. README.md has the map.

mod activity;
mod admin;
pub mod appservice;
mod auth;
mod auth_blocking;
mod client;
mod config;
mod context;
mod cost;
mod error;
mod http;
mod identifiers;
mod log;
mod media;
mod password;
mod presence;
mod push;
mod ratelimit;
mod room;
mod router;
mod server_keys;
mod server_notices;
mod signed_json;
mod storage;
mod time;
mod tokens;
mod uia;

#[path = "../durable_objects/mod.rs"]
mod durable_objects;

use worker::{event, Context, Env, Method, Request, Response};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    // The spec: answer every preflight with the CORS headers and do nothing else.
    if req.method() == Method::Options {
        return http::preflight();
    }
    router::handle(req, env, ctx).await
}
