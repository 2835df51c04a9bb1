//! The request as handlers see it, the reply they build, and the headers every response carries.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::error::Category;
use worker::{Headers, Method, Response};

use crate::error::{internal, Error, ErrorKind, MatrixError, Result};

/// An incoming request, read in full and checked against the body size limit; or, on a route that
/// streams its body (uploads), with the body left unread in `stream`.
pub struct Incoming {
    pub method: Method,
    /// The path as sent, still percent-encoded.
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    pub headers: Headers,
    pub body: Vec<u8>,
    /// The request itself, body unread, on a streaming route.
    pub stream: Option<worker::Request>,
    /// The client's address, from `CF-Connecting-IP`.
    pub ip: Option<String>,
    /// `scheme://host[:port]` of the request, for links back to ourselves.
    pub origin: String,
}

impl Incoming {
    /// Reads the request; `stream` leaves its body unread, for the handler to pass on.
    pub async fn read(mut req: worker::Request, max_body: u64, stream: bool) -> Result<Self> {
        let url = req.url().map_err(|e| internal("request URL", e))?;
        let method = req.method();
        let headers = req.headers().clone();
        let declared = headers.get("content-length").ok().flatten().and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max_body) {
            return Err(too_large(max_body));
        }
        let body = if stream || matches!(method, Method::Get | Method::Head | Method::Options) {
            Vec::new()
        } else {
            req.bytes().await.map_err(|e| internal("reading the body", e))?
        };
        if body.len() as u64 > max_body {
            return Err(too_large(max_body));
        }
        Ok(Self {
            method,
            path: url.path().to_owned(),
            query: url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
            ip: headers.get("cf-connecting-ip").ok().flatten(),
            origin: url.origin().ascii_serialization(),
            headers,
            body,
            stream: stream.then_some(req),
        })
    }

    /// The client's address as rate limits key it: empty when the platform gave none.
    pub fn client_address(&self) -> &str {
        self.ip.as_deref().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).ok().flatten()
    }

    /// The first value of a query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The body as a JSON object of the shape `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        parse_json_object(&self.body)
    }

    /// Like [`Incoming::json`], but no body at all reads as `{}`: clients send none to endpoints
    /// whose fields are all optional (join, leave, redact).
    pub fn json_or_empty<T: DeserializeOwned>(&self) -> Result<T> {
        if self.body.is_empty() {
            return parse_json_object(b"{}");
        }
        parse_json_object(&self.body)
    }
}

pub fn too_large(max_body: u64) -> Error {
    MatrixError::new(ErrorKind::TooLarge, format!("Request body is larger than {max_body} bytes")).into()
}

/// Decodes a JSON object body: `M_NOT_JSON` for what is not JSON, `M_BAD_JSON` for JSON that is
/// not an object of the expected shape (a duplicated field included), `M_MISSING_PARAM` for a
/// missing required field. Parsed once, straight into `T`.
pub fn parse_json_object<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    // serde skips over ignored fields without checking their bytes, so check them all first.
    let text = std::str::from_utf8(body)
        .map_err(|e| MatrixError::new(ErrorKind::NotJson, format!("Request body is not UTF-8: {e}")))?;
    // Derived structs also accept arrays (fields by position); only objects are request bodies.
    if !text.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => MatrixError::new(ErrorKind::BadJson, "Request body must be a JSON object"),
            Err(_) if text.trim().is_empty() => {
                MatrixError::new(ErrorKind::NotJson, "Request body is empty; expected a JSON object")
            }
            Err(e) => MatrixError::new(ErrorKind::NotJson, format!("Request body is not valid JSON: {e}")),
        }
        .into());
    }
    serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let kind = match e.classify() {
            Category::Data if message.starts_with("missing field") => ErrorKind::MissingParam,
            Category::Data => ErrorKind::BadJson,
            // serde reports some shape errors (an enum given a number) as syntax: valid JSON of
            // the wrong shape is still M_BAD_JSON.
            Category::Syntax if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => ErrorKind::BadJson,
            Category::Syntax | Category::Eof | Category::Io => ErrorKind::NotJson,
        };
        let message = match kind {
            ErrorKind::NotJson => format!("Request body is not valid JSON: {message}"),
            _ => format!("Invalid request body: {message}"),
        };
        MatrixError::new(kind, message).into()
    })
}

/// What a handler answers: a status and a JSON body, or a file (media downloads) as the handler
/// built it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    file: Option<Response>,
}

impl Reply {
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        let body = serde_json::to_vec(value).map_err(|e| internal("serializing a reply", e))?;
        Ok(Self { status: 200, body, file: None })
    }

    /// `{}`, the answer of endpoints that only act.
    pub fn empty() -> Self {
        Self { status: 200, body: b"{}".to_vec(), file: None }
    }

    pub fn error(error: &Error) -> Self {
        let body = serde_json::to_vec(&error.body()).unwrap_or_else(|_| b"{}".to_vec());
        Self { status: error.status(), body, file: None }
    }

    /// A response that is not JSON; it gets the CORS headers and nothing else.
    pub fn file(response: Response) -> Self {
        Self { status: response.status_code(), body: Vec::new(), file: Some(response) }
    }

    pub fn into_response(self, retry_after_ms: Option<u64>) -> worker::Result<Response> {
        if let Some(mut response) = self.file {
            set_cors(response.headers_mut())?;
            return Ok(response);
        }
        let headers = Headers::new();
        headers.set("content-type", "application/json")?;
        set_cors(&headers)?;
        if let Some(ms) = retry_after_ms {
            headers.set("retry-after", &ms.div_ceil(1000).to_string())?;
        }
        Ok(Response::from_bytes(self.body)?.with_status(self.status).with_headers(headers))
    }
}

/// The CORS headers the spec recommends, on every response.
pub fn set_cors(headers: &Headers) -> worker::Result<()> {
    headers.set("access-control-allow-origin", "*")?;
    headers.set("access-control-allow-methods", "GET, POST, PUT, DELETE, OPTIONS")?;
    headers.set("access-control-allow-headers", "X-Requested-With, Content-Type, Authorization")
}

/// The answer to a CORS preflight: headers only, no endpoint logic.
pub fn preflight() -> worker::Result<Response> {
    let headers = Headers::new();
    set_cors(&headers)?;
    Ok(Response::empty()?.with_status(204).with_headers(headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[allow(dead_code)]
        name: String,
        #[serde(default)]
        #[allow(dead_code)]
        age: Option<u32>,
    }

    fn errcode(body: &[u8]) -> &'static str {
        let err = parse_json_object::<Body>(body).unwrap_err();
        err.matrix().unwrap().kind.errcode_and_status().0
    }

    #[test]
    fn json_errors_map_to_the_right_codes() {
        assert_eq!(errcode(b""), "M_NOT_JSON");
        assert_eq!(errcode(b"{\"name\": "), "M_NOT_JSON");
        assert_eq!(errcode(b"\xff\xfe"), "M_NOT_JSON");
        assert_eq!(errcode(b"{\"name\": \"a\", \"ignored\": \"\xff\"}"), "M_NOT_JSON");
        assert_eq!(errcode(b"[1,2]"), "M_BAD_JSON");
        assert_eq!(errcode(b"[\"a\"]"), "M_BAD_JSON");
        assert_eq!(errcode(b"  "), "M_NOT_JSON");
        assert_eq!(errcode(b"\"text\""), "M_BAD_JSON");
        assert_eq!(errcode(b"{}"), "M_MISSING_PARAM");
        assert_eq!(errcode(b"{\"name\": 5}"), "M_BAD_JSON");
        assert_eq!(errcode(b"{\"name\": \"a\", \"age\": -1}"), "M_BAD_JSON");
        assert_eq!(errcode(b"{\"name\": \"a\", \"name\": \"b\"}"), "M_BAD_JSON");
        assert_eq!(errcode(b"{\"name\": \"a\"} trailing"), "M_NOT_JSON");
        // A deep array is valid JSON but no object (skipped without recursion); inside an
        // object, deep nesting stops at serde_json's depth limit: valid JSON we refuse to read.
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(errcode(deep.as_bytes()), "M_BAD_JSON");
        assert_eq!(errcode("[".repeat(100_000).as_bytes()), "M_NOT_JSON");
        let deep_in_object = format!("{{\"x\": {deep}}}");
        let err =
            parse_json_object::<serde_json::Map<String, serde_json::Value>>(deep_in_object.as_bytes()).unwrap_err();
        assert_eq!(err.matrix().unwrap().kind, ErrorKind::BadJson);
        // A number where a string belongs is a shape error, whatever serde calls it.
        #[derive(Debug, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Kind {
            One,
        }
        #[derive(Debug, serde::Deserialize)]
        struct WithEnum {
            #[allow(dead_code)]
            kind: Kind,
        }
        let err = parse_json_object::<WithEnum>(b"{\"kind\": 5}").unwrap_err();
        assert_eq!(err.matrix().unwrap().kind, ErrorKind::BadJson);
        assert!(parse_json_object::<WithEnum>(b"{\"kind\": \"one\"}").is_ok());
    }

    #[test]
    fn good_json_parses() {
        assert!(parse_json_object::<Body>(b"{\"name\": \"\xc3\xa9\", \"extra\": true}").is_ok());
    }
}
