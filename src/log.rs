//! Server-side logging: the Workers console under Wasm, standard error natively.

#[cfg(target_arch = "wasm32")]
pub fn error(message: &str) {
    worker::console_error!("{message}");
}

#[cfg(not(target_arch = "wasm32"))]
pub fn error(message: &str) {
    eprintln!("{message}");
}
