//! Thumbnails made in Wasm by the `image` crate (feature `wasm-thumbnails`): decode the first
//! frame, fit it, encode it. Nearly all of the CPU is decoding: see README, "Thumbnails".

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use super::thumbnail::{plan, Failure, Method, Outcome, Size, Thumbnail, MAX_PIXELS};

/// The largest source file we read into memory to decode.
pub const MAX_SOURCE_BYTES: u64 = 20 << 20;

/// Decodes the first frame of `source`, fits it to `size` and encodes it: JPEG stays JPEG, all
/// else becomes PNG (which keeps transparency). Sources of more than `max_pixels` (itself at most
/// [`MAX_PIXELS`]) are refused before they are decoded.
pub fn make(source: &[u8], size: Size, max_pixels: u64) -> Result<Outcome, Failure> {
    let undecodable = |e: image::ImageError| Failure::Undecodable(e.to_string());
    let reader = || ImageReader::new(Cursor::new(source)).with_guessed_format();
    let reader = reader().map_err(|e| Failure::Undecodable(e.to_string()))?;
    let format = reader.format();
    if !matches!(format, Some(ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP)) {
        return Err(Failure::Undecodable("not a PNG, JPEG, GIF or WebP image".to_owned()));
    }
    let source_size = reader.into_dimensions().map_err(undecodable)?;
    let Some((tw, th)) = plan(source_size, size, max_pixels)? else { return Ok(Outcome::Original) };
    let mut reader =
        ImageReader::new(Cursor::new(source)).with_guessed_format().map_err(|e| Failure::Undecodable(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 4 + (16 << 20));
    reader.limits(limits);
    let image = reader.decode().map_err(undecodable)?;
    let image = fit(image, (tw, th), size.method);
    let mut bytes = Vec::new();
    let content_type = if format == Some(ImageFormat::Jpeg) {
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 80);
        DynamicImage::ImageRgb8(image.to_rgb8()).write_with_encoder(encoder).map_err(undecodable)?;
        "image/jpeg"
    } else {
        let encoder = image::codecs::png::PngEncoder::new_with_quality(
            &mut bytes,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::Adaptive,
        );
        image.write_with_encoder(encoder).map_err(undecodable)?;
        "image/png"
    };
    Ok(Outcome::Made(Thumbnail { bytes, content_type }))
}

/// Resizes to `target`; for `crop`, first cuts the source to the target's aspect ratio, centred.
fn fit(image: DynamicImage, target: (u32, u32), method: Method) -> DynamicImage {
    let (sw, sh) = (image.width() as u64, image.height() as u64);
    let (tw, th) = (target.0 as u64, target.1 as u64);
    let image = match method {
        Method::Scale => image,
        Method::Crop => {
            // The largest region of the target's aspect ratio, centred.
            let (cw, ch) = if sw * th > tw * sh {
                ((tw * sh).div_ceil(th).min(sw), sh)
            } else {
                (sw, (th * sw).div_ceil(tw).min(sh))
            };
            image.crop_imm(((sw - cw) / 2) as u32, ((sh - ch) / 2) as u32, cw as u32, ch as u32)
        }
    };
    if (image.width(), image.height()) == target {
        return image;
    }
    // An area average in integer arithmetic: a fraction of the CPU of a filtered resize, and
    // as good when shrinking by more than about two.
    image.thumbnail_exact(target.0, target.1)
}

#[cfg(test)]
mod tests {
    use super::super::thumbnail::SIZES;
    use super::*;

    fn size(width: u32, height: u32, method: Method) -> Size {
        Size { width, height, method }
    }

    fn encode(format: ImageFormat, w: u32, h: u32) -> Vec<u8> {
        let image = DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7])));
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn each_source_format_is_thumbnailed() {
        for (format, output) in [
            (ImageFormat::Png, "image/png"),
            (ImageFormat::Jpeg, "image/jpeg"),
            (ImageFormat::Gif, "image/png"),
            (ImageFormat::WebP, "image/png"),
        ] {
            let source = encode(format, 400, 200);
            let made = |size| match make(&source, size, MAX_PIXELS).unwrap() {
                Outcome::Made(t) => {
                    let decoded = image::load_from_memory(&t.bytes).unwrap();
                    (decoded.width(), decoded.height(), t.content_type)
                }
                Outcome::Original => panic!("{format:?} {size:?}"),
            };
            assert_eq!(made(size(320, 240, Method::Scale)), (320, 160, output), "{format:?}");
            assert_eq!(made(size(32, 32, Method::Crop)), (32, 32, output), "{format:?}");
            assert!(matches!(make(&source, size(800, 600, Method::Scale), MAX_PIXELS), Ok(Outcome::Original)));
        }
        assert!(matches!(make(b"not an image", SIZES[0], MAX_PIXELS), Err(Failure::Undecodable(_))));
        let source = encode(ImageFormat::Png, 400, 200);
        assert_eq!(make(&source, SIZES[0], 79_999).unwrap_err(), Failure::TooLarge);
        assert!(make(&source, SIZES[0], 80_000).is_ok());
    }

    /// CPU time of this thread so far, in ms: immune to other load on the machine.
    fn cpu_ms() -> f64 {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
        stat.split_whitespace().next().unwrap().parse::<f64>().unwrap() / 1e6
    }

    /// The native CPU cost of one thumbnail from photo-like sources; run by `npm run bench`
    /// (release build). Wasm in V8 takes about 1.5 to 2 times as long.
    #[test]
    #[ignore]
    fn thumbnail_cost() {
        let mut seed = 1u32;
        for (w, h) in [(320, 240), (640, 480), (1600, 1200), (4000, 3000)] {
            let photo = DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let noise = (seed >> 24) as u8 / 8;
                image::Rgb([(x * 255 / w) as u8 + noise, (y * 255 / h) as u8 + noise, ((x + y) % 256) as u8])
            }));
            for format in [ImageFormat::Jpeg, ImageFormat::Png] {
                let mut source = Cursor::new(Vec::new());
                photo.write_to(&mut source, format).unwrap();
                let source = source.into_inner();
                for size in [SIZES[1], SIZES[4]] {
                    let start = cpu_ms();
                    make(&source, size, MAX_PIXELS).unwrap();
                    println!(
                        "thumbnail {}x{} {} of a {w}x{h} {format:?} ({} KiB), native: {:.1} ms CPU",
                        size.width,
                        size.height,
                        size.method.as_str(),
                        source.len() / 1024,
                        cpu_ms() - start
                    );
                }
            }
        }
    }
}
