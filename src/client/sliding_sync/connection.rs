//! What a sliding sync connection was sent, so that later responses carry only changes (as
//! Synapse's `SlidingSyncConnectionStore`). Stored per position in D1
//! ([`crate::storage::sliding_sync_positions`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{internal, ErrorKind, MatrixError, Result};

/// What one room was last sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRoom {
    /// The client has the room's timeline and state up to this stream position.
    pub at: u64,
    /// The user's membership it was sent with: when it changes, the room starts over.
    pub membership: String,
    /// The digest of the `required_state` it was sent with: when it changes, the state is sent
    /// again.
    pub required_state: u64,
    /// How much of the timeline the client has: the `timeline_limit` it was last sent with, or
    /// the larger one before when nothing since left a gap. A larger limit sends the room again
    /// with that many events (an expanded timeline). Positions stored without it expand nothing.
    #[serde(default = "no_expansion")]
    pub timeline_limit: u64,
}

fn no_expansion() -> u64 {
    u64::MAX
}

/// A connection's memory at one position.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnState {
    #[serde(default)]
    pub rooms: BTreeMap<String, SentRoom>,
    /// A digest of the lists' counts and windows last sent: a change is news worth answering.
    #[serde(default)]
    pub lists: u64,
}

impl ConnState {
    pub fn from_json(json: &str) -> Result<ConnState> {
        serde_json::from_str(json).map_err(|e| internal("sliding sync connection", e))
    }

    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| internal("sliding sync connection", e))
    }
}

/// A `pos` this server no longer has, or never handed out.
pub fn unknown_pos() -> crate::error::Error {
    MatrixError::new(ErrorKind::UnknownPos, "Unknown position: start a new sliding sync").into()
}

/// The connection position a `pos` names.
pub fn parse_pos(raw: &str) -> Result<u64> {
    if raw.is_empty() || raw.len() > 15 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unknown_pos());
    }
    raw.parse().map_err(|_| unknown_pos())
}

/// A digest (FNV-1a) of the lists' JSON answers, which are deterministic (`serde_json::Map`).
pub fn lists_digest(lists: &serde_json::Map<String, serde_json::Value>) -> u64 {
    let text = serde_json::Value::Object(lists.clone()).to_string();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash & ((1 << 53) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_or_are_unknown() {
        assert_eq!(parse_pos("42").unwrap(), 42);
        for bad in ["", "x", "-1", "1/2", "9999999999999999"] {
            let err = parse_pos(bad).unwrap_err();
            assert_eq!(err.matrix().unwrap().kind, ErrorKind::UnknownPos, "{bad}");
        }
    }

    #[test]
    fn state_round_trips() {
        let mut state = ConnState::default();
        let room = SentRoom { at: 5, membership: "join".into(), required_state: 9, timeline_limit: 10 };
        state.rooms.insert("!r:hs".into(), room);
        state.lists = 3;
        assert_eq!(ConnState::from_json(&state.to_json().unwrap()).unwrap(), state);
        assert_eq!(ConnState::from_json("{}").unwrap(), ConnState::default());
        let older = r#"{"rooms": {"!r:hs": {"at": 5, "membership": "join", "required_state": 9}}}"#;
        assert_eq!(ConnState::from_json(older).unwrap().rooms["!r:hs"].timeline_limit, u64::MAX);
    }
}
