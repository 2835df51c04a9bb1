//! Pushers: `GET /pushers`, `POST /pushers/set`.

use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::error::{bad_json, internal, invalid_param, missing_param, Error, Result};
use crate::http::Reply;
use crate::push::gateway::NOTIFY_PATH;
use crate::storage::pushers::{self, NewPusher};
use crate::time::now_ms;

/// The spec's limits: `app_id` in characters, `pushkey` in bytes.
const MAX_APP_ID_CHARS: usize = 64;
const MAX_PUSHKEY_BYTES: usize = 512;

pub async fn get_pushers(cx: Ctx) -> Result<Reply> {
    let stored = pushers::for_user(&cx.db, cx.requester()?.user_id.as_str()).await?;
    let mut list = Vec::with_capacity(stored.len());
    for p in stored {
        let data: Value = serde_json::from_str(&p.data).map_err(|e| internal("pusher data", e))?;
        let mut pusher = json!({
            "app_id": p.app_id,
            "pushkey": p.pushkey,
            "kind": p.kind,
            "app_display_name": p.app_display_name,
            "device_display_name": p.device_display_name,
            "lang": p.lang,
            "data": data,
        });
        if let Some(tag) = p.profile_tag {
            pusher["profile_tag"] = tag.into();
        }
        list.push(pusher);
    }
    Reply::json(&json!({ "pushers": list }))
}

pub async fn set_pusher(cx: Ctx) -> Result<Reply> {
    let body: Map<String, Value> = cx.req.json()?;
    let requester = cx.requester()?;
    let user = requester.user_id.as_str();
    let kind = match body.get("kind") {
        Some(Value::Null) => None,
        Some(Value::String(kind)) => Some(kind.as_str()),
        Some(_) => return Err(bad_json("kind must be a string or null")),
        None => return Err(missing(&["kind"])),
    };
    // Deleting needs only the pusher's key; setting needs every field.
    let required: &[&str] = match kind {
        None => &["app_id", "pushkey"],
        Some(_) => &["app_id", "pushkey", "app_display_name", "device_display_name", "lang", "data"],
    };
    let absent: Vec<&str> = required.iter().copied().filter(|f| !body.contains_key(*f)).collect();
    if !absent.is_empty() {
        return Err(missing(&absent));
    }
    let app_id = string(&body, "app_id")?;
    let pushkey = string(&body, "pushkey")?;
    if app_id.is_empty() || app_id.chars().count() > MAX_APP_ID_CHARS {
        return Err(invalid_param(format!("app_id must be 1 to {MAX_APP_ID_CHARS} characters")));
    }
    if pushkey.is_empty() || pushkey.len() > MAX_PUSHKEY_BYTES {
        return Err(invalid_param(format!("pushkey must be 1 to {MAX_PUSHKEY_BYTES} bytes")));
    }
    let Some(kind) = kind else {
        cx.db.run(pushers::delete(&cx.db, user, app_id, pushkey)?).await?;
        return Ok(Reply::empty());
    };
    match kind {
        "http" => {}
        "email" => return Err(invalid_param("kind \"email\" is not supported: this server sends no email")),
        other => return Err(invalid_param(format!("Unknown pusher kind {other:?}: kind must be \"http\", or null"))),
    }
    let data = match body.get("data") {
        Some(Value::Object(data)) => data,
        _ => return Err(bad_json("data must be an object")),
    };
    check_http_data(data)?;
    let profile_tag = match body.get("profile_tag") {
        None | Some(Value::Null) => None,
        Some(Value::String(tag)) => Some(tag.as_str()),
        Some(_) => return Err(bad_json("profile_tag must be a string")),
    };
    let append = match body.get("append") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(append)) => *append,
        Some(_) => return Err(bad_json("append must be a boolean")),
    };
    let data_json = serde_json::to_string(data).map_err(|e| internal("pusher data", e))?;
    let pusher = NewPusher {
        user_id: user,
        app_id,
        pushkey,
        kind,
        app_display_name: string(&body, "app_display_name")?,
        device_display_name: string(&body, "device_display_name")?,
        profile_tag,
        lang: string(&body, "lang")?,
        data: &data_json,
        device_id: &requester.device_id,
        now_ms: now_ms(),
    };
    let mut statements = Vec::with_capacity(2);
    if !append {
        // The spec: without `append`, this user takes the pushkey over from any other.
        statements.push(pushers::delete_of_other_users(&cx.db, app_id, pushkey, user)?);
    }
    statements.push(pushers::upsert(&cx.db, &pusher)?);
    cx.db.batch(statements).await?;
    Ok(Reply::empty())
}

/// An http pusher's `data`: a `url` whose path is the notify endpoint (only the path is checked,
/// as in Synapse, so a gateway on plain http works), and a string `format` if any.
fn check_http_data(data: &Map<String, Value>) -> Result<()> {
    let url = match data.get("url") {
        Some(Value::String(url)) => url,
        Some(_) => return Err(bad_json("data.url must be a string")),
        None => return Err(missing(&["data.url"])),
    };
    let valid = worker::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host() && u.path() == NOTIFY_PATH);
    if !valid {
        return Err(invalid_param(format!("data.url must be an http(s) URL whose path is {NOTIFY_PATH}")));
    }
    match data.get("format") {
        None | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(bad_json("data.format must be a string")),
    }
}

fn string<'a>(body: &'a Map<String, Value>, field: &str) -> Result<&'a str> {
    match body.get(field) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(bad_json(format!("{field} must be a string"))),
    }
}

fn missing(fields: &[&str]) -> Error {
    missing_param(format!("Missing parameters: {}", fields.join(", ")))
}
