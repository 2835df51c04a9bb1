//! The headers of served media: `Content-Type`, a `Content-Disposition` that is `inline` only
//! for the spec's safe types, with the file name as RFC 6266 and RFC 5987 want it, and the
//! security headers the spec recommends (and Synapse sends).

/// The spec's recommended `Content-Security-Policy` for media, with Synapse's `media-src`.
pub const CONTENT_SECURITY_POLICY: &str = "sandbox; default-src 'none'; script-src 'none'; \
     plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';";

/// The types the spec lets a server serve `inline` ("Serving inline content").
const INLINE_TYPES: &[&str] = &[
    "text/css",
    "text/plain",
    "text/csv",
    "application/json",
    "application/ld+json",
    "image/jpeg",
    "image/gif",
    "image/png",
    "image/apng",
    "image/webp",
    "image/avif",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/quicktime",
    "audio/mp4",
    "audio/webm",
    "audio/aac",
    "audio/mpeg",
    "audio/ogg",
    "audio/wave",
    "audio/wav",
    "audio/x-wav",
    "audio/x-pn-wav",
    "audio/flac",
    "audio/x-flac",
];

/// The type without its parameters, lowercased: `Text/Plain; charset=x` is `text/plain`.
pub fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// The `Content-Type` to serve: as uploaded, `application/octet-stream` when none was given,
/// and `text/*` with `charset=UTF-8` unless a charset is named (as Synapse does).
pub fn served_content_type(uploaded: Option<&str>) -> String {
    match uploaded.map(str::trim).filter(|t| !t.is_empty()) {
        None => "application/octet-stream".to_owned(),
        Some(t) if essence(t).starts_with("text/") && !t.to_ascii_lowercase().contains("charset=") => {
            format!("{t}; charset=UTF-8")
        }
        Some(t) => t.to_owned(),
    }
}

/// `inline` for the safe types, `attachment` for all others, with the file name if there is one.
pub fn content_disposition(served_type: &str, file_name: Option<&str>) -> String {
    let kind = if INLINE_TYPES.contains(&essence(served_type).as_str()) { "inline" } else { "attachment" };
    match file_name.filter(|n| !n.is_empty()) {
        None => kind.to_owned(),
        Some(name) if name.bytes().all(is_token_char) => format!("{kind}; filename={name}"),
        Some(name) => format!("{kind}; filename*=utf-8''{}", encode_ext_value(name)),
    }
}

/// RFC 2616's `token`: visible ASCII but for the separators.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)
}

/// RFC 5987's `value-chars`: `attr-char` as it is, any other byte of the UTF-8 as `%XX`.
fn encode_ext_value(name: &str) -> String {
    let mut out = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_as_served() {
        assert_eq!(served_content_type(None), "application/octet-stream");
        assert_eq!(served_content_type(Some("")), "application/octet-stream");
        assert_eq!(served_content_type(Some("image/png")), "image/png");
        assert_eq!(served_content_type(Some("text/plain")), "text/plain; charset=UTF-8");
        assert_eq!(served_content_type(Some("text/html; charset=latin1")), "text/html; charset=latin1");
    }

    #[test]
    fn disposition_is_inline_only_for_safe_types() {
        assert_eq!(content_disposition("image/png", None), "inline");
        assert_eq!(content_disposition("IMAGE/PNG; x=y", Some("a.png")), "inline; filename=a.png");
        assert_eq!(content_disposition("text/plain; charset=UTF-8", Some("a.txt")), "inline; filename=a.txt");
        assert_eq!(content_disposition("text/html", Some("a.html")), "attachment; filename=a.html");
        assert_eq!(content_disposition("image/svg+xml", None), "attachment");
        assert_eq!(content_disposition("application/octet-stream", Some("")), "attachment");
    }

    #[test]
    fn other_file_names_are_rfc_5987() {
        assert_eq!(content_disposition("image/png", Some("my cat.png")), "inline; filename*=utf-8''my%20cat.png");
        assert_eq!(
            content_disposition("text/html", Some("ünï\"c;ode")),
            "attachment; filename*=utf-8''%C3%BCn%C3%AF%22c%3Bode"
        );
    }
}
