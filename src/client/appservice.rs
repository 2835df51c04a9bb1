//! Application service endpoints of the Client-Server API:
//! `POST /_matrix/client/v1/appservice/{appserviceId}/ping`.

use serde::Deserialize;
use serde_json::json;
use worker::Method;

use crate::appservice::outbound::{self, Failure};
use crate::context::Ctx;
use crate::error::{forbidden, ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::time::now_ms;

/// How long a ping waits for the service.
const PING_TIMEOUT_MS: u64 = 10_000;

#[derive(Deserialize)]
struct PingBody {
    transaction_id: Option<String>,
}

/// Calls the service's `POST /_matrix/app/v1/ping` and reports how long it took.
pub async fn ping(cx: Ctx) -> Result<Reply> {
    let service = cx.requester()?.appservice.clone().ok_or_else(|| forbidden("Not an application service"))?;
    if service.id() != cx.param("appserviceId") {
        return Err(forbidden("Provided access token is not the appservice's as_token"));
    }
    let body: PingBody = cx.req.json_or_empty()?;
    let mut ping = serde_json::Map::new();
    if let Some(txn) = body.transaction_id {
        ping.insert("transaction_id".into(), txn.into());
    }
    let started = now_ms();
    let sent = Some(serde_json::Value::Object(ping).to_string());
    match outbound::call(&service, Method::Post, "/_matrix/app/v1/ping", sent, PING_TIMEOUT_MS).await {
        Ok(answer) if (200..300).contains(&answer.status) => {
            Reply::json(&json!({ "duration_ms": now_ms().saturating_sub(started) }))
        }
        Ok(answer) => Err(MatrixError::new(
            ErrorKind::BadStatus { status: answer.status },
            format!("Ping returned status {}", answer.status),
        )
        .into()),
        Err(Failure::NoUrl) => {
            Err(MatrixError::new(ErrorKind::UrlNotSet, "Application service doesn't have a URL configured").into())
        }
        Err(Failure::Timeout) => {
            Err(MatrixError::new(ErrorKind::ConnectionTimeout, "Connection to application service timed out").into())
        }
        Err(Failure::Connection(e)) => {
            Err(MatrixError::new(ErrorKind::ConnectionFailed, format!("Connection to application service failed: {e}"))
                .into())
        }
    }
}
