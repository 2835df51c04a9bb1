//! What the room's writer hands to a user's push queue for each event that notifies the user:
//! everything a push gateway's full format needs except the counts and the devices, which the
//! queue adds when it sends.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One event that notifies one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventNotification {
    pub event_id: String,
    pub room_id: String,
    /// The event's stream position: a user's notifications are delivered in its order.
    pub event_stream: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub sender: String,
    /// The sender's display name in the room, if it has one.
    pub sender_display_name: Option<String>,
    pub room_name: Option<String>,
    /// The room's canonical alias, if it has one.
    pub room_alias: Option<String>,
    /// Whether the user is the `state_key` of this member event.
    pub user_is_target: bool,
    /// For a member event: its `membership`.
    pub membership: Option<String>,
    pub content: Value,
    /// `high` or `low`, as Synapse decides it: high for encrypted events and for events that
    /// highlight or make a sound.
    pub prio: String,
    /// The `set_tweak` actions of the rule that matched, as `{tweak: value}`.
    pub tweaks: Map<String, Value>,
}
