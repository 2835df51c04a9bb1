//! Third-party networks, answered by the application services that bridge them:
//! `GET /thirdparty/protocols`, `/thirdparty/protocol/{protocol}`,
//! `/thirdparty/location/{protocol}`, `/thirdparty/user/{protocol}`, `/thirdparty/location`
//! and `/thirdparty/user`.
//!
//! Each request goes to the services that declare the protocol (the reverse lookups by alias or
//! user ID to every service that declares one), side by side, each bounded by a timeout: a
//! failing or slow service leaves only its own part out. As Synapse's `get_3pe_protocols`, the
//! `instances` of several services' answers for one protocol are merged, each instance with
//! `instance_id` `{service ID}|{network_id}`, and the other fields are the first answer's.

use std::rc::Rc;

use serde_json::{Map, Value};
use worker::Method;

use crate::appservice::outbound::{self, segment};
use crate::appservice::{registry, Service};
use crate::context::Ctx;
use crate::error::{not_found, Result};
use crate::http::Reply;

/// How long a lookup waits for each service.
const LOOKUP_TIMEOUT_MS: u64 = 5_000;

pub async fn get_protocols(cx: Ctx) -> Result<Reply> {
    Reply::json(&protocols(&cx, None).await?)
}

pub async fn get_protocol_metadata(cx: Ctx) -> Result<Reply> {
    let protocol = cx.param("protocol");
    let mut found = protocols(&cx, Some(protocol)).await?;
    let metadata = found.remove(protocol).ok_or_else(|| not_found("The protocol is unknown"))?;
    Reply::json(&metadata)
}

pub async fn query_location_by_protocol(cx: Ctx) -> Result<Reply> {
    lookup(&cx, "location", Some(cx.param("protocol")), "alias", "No portal rooms were found").await
}

pub async fn query_user_by_protocol(cx: Ctx) -> Result<Reply> {
    lookup(&cx, "user", Some(cx.param("protocol")), "userid", "The Matrix User ID was not found").await
}

pub async fn query_location_by_alias(cx: Ctx) -> Result<Reply> {
    lookup(&cx, "location", None, "alias", "The Matrix room alias was not found").await
}

pub async fn query_user_by_id(cx: Ctx) -> Result<Reply> {
    lookup(&cx, "user", None, "userid", "The Matrix User ID was not found").await
}

/// The services with a URL that declare `protocol`, or any protocol.
async fn services_for(cx: &Ctx, protocol: Option<&str>) -> Result<Vec<Rc<Service>>> {
    let all = registry::all(&cx.db, cx.config.server_name.as_str()).await?;
    Ok(all
        .iter()
        .map(|e| e.service.clone())
        .filter(|s| s.registration.url.is_some())
        .filter(|s| match protocol {
            Some(p) => s.registration.protocols.iter().any(|q| q == p),
            None => !s.registration.protocols.is_empty(),
        })
        .collect())
}

/// `GET path` at the service, its JSON answer when it gave a 2xx one in time.
async fn get_json(service: &Service, path: &str) -> Option<Value> {
    match outbound::call(service, Method::Get, path, None, LOOKUP_TIMEOUT_MS).await {
        Ok(answer) if (200..300).contains(&answer.status) => serde_json::from_str(&answer.body).ok(),
        Ok(answer) => {
            crate::log::error(&format!("{} answered {path} with {}", service.id(), answer.status));
            None
        }
        Err(e) => {
            crate::log::error(&format!("{} did not answer {path}: {e:?}", service.id()));
            None
        }
    }
}

/// Every declared protocol (or only `only`) with its merged metadata.
async fn protocols(cx: &Ctx, only: Option<&str>) -> Result<Map<String, Value>> {
    let services = services_for(cx, only).await?;
    let mut asked = Vec::new();
    for service in &services {
        for protocol in service.registration.protocols.iter().filter(|p| only.is_none_or(|o| o == p.as_str())) {
            asked.push((service.clone(), protocol.clone()));
        }
    }
    let answers = futures::future::join_all(asked.iter().map(|(service, protocol)| async move {
        let path = format!("/_matrix/app/v1/thirdparty/protocol/{}", segment(protocol));
        get_json(service, &path).await
    }))
    .await;
    let mut merged = Map::new();
    for ((service, protocol), answer) in asked.iter().zip(answers) {
        let Some(info) = answer.and_then(|a| with_instance_ids(service.id(), a)) else { continue };
        match merged.get_mut(protocol).and_then(Value::as_object_mut) {
            Some(first) => {
                let more = info.get("instances").and_then(Value::as_array).cloned().unwrap_or_default();
                if let Some(instances) = first.get_mut("instances").and_then(Value::as_array_mut) {
                    instances.extend(more);
                }
            }
            None => {
                merged.insert(protocol.clone(), Value::Object(info));
            }
        }
    }
    Ok(merged)
}

/// A protocol's metadata with each instance's `instance_id`, or `None` when it is not valid
/// metadata (an object with an `instances` list), which Synapse also ignores.
fn with_instance_ids(service_id: &str, info: Value) -> Option<Map<String, Value>> {
    let Value::Object(mut info) = info else { return None };
    let instances = info.get_mut("instances")?.as_array_mut()?;
    for instance in instances.iter_mut() {
        let instance = instance.as_object_mut()?;
        if let Some(network) = instance.get("network_id").and_then(Value::as_str) {
            let id = format!("{service_id}|{network}");
            instance.insert("instance_id".into(), Value::String(id));
        }
    }
    Some(info)
}

/// Forwards a location or user lookup, with the request's query, and concatenates the answers
/// that are lists of objects with `required`; 404 when there are none, as the spec says.
async fn lookup(cx: &Ctx, kind: &str, protocol: Option<&str>, required: &str, none: &'static str) -> Result<Reply> {
    let services = services_for(cx, protocol).await?;
    let query: Vec<String> = cx
        .req
        .query
        .iter()
        .filter(|(k, _)| k != "access_token")
        .map(|(k, v)| format!("{}={}", segment(k), segment(v)))
        .collect();
    let mut path = format!("/_matrix/app/v1/thirdparty/{kind}");
    if let Some(p) = protocol {
        path = format!("{path}/{}", segment(p));
    }
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let answers = futures::future::join_all(services.iter().map(|s| get_json(s, &path))).await;
    let found: Vec<Value> = answers
        .into_iter()
        .flatten()
        .filter_map(|a| match a {
            Value::Array(items) => Some(items),
            _ => None,
        })
        .flatten()
        .filter(|item| item.get(required).is_some() && item.get("protocol").is_some())
        .collect();
    if found.is_empty() {
        return Err(not_found(none));
    }
    Reply::json(&found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn instances_are_named_by_service_and_network() {
        let info = json!({"icon": "mxc://x/y", "instances": [{"desc": "A", "network_id": "a"}, {"desc": "B"}]});
        let named = with_instance_ids("irc-bridge", info).unwrap();
        assert_eq!(
            named["instances"],
            json!([{"desc": "A", "network_id": "a", "instance_id": "irc-bridge|a"},
                                               {"desc": "B"}])
        );
        assert!(with_instance_ids("s", json!({"instances": {}})).is_none());
        assert!(with_instance_ids("s", json!([])).is_none());
    }
}
