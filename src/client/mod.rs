//! Client-Server API handlers, one file per group of the spec, one function per endpoint.

pub mod account;
pub mod device;
pub mod discovery;
pub mod profile;
pub mod register;
pub mod session;
