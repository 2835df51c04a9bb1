//! The user directory: `POST /user_directory/search`.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::context::Ctx;
use crate::error::{invalid_param, Result};
use crate::http::Reply;
use crate::storage::user_directory;

const DEFAULT_LIMIT: u64 = 10;
/// Synapse's bound.
const MAX_LIMIT: u64 = 50;
const MAX_TERM_CHARS: usize = 256;

#[derive(Deserialize)]
struct SearchBody {
    search_term: String,
    limit: Option<u64>,
}

pub async fn search_user_directory(cx: Ctx) -> Result<Reply> {
    let body: SearchBody = cx.req.json()?;
    if body.search_term.chars().count() > MAX_TERM_CHARS {
        return Err(invalid_param(format!("search_term is longer than {MAX_TERM_CHARS} characters")));
    }
    let limit = body.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let term = body.search_term.trim().to_lowercase();
    let searcher = cx.requester()?.user_id.as_str();
    // One more than asked tells whether the results are limited.
    let mut found = user_directory::search(&cx.db, searcher, &term, limit + 1).await?;
    let limited = found.len() as u64 > limit;
    found.truncate(limit as usize);
    let results: Vec<Value> = found
        .into_iter()
        .map(|e| {
            let mut entry = json!({"user_id": e.user_id});
            if let Some(name) = e.display_name {
                entry["display_name"] = name.into();
            }
            if let Some(url) = e.avatar_url {
                entry["avatar_url"] = url.into();
            }
            entry
        })
        .collect();
    Reply::json(&json!({"results": results, "limited": limited}))
}
