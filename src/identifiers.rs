//! Local user IDs: the spec's localpart grammar, the names we reserve, and the identifier objects
//! that login and user-interactive auth accept.

use ruma_common::{OwnedUserId, ServerName, UserId};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, ErrorKind, MatrixError};

/// The longest user ID the spec allows, in bytes, sigil and server name included.
const MAX_USER_ID_BYTES: usize = 255;

fn invalid_username(message: impl Into<String>) -> Error {
    MatrixError::new(ErrorKind::InvalidUsername, message.into()).into()
}

/// Checks a localpart that a user asks to register, and returns the full user ID.
///
/// Beyond the spec's grammar (`a-z 0-9 . _ = - / +`), as Synapse does, a leading `_` is kept for
/// application services and all-digit names for guests.
pub fn user_id_for_registration(localpart: &str, server_name: &ServerName) -> Result<OwnedUserId, Error> {
    check_localpart_chars(localpart)?;
    if localpart.starts_with('_') {
        return Err(invalid_username("User ID may not begin with _"));
    }
    if localpart.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid_username("Numeric user IDs are reserved for guest users"));
    }
    local_user_id(localpart, server_name)
}

/// An application service's user: the reserved forms (a leading `_`, all digits) are its to use.
pub fn user_id_for_appservice(localpart: &str, server_name: &ServerName) -> Result<OwnedUserId, Error> {
    check_localpart_chars(localpart)?;
    local_user_id(localpart, server_name)
}

fn check_localpart_chars(localpart: &str) -> Result<(), Error> {
    if localpart.is_empty() {
        return Err(invalid_username("User ID cannot be empty"));
    }
    if let Some(c) = localpart.chars().find(|&c| !is_localpart_char(c)) {
        return Err(invalid_username(format!(
            "User ID can only contain the characters a-z, 0-9, or '._=-/+', not {c:?}"
        )));
    }
    Ok(())
}

/// The user ID `@localpart:server_name`, if it is valid and short enough.
pub fn local_user_id(localpart: &str, server_name: &ServerName) -> Result<OwnedUserId, Error> {
    let full = format!("@{localpart}:{server_name}");
    if full.len() > MAX_USER_ID_BYTES {
        return Err(invalid_username(format!("User ID may not be longer than {MAX_USER_ID_BYTES} bytes")));
    }
    UserId::parse(full).map_err(|e| invalid_username(format!("Invalid user ID: {e}")))
}

fn is_localpart_char(c: char) -> bool {
    matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '=' | '-' | '/' | '+')
}

/// A user named in a login or an auth stage: an `m.id.user` identifier, or the deprecated
/// top-level `user`. Returns the local user it names, or `None` for a user of another server.
pub fn resolve_login_user(
    identifier: Option<&Value>,
    legacy_user: Option<&Value>,
    server_name: &ServerName,
) -> Result<Option<OwnedUserId>, Error> {
    #[derive(Deserialize)]
    struct Identifier {
        #[serde(rename = "type")]
        kind: String,
        user: Option<String>,
    }
    let user = match (identifier, legacy_user) {
        (Some(identifier), _) => {
            let identifier = Identifier::deserialize(identifier)
                .map_err(|e| MatrixError::new(ErrorKind::BadJson, format!("Invalid identifier: {e}")))?;
            if identifier.kind != "m.id.user" {
                return Err(MatrixError::new(ErrorKind::Unknown, "Unknown login identifier type").into());
            }
            identifier.user.ok_or_else(|| MatrixError::new(ErrorKind::MissingParam, "identifier.user is required"))?
        }
        (None, Some(Value::String(user))) => user.clone(),
        (None, Some(_)) => return Err(MatrixError::new(ErrorKind::BadJson, "user must be a string").into()),
        (None, None) => return Err(MatrixError::new(ErrorKind::MissingParam, "identifier is required").into()),
    };
    // Localparts are registered in lower case, so log-ins match without regard to case.
    let (localpart, server) = match user.strip_prefix('@') {
        Some(rest) => match rest.split_once(':') {
            Some((localpart, server)) => (localpart.to_lowercase(), Some(server)),
            None => return Err(MatrixError::new(ErrorKind::InvalidParam, "Invalid user ID").into()),
        },
        None => (user.to_lowercase(), None),
    };
    if server.is_some_and(|s| s != server_name.as_str()) {
        return Ok(None);
    }
    Ok(local_user_id(&localpart, server_name).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn server() -> &'static ServerName {
        <&ServerName>::try_from("example.org").unwrap()
    }

    fn register(localpart: &str) -> Result<String, &'static str> {
        user_id_for_registration(localpart, server())
            .map(|u| u.to_string())
            .map_err(|e| e.matrix().unwrap().kind.errcode_and_status().0)
    }

    #[test]
    fn registration_localparts() {
        assert_eq!(register("alice").unwrap(), "@alice:example.org");
        assert_eq!(register("a.b_c=d-e/f+g9").unwrap(), "@a.b_c=d-e/f+g9:example.org");
        for bad in ["", "Alice", "al ice", "al:ice", "al@ice", "ålice", "_bridge", "12345", "a\u{0}b"] {
            assert_eq!(register(bad), Err("M_INVALID_USERNAME"), "{bad:?}");
        }
        // The whole ID may be 255 bytes: "@" + localpart + ":example.org".
        let longest = "a".repeat(255 - 1 - 1 - "example.org".len());
        assert!(register(&longest).is_ok());
        assert_eq!(register(&format!("{longest}a")), Err("M_INVALID_USERNAME"));
    }

    fn resolve(identifier: Option<Value>, user: Option<Value>) -> Result<Option<String>, &'static str> {
        resolve_login_user(identifier.as_ref(), user.as_ref(), server())
            .map(|u| u.map(|u| u.to_string()))
            .map_err(|e| e.matrix().unwrap().kind.errcode_and_status().0)
    }

    #[test]
    fn login_identifiers() {
        let want = Ok(Some("@alice:example.org".to_owned()));
        assert_eq!(resolve(Some(json!({"type": "m.id.user", "user": "alice"})), None), want);
        assert_eq!(resolve(Some(json!({"type": "m.id.user", "user": "@Alice:example.org"})), None), want);
        assert_eq!(resolve(None, Some(json!("alice"))), want);
        assert_eq!(resolve(Some(json!({"type": "m.id.user", "user": "@alice:other.org"})), None), Ok(None));
        // A name no one can register still resolves; the lookup then finds no such user.
        assert_eq!(
            resolve(Some(json!({"type": "m.id.user", "user": "Odd Name"})), None),
            Ok(Some("@odd name:example.org".into()))
        );
        assert_eq!(resolve(Some(json!({"type": "m.id.thirdparty", "medium": "email"})), None), Err("M_UNKNOWN"));
        assert_eq!(resolve(Some(json!({"type": "m.id.user"})), None), Err("M_MISSING_PARAM"));
        assert_eq!(resolve(Some(json!({"type": 5})), None), Err("M_BAD_JSON"));
        assert_eq!(resolve(None, Some(json!(5))), Err("M_BAD_JSON"));
        assert_eq!(resolve(None, None), Err("M_MISSING_PARAM"));
        assert_eq!(resolve(Some(json!({"type": "m.id.user", "user": "@nocolon"})), None), Err("M_INVALID_PARAM"));
    }
}
