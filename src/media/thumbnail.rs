//! Thumbnails: which size a request gets and what it becomes. A request is answered with one of
//! the sizes the spec and Synapse pre-generate, the smallest that is at least as large as asked,
//! so that each image has at most five thumbnails, each made once and kept in R2. Two makers share
//! these decisions: `decode` (the `image` crate, in Wasm) and `images` (Cloudflare's Images
//! binding).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Scale,
    Crop,
}

impl Method {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "scale" => Some(Self::Scale),
            "crop" => Some(Self::Crop),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scale => "scale",
            Self::Crop => "crop",
        }
    }
}

/// One of the thumbnail sizes: a box and how the image is fitted to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub width: u32,
    pub height: u32,
    pub method: Method,
}

impl Size {
    /// The R2 key of this thumbnail of a media ID, beside the original.
    pub fn key(&self, media_id: &str) -> String {
        format!("{media_id}/thumbnail/{}x{}-{}", self.width, self.height, self.method.as_str())
    }
}

/// The spec's (and Synapse's default) thumbnail sizes.
pub const SIZES: [Size; 5] = [
    Size { width: 32, height: 32, method: Method::Crop },
    Size { width: 96, height: 96, method: Method::Crop },
    Size { width: 320, height: 240, method: Method::Scale },
    Size { width: 640, height: 480, method: Method::Scale },
    Size { width: 800, height: 600, method: Method::Scale },
];

/// Types we make thumbnails of.
pub const SOURCE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

/// The largest source we ever decode: Synapse's `max_image_pixels` is 32M, but a decoded image
/// must fit the isolate's 128 MB beside everything else. `MAX_THUMBNAIL_PIXELS` may lower it.
pub const MAX_PIXELS: u64 = 16_000_000;

/// The smallest size of the method that is at least `width`×`height`; `None` when none is, and
/// only the original is large enough.
pub fn select(width: u32, height: u32, method: Method) -> Option<Size> {
    SIZES.iter().copied().find(|s| s.method == method && s.width >= width && s.height >= height)
}

/// The dimensions of the thumbnail of a `source` image in `size`, or `None` when the source fits
/// the box as it is: then the original is served, as the spec says, and nothing is upscaled.
/// `scale` fits the image inside the box keeping its aspect ratio; `crop` fills the box and
/// cuts what overflows, and a source too small to fill it keeps its own size on that side.
pub fn dimensions(source: (u32, u32), size: Size) -> Option<(u32, u32)> {
    let (sw, sh) = (source.0.max(1) as u64, source.1.max(1) as u64);
    let (bw, bh) = (size.width as u64, size.height as u64);
    if sw <= bw && sh <= bh {
        return None;
    }
    let dims = match size.method {
        // Scale by the tighter side: sw/sh * h <= bw exactly when sw * bh <= bw * sh.
        Method::Scale if sw * bh <= bw * sh => ((sw * bh).div_ceil(sh).min(bw).max(1), bh),
        Method::Scale => (bw, (sh * bw).div_ceil(sw).min(bh).max(1)),
        Method::Crop => (bw.min(sw), bh.min(sh)),
    };
    Some((dims.0 as u32, dims.1 as u32))
}

/// A made thumbnail.
#[derive(Debug)]
pub struct Thumbnail {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// More pixels than [`MAX_PIXELS`].
    TooLarge,
    /// Not an image of a format we read, or a broken one.
    Undecodable(String),
}

/// What a source becomes in `size`.
#[derive(Debug)]
pub enum Outcome {
    /// The source fits the box: serve it as it is.
    Original,
    Made(Thumbnail),
}

/// What a `source`-sized image becomes in `size`: `None` when it fits as it is (the original is
/// served), else the thumbnail's dimensions. Sources of more than `max_pixels` (itself at most
/// [`MAX_PIXELS`]) are refused before anything is decoded.
pub fn plan(source: (u32, u32), size: Size, max_pixels: u64) -> Result<Option<(u32, u32)>, Failure> {
    if source.0 as u64 * source.1 as u64 > max_pixels.min(MAX_PIXELS) {
        return Err(Failure::TooLarge);
    }
    Ok(dimensions(source, size))
}

/// The type a thumbnail of `source_type` is encoded in: JPEG stays JPEG, all else becomes PNG,
/// which keeps transparency.
pub fn output_type(source_type: &str) -> &'static str {
    match source_type {
        "image/jpeg" => "image/jpeg",
        _ => "image/png",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(width: u32, height: u32, method: Method) -> Size {
        Size { width, height, method }
    }

    #[test]
    fn selection_takes_the_smallest_size_large_enough() {
        assert_eq!(select(32, 32, Method::Crop), Some(size(32, 32, Method::Crop)));
        assert_eq!(select(33, 20, Method::Crop), Some(size(96, 96, Method::Crop)));
        assert_eq!(select(100, 100, Method::Crop), None);
        assert_eq!(select(1, 1, Method::Scale), Some(size(320, 240, Method::Scale)));
        assert_eq!(select(320, 241, Method::Scale), Some(size(640, 480, Method::Scale)));
        assert_eq!(select(800, 600, Method::Scale), Some(size(800, 600, Method::Scale)));
        assert_eq!(select(801, 600, Method::Scale), None);
    }

    #[test]
    fn dimensions_never_upscale() {
        let box_ = size(320, 240, Method::Scale);
        assert_eq!(dimensions((1000, 500), box_), Some((320, 160)));
        assert_eq!(dimensions((500, 1000), box_), Some((120, 240)));
        assert_eq!(dimensions((640, 480), box_), Some((320, 240)));
        assert_eq!(dimensions((300, 200), box_), None);
        assert_eq!(dimensions((400, 100), box_), Some((320, 80)));
        assert_eq!(dimensions((10_000, 1), box_), Some((320, 1)));
        let crop = size(96, 96, Method::Crop);
        assert_eq!(dimensions((1000, 500), crop), Some((96, 96)));
        assert_eq!(dimensions((50, 500), crop), Some((50, 96)));
        assert_eq!(dimensions((96, 96), crop), None);
    }

    #[test]
    fn plans_refuse_large_sources_and_keep_small_ones() {
        let crop = size(32, 32, Method::Crop);
        assert_eq!(plan((400, 200), crop, 79_999), Err(Failure::TooLarge));
        assert_eq!(plan((400, 200), crop, 80_000), Ok(Some((32, 32))));
        assert_eq!(plan((20, 20), crop, MAX_PIXELS), Ok(None));
        assert_eq!(plan((5000, 4000), crop, u64::MAX), Err(Failure::TooLarge));
        assert_eq!(output_type("image/jpeg"), "image/jpeg");
        assert_eq!(output_type("image/gif"), "image/png");
    }
}
