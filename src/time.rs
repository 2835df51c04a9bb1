//! Wall-clock time in milliseconds since the Unix epoch, the unit of every timestamp we store.

#[cfg(target_arch = "wasm32")]
pub fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

#[cfg(not(target_arch = "wasm32"))]
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
