//! Requests from the homeserver to a service (`/_matrix/app/v1/...`), each authorized with the
//! service's `hs_token` and bounded by a timeout, so that a slow service holds up only itself.

use std::time::Duration;

use futures::future::{select, Either};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit};

use super::Service;

/// What a path segment escapes: all but the URL's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A user ID, alias or protocol as one segment of a path (or a query value) to a service.
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// How a request to a service ended, when it got no answer.
#[derive(Debug)]
pub enum Failure {
    /// The service has no `url`.
    NoUrl,
    Connection(String),
    Timeout,
}

/// A service's answer.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Sends `method path` (with a JSON body) to the service and waits at most `timeout_ms`. A
/// connection that fails at once (a kept-alive one the service had closed) is tried once more.
pub async fn call(
    service: &Service,
    method: Method,
    path: &str,
    body: Option<String>,
    timeout_ms: u64,
) -> Result<Answer, Failure> {
    match call_once(service, method.clone(), path, body.clone(), timeout_ms).await {
        Err(Failure::Connection(_)) => call_once(service, method, path, body, timeout_ms).await,
        other => other,
    }
}

async fn call_once(
    service: &Service,
    method: Method,
    path: &str,
    body: Option<String>,
    timeout_ms: u64,
) -> Result<Answer, Failure> {
    let base = service.registration.url.as_deref().ok_or(Failure::NoUrl)?;
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let headers = Headers::new();
    let auth = format!("Bearer {}", service.registration.hs_token);
    headers.set("Authorization", &auth).map_err(|e| Failure::Connection(e.to_string()))?;
    if body.is_some() {
        headers.set("Content-Type", "application/json").map_err(|e| Failure::Connection(e.to_string()))?;
    }
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers).with_body(body.map(Into::into));
    let request = Request::new_with_init(&url, &init).map_err(|e| Failure::Connection(e.to_string()))?;
    let exchange = async move {
        crate::cost::fetch();
        let mut response = Fetch::Request(request).send().await.map_err(|e| Failure::Connection(e.to_string()))?;
        let body = response.text().await.map_err(|e| Failure::Connection(e.to_string()))?;
        Ok(Answer { status: response.status_code(), body })
    };
    let timeout = Delay::from(Duration::from_millis(timeout_ms));
    match select(Box::pin(exchange), timeout).await {
        Either::Left((answer, _)) => answer,
        Either::Right(_) => Err(Failure::Timeout),
    }
}
