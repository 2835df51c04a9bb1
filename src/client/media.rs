//! The content repository: `POST /_matrix/media/v3/upload`, `POST /_matrix/media/v1/create`,
//! `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`, `GET /_matrix/client/v1/media/config`,
//! `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]`,
//! `GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}`, and the frozen
//! `GET /_matrix/media/v3/download/...` and `/_matrix/media/v3/thumbnail/...`.
//!
//! The bytes live in the R2 bucket `MEDIA` under the media ID; a request body streams into R2 and
//! a download streams out of it, never whole in the isolate. D1 (`storage::media`) says whose
//! media it is, its type and name, and whether its bytes have arrived.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use worker::{Bucket, Data, Headers, HttpMetadata, Response, ResponseBody};

use crate::config::Thumbnailer;
use crate::context::Ctx;
use crate::error::{internal, invalid_param, missing_param, not_found, ErrorKind, MatrixError, Result};
use crate::http::too_large;
use crate::http::Reply;
use crate::media::headers::{content_disposition, essence, served_content_type, CONTENT_SECURITY_POLICY};
use crate::media::images;
use crate::media::is_valid_media_id;
use crate::media::range::{self, Ranged};
use crate::media::thumbnail::{self, Method, Outcome};
use crate::ratelimit;
use crate::storage::media::{self, Media};
use crate::time::now_ms;
use crate::tokens::new_media_id;

/// How long a `/create`d media ID waits for its bytes (Synapse's `unused_expiration_time`).
const UNUSED_EXPIRY_MS: u64 = 24 * 60 * 60 * 1000;
/// Pending async uploads per user (Synapse's `max_pending_media_uploads`).
const MAX_PENDING_UPLOADS: u64 = 5;
/// How long a download waits for an async upload, by default and at most (as Synapse).
const DEFAULT_TIMEOUT_MS: u64 = 20_000;
const MAX_TIMEOUT_MS: u64 = 60_000;
/// A waiting download looks again this often, and at most 40 times: within the query budget.
const MIN_POLL_MS: u64 = 500;
const MAX_POLLS: u64 = 40;

fn bucket(cx: &Ctx) -> Result<Bucket> {
    cx.env.bucket("MEDIA").map_err(|e| internal("binding MEDIA", e))
}

fn mxc(cx: &Ctx, media_id: &str) -> String {
    format!("mxc://{}/{media_id}", cx.config.server_name)
}

/// `POST /_matrix/media/v3/upload`
pub async fn create_content(mut cx: Ctx) -> Result<Reply> {
    let user_id = cx.requester()?.user_id.to_string();
    let now = now_ms();
    ratelimit::check(&cx.db, cx.config.rc_media_create, "media-create", &user_id, now).await?;
    let media_id = new_media_id()?;
    let content_type = cx.req.header("content-type");
    let upload_name = cx.req.query("filename").map(str::to_owned);
    let size = store(&mut cx, &media_id, content_type.as_deref()).await?;
    let insert = media::insert_uploaded(
        &cx.db,
        &media_id,
        &user_id,
        now,
        size,
        content_type.as_deref(),
        upload_name.as_deref(),
    )?;
    cx.db.run(insert).await?;
    Reply::json(&json!({ "content_uri": mxc(&cx, &media_id) }))
}

/// `POST /_matrix/media/v1/create`
pub async fn create_mxc_uri(cx: Ctx) -> Result<Reply> {
    let user_id = cx.requester()?.user_id.to_string();
    let now = now_ms();
    ratelimit::check(&cx.db, cx.config.rc_media_create, "media-create", &user_id, now).await?;
    if media::count_pending(&cx.db, &user_id, now).await? >= MAX_PENDING_UPLOADS {
        return Err(MatrixError::new(
            ErrorKind::LimitExceeded { retry_after_ms: 60_000 },
            "Too many pending uploads; complete one of them first",
        )
        .into());
    }
    let media_id = new_media_id()?;
    let expires = now + UNUSED_EXPIRY_MS;
    cx.db
        .batch(vec![
            media::delete_expired(&cx.db, &user_id, now)?,
            media::insert_pending(&cx.db, &media_id, &user_id, now, expires)?,
        ])
        .await?;
    Reply::json(&json!({ "content_uri": mxc(&cx, &media_id), "unused_expires_at": expires }))
}

/// `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`: the bytes of a `/create`d media ID,
/// once, by the user who created it.
pub async fn upload_content_to_mxc(mut cx: Ctx) -> Result<Reply> {
    let user_id = cx.requester()?.user_id.to_string();
    let media_id = local_media_id(&cx)?;
    let now = now_ms();
    let row = media::get(&cx.db, &media_id).await?.filter(|m| !m.is_expired(now)).ok_or_else(no_such_media)?;
    if row.user_id != user_id {
        return Err(MatrixError::new(ErrorKind::Forbidden, "This media ID was created by another user").into());
    }
    let content_type = cx.req.header("content-type");
    let upload_name = cx.req.query("filename").map(str::to_owned);
    let claim = media::claim(&cx.db, &media_id, &user_id, now, content_type.as_deref(), upload_name.as_deref())?;
    if row.upload_started_ms.is_some() || cx.db.run(claim).await? == 0 {
        return Err(MatrixError::new(ErrorKind::CannotOverwriteMedia, "This media has already been uploaded").into());
    }
    match store(&mut cx, &media_id, content_type.as_deref()).await {
        Ok(size) => {
            cx.db.run(media::finish(&cx.db, &media_id, size)?).await?;
            Ok(Reply::empty())
        }
        Err(e) => {
            // Let the uploader try again.
            cx.db.run(media::unclaim(&cx.db, &media_id, now + UNUSED_EXPIRY_MS)?).await?;
            Err(e)
        }
    }
}

/// Streams the request body into R2 under `key` and returns its size. A body without a
/// `Content-Length` (chunked) cannot stream into R2, which needs the length first: it is read
/// into memory, up to the upload limit.
async fn store(cx: &mut Ctx, key: &str, content_type: Option<&str>) -> Result<u64> {
    let max = cx.config.max_upload_bytes;
    let mut req = cx.req.stream.take().ok_or_else(|| internal("upload", "the route does not stream its body"))?;
    let declared = cx.req.header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
    let data = match (declared, req.inner().body()) {
        (_, None) | (Some(0), _) => Data::Empty,
        (Some(_), Some(stream)) => Data::ReadableStream(stream),
        (None, Some(_)) => {
            let mut chunks = req.stream().map_err(|e| internal("reading an upload", e))?;
            let mut bytes = Vec::new();
            while let Some(chunk) = chunks.next().await {
                bytes.extend(chunk.map_err(|e| internal("reading an upload", e))?);
                if bytes.len() as u64 > max {
                    return Err(too_large(max));
                }
            }
            Data::Bytes(bytes)
        }
    };
    let metadata = HttpMetadata { content_type: content_type.map(str::to_owned), ..Default::default() };
    let object = bucket(cx)?
        .put(key, data)
        .http_metadata(metadata)
        .execute()
        .await
        .map_err(|e| internal("storing an upload in R2", e))?
        .ok_or_else(|| internal("storing an upload in R2", "R2 refused the write"))?;
    Ok(object.size())
}

/// `GET /_matrix/client/v1/media/config` (and the deprecated `/_matrix/media/v3/config`)
pub async fn get_config(cx: Ctx) -> Result<Reply> {
    Reply::json(&json!({ "m.upload.size": cx.config.max_upload_bytes }))
}

/// The deprecated unauthenticated downloads and thumbnails, frozen as the spec asks: all media
/// here were uploaded after the freeze, and remote media are not fetched.
pub async fn frozen(_cx: Ctx) -> Result<Reply> {
    Err(not_found("Media are served only by the authenticated /_matrix/client/v1/media endpoints"))
}

fn no_such_media() -> crate::error::Error {
    not_found("Media not found")
}

/// The `mediaId` of a path whose `serverName` is ours; media of other servers are not fetched.
fn local_media_id(cx: &Ctx) -> Result<String> {
    let media_id = cx.param("mediaId");
    if cx.param("serverName") != cx.config.server_name.as_str() || !is_valid_media_id(media_id) {
        return Err(no_such_media());
    }
    Ok(media_id.to_owned())
}

/// The media of the path, once its bytes are in R2: a pending async upload is waited for up to
/// `timeout_ms`. Quarantined media are not found.
async fn uploaded_media(cx: &Ctx) -> Result<(String, Media)> {
    let media_id = local_media_id(cx)?;
    let timeout_ms = match cx.req.query("timeout_ms") {
        None => DEFAULT_TIMEOUT_MS,
        Some(t) => t.parse::<u64>().map_err(|_| invalid_param("timeout_ms must be a non-negative integer"))?,
    }
    .min(MAX_TIMEOUT_MS);
    let now = now_ms();
    let found = |m: Option<Media>| m.filter(|m| m.quarantined == 0.0 && !m.is_expired(now_ms()));
    let mut row = found(media::get(&cx.db, &media_id).await?).ok_or_else(no_such_media)?;
    let deadline = now + timeout_ms;
    let poll_ms = MIN_POLL_MS.max(timeout_ms / MAX_POLLS);
    while !row.is_uploaded() {
        let left = deadline.saturating_sub(now_ms());
        if left == 0 {
            return Err(MatrixError::new(ErrorKind::NotYetUploaded, "The media has not been uploaded yet").into());
        }
        worker::Delay::from(Duration::from_millis(poll_ms.min(left))).await;
        if media::is_uploaded(&cx.db, &media_id).await? == Some(true) {
            row = found(media::get(&cx.db, &media_id).await?).ok_or_else(no_such_media)?;
        }
    }
    Ok((media_id, row))
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}`
pub async fn get_content(cx: Ctx) -> Result<Reply> {
    let (media_id, row) = uploaded_media(&cx).await?;
    download(&cx, &media_id, row.upload_name.as_deref(), &row).await
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}`; an empty name
/// (a trailing slash, as matrix-nio sends) is no name.
pub async fn get_content_as_filename(cx: Ctx) -> Result<Reply> {
    let (media_id, row) = uploaded_media(&cx).await?;
    let name = Some(cx.param("fileName")).filter(|n| !n.is_empty()).or(row.upload_name.as_deref());
    download(&cx, &media_id, name, &row).await
}

async fn download(cx: &Ctx, media_id: &str, file_name: Option<&str>, row: &Media) -> Result<Reply> {
    let size = row.size.unwrap_or_default() as u64;
    let served_type = served_content_type(row.content_type.as_deref());
    let headers = media_headers(&served_type, &content_disposition(&served_type, file_name))?;
    set(&headers, "accept-ranges", "bytes")?;
    let (status, r2_range) = match range::parse(cx.req.header("range").as_deref(), size) {
        Ranged::Whole => (200, None),
        Ranged::Part { start, end } => {
            set(&headers, "content-range", &format!("bytes {start}-{end}/{size}"))?;
            (206, Some(worker::Range::OffsetWithLength { offset: start, length: end - start + 1 }))
        }
        Ranged::Unsatisfiable => {
            set(&headers, "content-range", &format!("bytes */{size}"))?;
            let response = Response::empty().map_err(|e| internal("media response", e))?;
            return Ok(Reply::file(response.with_status(416).with_headers(headers)));
        }
    };
    let bucket = bucket(cx)?;
    let mut get = bucket.get(media_id);
    if let Some(r) = r2_range {
        get = get.range(r);
    }
    let object = get.execute().await.map_err(|e| internal("reading media from R2", e))?.ok_or_else(no_such_media)?;
    let body = object.body().ok_or_else(|| internal("reading media from R2", "no body"))?;
    let body = body.response_body().map_err(|e| internal("reading media from R2", e))?;
    file(body, status, headers)
}

/// `GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}`: the smallest of the
/// standard sizes that is at least as large as asked, made on first request and kept in R2; the
/// original when it is no larger than that, or when no standard size is large enough.
pub async fn get_content_thumbnail(cx: Ctx) -> Result<Reply> {
    let dimension = |name: &'static str| -> Result<u32> {
        let value = cx.req.query(name).ok_or_else(|| missing_param(format!("{name} is required")))?;
        value
            .parse::<u32>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| invalid_param(format!("{name} must be a positive integer")))
    };
    let (width, height) = (dimension("width")?, dimension("height")?);
    let method = match cx.req.query("method") {
        None => Method::Scale,
        Some(m) => Method::parse(m).ok_or_else(|| invalid_param("method must be crop or scale"))?,
    };
    // Thumbnails are never animated, which `animated=true` allows ("if possible").
    if !matches!(cx.req.query("animated"), None | Some("true" | "false")) {
        return Err(invalid_param("animated must be true or false"));
    }
    let (media_id, row) = uploaded_media(&cx).await?;
    let source_type = row.content_type.as_deref().map(essence).unwrap_or_default();
    if !thumbnail::SOURCE_TYPES.contains(&source_type.as_str()) {
        return Err(MatrixError::new(ErrorKind::Unknown, "Cannot generate thumbnails for this media").into());
    }
    let bucket = bucket(&cx)?;
    let Some(size) = thumbnail::select(width, height, method) else {
        return serve_object(&bucket, &media_id).await;
    };
    let key = size.key(&media_id);
    if let Some(reply) = serve_object_if_present(&bucket, &key).await? {
        return Ok(reply);
    }
    let object = bucket.get(&media_id).execute().await.map_err(|e| internal("reading media from R2", e))?;
    let object = object.ok_or_else(no_such_media)?;
    let source = object.body().ok_or_else(no_such_media)?;
    let max_pixels = cx.config.max_thumbnail_pixels;
    let made = match cx.config.thumbnailer {
        Thumbnailer::Images => {
            if !images::is_bound(&cx.env) {
                return Err(internal("THUMBNAILER=images", "no [images] binding named IMAGES"));
            }
            let ResponseBody::Stream(stream) =
                source.response_body().map_err(|e| internal("reading media from R2", e))?
            else {
                return Err(no_such_media());
            };
            images::make(&cx.env, stream, &source_type, size, max_pixels).await
        }
        #[cfg(feature = "wasm-thumbnails")]
        Thumbnailer::Wasm => {
            // Decoding in Wasm reads the whole file into the isolate.
            use crate::media::decode;
            if row.size.unwrap_or_default() as u64 > decode::MAX_SOURCE_BYTES {
                return Err(too_large(decode::MAX_SOURCE_BYTES));
            }
            let bytes = source.bytes().await.map_err(|e| internal("reading media from R2", e))?;
            decode::make(&bytes, size, max_pixels)
        }
        #[cfg(not(feature = "wasm-thumbnails"))]
        Thumbnailer::Wasm => return Err(internal("THUMBNAILER=wasm", "not built in")),
    };
    let (bytes, content_type) = match made {
        Ok(Outcome::Made(t)) => (t.bytes, t.content_type.to_owned()),
        // The source fits the box: it is its own thumbnail, served as it is.
        Ok(Outcome::Original) => return serve_object(&bucket, &media_id).await,
        Err(thumbnail::Failure::TooLarge) => {
            return Err(MatrixError::new(ErrorKind::TooLarge, "The image is too large to thumbnail").into())
        }
        Err(thumbnail::Failure::Undecodable(e)) => {
            return Err(MatrixError::new(ErrorKind::Unknown, format!("Cannot generate a thumbnail: {e}")).into())
        }
    };
    let metadata = HttpMetadata { content_type: Some(content_type.clone()), ..Default::default() };
    let kept = bytes.clone();
    // Kept for the next request, after this one has its answer.
    cx.in_background(async move {
        if let Err(e) = bucket.put(key, kept).http_metadata(metadata).execute().await {
            crate::log::error(&format!("storing a thumbnail in R2: {e}"));
        }
    });
    let headers = media_headers(&content_type, "inline")?;
    file(ResponseBody::Body(bytes), 200, headers)
}

/// A thumbnail from R2, if it was made before.
async fn serve_object_if_present(bucket: &Bucket, key: &str) -> Result<Option<Reply>> {
    let Some(object) = bucket.get(key).execute().await.map_err(|e| internal("reading media from R2", e))? else {
        return Ok(None);
    };
    let content_type = object.http_metadata().content_type.unwrap_or_else(|| "application/octet-stream".into());
    let headers = media_headers(&content_type, "inline")?;
    let body = object.body().ok_or_else(|| internal("reading media from R2", "no body"))?;
    let body = body.response_body().map_err(|e| internal("reading media from R2", e))?;
    file(body, 200, headers).map(Some)
}

async fn serve_object(bucket: &Bucket, key: &str) -> Result<Reply> {
    serve_object_if_present(bucket, key).await?.ok_or_else(no_such_media)
}

/// The headers of every media response but its range.
fn media_headers(content_type: &str, disposition: &str) -> Result<Headers> {
    let headers = Headers::new();
    set(&headers, "content-type", content_type)?;
    set(&headers, "content-disposition", disposition)?;
    set(&headers, "content-security-policy", CONTENT_SECURITY_POLICY)?;
    set(&headers, "cross-origin-resource-policy", "cross-origin")?;
    set(&headers, "x-content-type-options", "nosniff")?;
    // Authenticated media: no shared cache may keep it (as Synapse).
    set(&headers, "cache-control", "private, max-age=86400")?;
    Ok(headers)
}

fn set(headers: &Headers, name: &str, value: &str) -> Result<()> {
    headers.set(name, value).map_err(|e| internal("media response headers", e))
}

fn file(body: ResponseBody, status: u16, headers: Headers) -> Result<Reply> {
    let response = Response::from_body(body).map_err(|e| internal("media response", e))?;
    Ok(Reply::file(response.with_status(status).with_headers(headers)))
}
