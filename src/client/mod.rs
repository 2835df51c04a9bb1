//! Client-Server API handlers, one file per group of the spec, one function per endpoint.

pub mod account;
pub mod account_data;
pub mod alias;
pub mod create_room;
pub mod device;
pub mod directory;
pub mod discovery;
pub mod filter;
pub mod membership;
pub mod message;
pub mod presence;
pub mod profile;
pub mod receipts;
pub mod register;
pub mod relations;
pub mod room_access;
pub mod room_read;
pub mod room_send;
pub mod rooms;
pub mod sent_members;
pub mod session;
pub mod sync;
pub mod tags;
pub mod to_device;
pub mod typing;
pub mod upgrade;
