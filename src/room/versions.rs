//! The room versions this server creates and joins: every stable one, 1 to 12, with 12 the
//! default, as Synapse. Their rules (event formats, authorization, redaction) come from ruma.

use ruma_common::room_version_rules::RoomVersionRules;
use ruma_common::RoomVersionId;

use crate::error::{ErrorKind, MatrixError, Result};

pub const DEFAULT: &str = "12";
pub const SUPPORTED: &[&str] = &["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"];

/// A supported room version with its rules.
#[derive(Debug, Clone)]
pub struct RoomVersion {
    pub id: RoomVersionId,
    pub rules: RoomVersionRules,
}

impl RoomVersion {
    pub fn parse(version: &str) -> Result<Self> {
        let unsupported = || {
            MatrixError::new(ErrorKind::UnsupportedRoomVersion, format!("Room version {version:?} is not supported"))
        };
        if !SUPPORTED.contains(&version) {
            return Err(unsupported().into());
        }
        let id = RoomVersionId::try_from(version).map_err(|_| unsupported())?;
        let rules = id.rules().ok_or_else(unsupported)?;
        Ok(Self { id, rules })
    }

    /// Whether the room ID is the create event's reference hash (v12 and later).
    pub fn room_id_from_create_event(&self) -> bool {
        self.rules.authorization.room_create_event_id_as_room_id
    }

    /// Whether `redacts` lives in the content of a redaction (v11 and later).
    pub fn redacts_in_content(&self) -> bool {
        self.rules.redaction.content_field_redacts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_versions_only() {
        for v in SUPPORTED {
            assert!(RoomVersion::parse(v).is_ok(), "{v}");
        }
        for v in ["0", "13", "", "12 ", "org.example.custom"] {
            let e = RoomVersion::parse(v).unwrap_err();
            assert_eq!(e.matrix().unwrap().kind, ErrorKind::UnsupportedRoomVersion, "{v}");
        }
        assert!(RoomVersion::parse("12").unwrap().room_id_from_create_event());
        assert!(!RoomVersion::parse("11").unwrap().room_id_from_create_event());
        assert!(RoomVersion::parse("11").unwrap().redacts_in_content());
        assert!(!RoomVersion::parse("10").unwrap().redacts_in_content());
    }
}
