//! Push notifications: each user's push rules, their evaluation against new room events, and
//! what a notification carries to the user's push queue and on to push gateways.

pub mod evaluate;
pub mod fanout;
pub mod gateway;
pub mod notification;
pub mod rules;
