//! Thumbnails made by Cloudflare's Images binding (`IMAGES`, `[images]` in wrangler.toml): the
//! Worker hands the R2 stream over and gets the thumbnail back, and the decoding and encoding run
//! outside its CPU budget (<https://developers.cloudflare.com/images/transform-images/bindings/>).
//!
//! The binding's `info` gives the source's size, so the decisions are the same as in Wasm
//! ([`plan`]): too many pixels is refused, an image that fits is served as it is, and the exact
//! target is asked for. `fit: "cover"` fills that target and cuts the overflow, which for a target
//! no larger than the source is our `crop`; for `scale` the target already has the source's aspect
//! ratio, so `scale-down` gives it. Locally, wrangler emulates the binding with Sharp and honours
//! only `width` and `height` (letterboxing to both), so `crop` comes out the right size there but
//! padded rather than cut: the local dev default stays the Wasm path (README, "Thumbnails").

use js_sys::{Object, Promise, Reflect};
use serde::Deserialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use worker::web_sys::ReadableStream;
use worker::Env;

use super::thumbnail::{output_type, plan, Failure, Method, Outcome, Size, Thumbnail};

/// The binding's name in wrangler.toml.
pub const BINDING: &str = "IMAGES";

#[wasm_bindgen]
extern "C" {
    type ImagesBinding;
    #[wasm_bindgen(method, catch)]
    fn info(this: &ImagesBinding, stream: &ReadableStream) -> Result<Promise, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn input(this: &ImagesBinding, stream: &ReadableStream) -> Result<ImageTransformer, JsValue>;

    type ImageTransformer;
    #[wasm_bindgen(method, catch)]
    fn transform(this: &ImageTransformer, options: &JsValue) -> Result<ImageTransformer, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn output(this: &ImageTransformer, options: &JsValue) -> Result<Promise, JsValue>;

    type TransformationResult;
    #[wasm_bindgen(method)]
    fn response(this: &TransformationResult) -> worker::web_sys::Response;
}

/// What `info` says of a bitmap image.
#[derive(Deserialize)]
struct Info {
    width: u32,
    height: u32,
}

/// Whether the Worker has the binding.
pub fn is_bound(env: &Env) -> bool {
    Reflect::get(env.as_ref(), &BINDING.into()).is_ok_and(|b| !b.is_undefined())
}

/// Makes the thumbnail of the image streamed by `source` (of type `source_type`) in `size`.
pub async fn make(
    env: &Env,
    source: ReadableStream,
    source_type: &str,
    size: Size,
    max_pixels: u64,
) -> Result<Outcome, Failure> {
    let binding: ImagesBinding = Reflect::get(env.as_ref(), &BINDING.into()).map_err(failed)?.unchecked_into();
    // One stream for `info`, one for the transform: `tee` buffers only what one reads ahead.
    let tee: js_sys::Function = Reflect::get(&source, &"tee".into()).map_err(failed)?.unchecked_into();
    let branches: js_sys::Array = tee.call0(&source).map_err(failed)?.unchecked_into();
    let (for_info, for_transform): (ReadableStream, ReadableStream) =
        (branches.get(0).unchecked_into(), branches.get(1).unchecked_into());
    let info = JsFuture::from(binding.info(&for_info).map_err(failed)?).await.map_err(failed)?;
    let info = parse_info(&info)?;
    let Some((width, height)) = plan((info.width, info.height), size, max_pixels)? else {
        let _ = for_transform.cancel();
        return Ok(Outcome::Original);
    };
    let fit = match size.method {
        Method::Crop => "cover",
        Method::Scale => "scale-down",
    };
    let options = Object::new();
    // `anim: false`: a GIF's first frame, as in Wasm (`animated=true` only asks "if possible").
    let settings =
        [("width", JsValue::from(width)), ("height", height.into()), ("fit", fit.into()), ("anim", false.into())];
    for (key, value) in settings {
        Reflect::set(&options, &key.into(), &value).map_err(failed)?;
    }
    let content_type = output_type(source_type);
    let output = Object::new();
    Reflect::set(&output, &"format".into(), &content_type.into()).map_err(failed)?;
    let transformer = binding.input(&for_transform).map_err(failed)?.transform(&options).map_err(failed)?;
    let result: TransformationResult =
        JsFuture::from(transformer.output(&output).map_err(failed)?).await.map_err(failed)?.unchecked_into();
    let mut response = worker::Response::from(result.response());
    let bytes = response.bytes().await.map_err(|e| Failure::Undecodable(e.to_string()))?;
    Ok(Outcome::Made(Thumbnail { bytes, content_type }))
}

fn parse_info(value: &JsValue) -> Result<Info, Failure> {
    let json = js_sys::JSON::stringify(value).map_err(failed)?;
    serde_json::from_str(&String::from(json)).map_err(|e| Failure::Undecodable(format!("image info: {e}")))
}

/// The binding's errors (a bad image, an unsupported format) as a thumbnail failure.
fn failed(e: JsValue) -> Failure {
    let message = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    Failure::Undecodable(message)
}
