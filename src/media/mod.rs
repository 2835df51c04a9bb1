//! The content repository's pure logic, natively tested: media IDs, the headers a download
//! carries, `Range` requests and thumbnails (made in Wasm by `decode`, or by the Images binding in
//! `images`). The handlers are in `client/media.rs`.

#[cfg(feature = "wasm-thumbnails")]
pub mod decode;
pub mod headers;
pub mod images;
pub mod range;
pub mod thumbnail;

/// A media ID as the spec allows it: `A-Za-z0-9`, `_` and `-`, which also makes it a safe R2 key.
pub fn is_valid_media_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// An `mxc://<server-name>/<media-id>` URI whose parts the spec allows.
pub fn is_valid_mxc(uri: &str) -> bool {
    let Some((server, media_id)) = uri.strip_prefix("mxc://").and_then(|rest| rest.split_once('/')) else {
        return false;
    };
    ruma_common::ServerName::parse(server).is_ok() && is_valid_media_id(media_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_ids() {
        assert!(is_valid_media_id("aZ09_-"));
        for bad in ["", "a/b", "..", "a.b", "é", "a%2F"] {
            assert!(!is_valid_media_id(bad), "{bad}");
        }
        assert!(is_valid_mxc("mxc://example.org:8448/SEmcoOoiRaMhMaOJGkQzwQ"));
        for bad in ["mxc://a", "mxc://a/", "mxc:///b", "mxc://a b/c", "mxc://a/b/c", "https://a/b", "mxc://a/.."] {
            assert!(!is_valid_mxc(bad), "{bad}");
        }
    }
}
