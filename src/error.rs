//! The one error type of the server and its table from `errcode` to HTTP status.
//!
//! Every failure a client can see is a [`MatrixError`]: a kind (which fixes the errcode and the
//! status), a human-readable message and, for a few kinds, extra body fields. User-interactive
//! auth answers with its own 401 body, so [`Error`] carries that as a second case.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::uia::UiaChallenge;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kinds of error the server returns. Each maps to exactly one errcode and one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// An `m.room.canonical_alias` naming an alias that does not point to the room.
    BadAlias,
    BadJson,
    /// An async upload's media ID whose bytes were already uploaded (409).
    CannotOverwriteMedia,
    /// An application service's ping found the service failing (502).
    BadStatus {
        status: u16,
    },
    ConnectionFailed,
    ConnectionTimeout,
    /// A resource that already exists, where the spec answers 409 (a taken room alias).
    Conflict,
    /// A user, alias or device reserved for an application service.
    Exclusive,
    Forbidden,
    GuestAccessForbidden,
    InvalidParam,
    InvalidRoomState,
    /// A signature that does not verify, or is missing where one is required.
    InvalidSignature,
    InvalidUsername,
    KeyTooLarge,
    LimitExceeded {
        retry_after_ms: u64,
    },
    /// A known path asked for with a method it does not serve.
    MethodNotAllowed,
    MissingParam,
    MissingToken,
    NotFound,
    NotJson,
    /// Media created with `/create` whose bytes did not arrive in time (504).
    NotYetUploaded,
    /// Account data the server manages, which clients may not set (405).
    NotSettable,
    ProfileTooLarge,
    /// The server is full (monthly active users) or disabled.
    ResourceLimitExceeded {
        limit_type: LimitType,
    },
    RoomInUse,
    TooLarge,
    /// A malformed request that no more specific code describes.
    Unknown,
    UnknownToken {
        soft_logout: bool,
    },
    /// A sliding sync `pos` this server no longer knows (MSC4186): the client starts over.
    UnknownPos,
    UnsupportedRoomVersion,
    /// An application service without a URL was pinged.
    UrlNotSet,
    /// A credential that does not authorise the request, such as a spent registration token.
    Unauthorized,
    /// An endpoint this server does not have.
    Unrecognized,
    /// A path value a known endpoint does not know, such as a push rule scope (400, as Synapse).
    UnrecognizedParam,
    UserDeactivated,
    UserInUse,
    /// A key backup write to a backup version that is not the current one.
    WrongRoomKeysVersion {
        current_version: u64,
    },
    /// A fault of the server itself; the message never leaks storage details.
    Internal,
}

impl ErrorKind {
    /// Every kind, with placeholder values for the fields some carry.
    pub const ALL: &'static [ErrorKind] = {
        use ErrorKind::*;
        &[
            BadAlias,
            BadJson,
            CannotOverwriteMedia,
            BadStatus { status: 0 },
            ConnectionFailed,
            ConnectionTimeout,
            Conflict,
            Exclusive,
            Forbidden,
            GuestAccessForbidden,
            InvalidParam,
            InvalidRoomState,
            InvalidSignature,
            InvalidUsername,
            KeyTooLarge,
            LimitExceeded { retry_after_ms: 0 },
            MethodNotAllowed,
            MissingParam,
            MissingToken,
            NotFound,
            NotJson,
            NotYetUploaded,
            NotSettable,
            ProfileTooLarge,
            ResourceLimitExceeded { limit_type: LimitType::MonthlyActiveUser },
            RoomInUse,
            TooLarge,
            Unknown,
            UnknownToken { soft_logout: false },
            UnknownPos,
            UnsupportedRoomVersion,
            UrlNotSet,
            Unauthorized,
            Unrecognized,
            UnrecognizedParam,
            UserDeactivated,
            UserInUse,
            WrongRoomKeysVersion { current_version: 0 },
            Internal,
        ]
    };

    /// The kind behind an errcode and status, as one of our Durable Objects sent them.
    pub fn from_wire(errcode: &str, status: u16) -> ErrorKind {
        Self::ALL.iter().copied().find(|k| k.errcode_and_status() == (errcode, status)).unwrap_or(ErrorKind::Internal)
    }

    /// The table: errcode and HTTP status for each kind.
    pub fn errcode_and_status(self) -> (&'static str, u16) {
        use ErrorKind::*;
        match self {
            BadAlias => ("M_BAD_ALIAS", 400),
            BadJson => ("M_BAD_JSON", 400),
            BadStatus { .. } => ("M_BAD_STATUS", 502),
            CannotOverwriteMedia => ("M_CANNOT_OVERWRITE_MEDIA", 409),
            ConnectionFailed => ("M_CONNECTION_FAILED", 502),
            ConnectionTimeout => ("M_CONNECTION_TIMEOUT", 504),
            Exclusive => ("M_EXCLUSIVE", 400),
            Conflict => ("M_UNKNOWN", 409),
            Forbidden => ("M_FORBIDDEN", 403),
            GuestAccessForbidden => ("M_GUEST_ACCESS_FORBIDDEN", 403),
            InvalidParam => ("M_INVALID_PARAM", 400),
            InvalidRoomState => ("M_INVALID_ROOM_STATE", 400),
            InvalidSignature => ("M_INVALID_SIGNATURE", 400),
            InvalidUsername => ("M_INVALID_USERNAME", 400),
            KeyTooLarge => ("M_KEY_TOO_LARGE", 400),
            LimitExceeded { .. } => ("M_LIMIT_EXCEEDED", 429),
            MethodNotAllowed => ("M_UNRECOGNIZED", 405),
            MissingParam => ("M_MISSING_PARAM", 400),
            MissingToken => ("M_MISSING_TOKEN", 401),
            NotFound => ("M_NOT_FOUND", 404),
            NotJson => ("M_NOT_JSON", 400),
            NotYetUploaded => ("M_NOT_YET_UPLOADED", 504),
            NotSettable => ("M_BAD_JSON", 405),
            ProfileTooLarge => ("M_PROFILE_TOO_LARGE", 400),
            ResourceLimitExceeded { .. } => ("M_RESOURCE_LIMIT_EXCEEDED", 403),
            RoomInUse => ("M_ROOM_IN_USE", 400),
            TooLarge => ("M_TOO_LARGE", 413),
            Unknown => ("M_UNKNOWN", 400),
            UnknownToken { .. } => ("M_UNKNOWN_TOKEN", 401),
            UnknownPos => ("M_UNKNOWN_POS", 400),
            UnsupportedRoomVersion => ("M_UNSUPPORTED_ROOM_VERSION", 400),
            UrlNotSet => ("M_URL_NOT_SET", 400),
            Unauthorized => ("M_UNAUTHORIZED", 401),
            Unrecognized => ("M_UNRECOGNIZED", 404),
            UnrecognizedParam => ("M_UNRECOGNIZED", 400),
            UserDeactivated => ("M_USER_DEACTIVATED", 403),
            UserInUse => ("M_USER_IN_USE", 400),
            WrongRoomKeysVersion { .. } => ("M_WRONG_ROOM_KEYS_VERSION", 403),
            Internal => ("M_UNKNOWN", 500),
        }
    }
}

/// Why the server refuses activity: Synapse's `limit_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitType {
    MonthlyActiveUser,
    HsDisabled,
}

impl LimitType {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitType::MonthlyActiveUser => "monthly_active_user",
            LimitType::HsDisabled => "hs_disabled",
        }
    }
}

/// A Matrix error: `{errcode, error}` plus the fields its kind defines.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixError {
    pub kind: ErrorKind,
    pub message: Cow<'static, str>,
    /// Who to contact, on errors that ask the user to (`M_RESOURCE_LIMIT_EXCEEDED`).
    pub admin_contact: Option<String>,
}

impl MatrixError {
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self { kind, message: message.into(), admin_contact: None }
    }

    pub fn with_admin_contact(mut self, contact: Option<&str>) -> Self {
        self.admin_contact = contact.map(str::to_owned);
        self
    }

    pub fn status(&self) -> u16 {
        self.kind.errcode_and_status().1
    }

    /// The response body: errcode and error, and the extra fields of the kind.
    pub fn body(&self) -> Map<String, Value> {
        let (errcode, _) = self.kind.errcode_and_status();
        let mut body = Map::new();
        body.insert("errcode".into(), errcode.into());
        body.insert("error".into(), self.message.as_ref().into());
        match self.kind {
            ErrorKind::LimitExceeded { retry_after_ms } => {
                body.insert("retry_after_ms".into(), retry_after_ms.into());
            }
            ErrorKind::BadStatus { status } => {
                body.insert("status".into(), status.into());
            }
            ErrorKind::UnknownToken { soft_logout } => {
                body.insert("soft_logout".into(), soft_logout.into());
            }
            ErrorKind::WrongRoomKeysVersion { current_version } => {
                body.insert("current_version".into(), current_version.to_string().into());
            }
            ErrorKind::ResourceLimitExceeded { limit_type } => {
                body.insert("limit_type".into(), limit_type.as_str().into());
            }
            _ => {}
        }
        if let Some(contact) = &self.admin_contact {
            body.insert("admin_contact".into(), contact.clone().into());
        }
        body
    }
}

/// Everything a handler can fail with.
#[derive(Debug)]
pub enum Error {
    Matrix(MatrixError),
    /// User-interactive auth is not complete: a 401 with the flows, and maybe a failed stage.
    Uia(Box<UiaChallenge>),
}

impl Error {
    pub fn status(&self) -> u16 {
        match self {
            Error::Matrix(e) => e.status(),
            Error::Uia(_) => 401,
        }
    }

    pub fn body(&self) -> Map<String, Value> {
        match self {
            Error::Matrix(e) => e.body(),
            Error::Uia(challenge) => challenge.body(),
        }
    }

    /// The Matrix error inside, if this is one (tests and logging).
    pub fn matrix(&self) -> Option<&MatrixError> {
        match self {
            Error::Matrix(e) => Some(e),
            Error::Uia(_) => None,
        }
    }
}

impl From<MatrixError> for Error {
    fn from(e: MatrixError) -> Self {
        Error::Matrix(e)
    }
}

/// Shorthands for the common errors, so handlers read `Err(forbidden("..."))?`.
macro_rules! constructors {
    ($($name:ident => $kind:ident),* $(,)?) => {
        $(pub fn $name(message: impl Into<Cow<'static, str>>) -> Error {
            Error::Matrix(MatrixError::new(ErrorKind::$kind, message))
        })*
    };
}

constructors! {
    bad_json => BadJson,
    forbidden => Forbidden,
    invalid_param => InvalidParam,
    missing_param => MissingParam,
    not_found => NotFound,
    unknown => Unknown,
}

/// A fault of ours or of the platform. It is logged in full and reported without detail.
pub fn internal(context: &str, detail: impl std::fmt::Display) -> Error {
    crate::log::error(&format!("{context}: {detail}"));
    Error::Matrix(MatrixError::new(ErrorKind::Internal, "Internal server error"))
}

impl From<worker::Error> for Error {
    fn from(e: worker::Error) -> Self {
        internal("platform", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_an_m_errcode_and_an_error_status() {
        for kind in ErrorKind::ALL.iter().copied() {
            let (errcode, status) = kind.errcode_and_status();
            assert!(errcode.starts_with("M_"), "{kind:?}");
            assert!((400..600).contains(&status), "{kind:?}");
            let with_fields = matches!(
                kind,
                ErrorKind::LimitExceeded { .. }
                    | ErrorKind::ResourceLimitExceeded { .. }
                    | ErrorKind::UnknownToken { .. }
                    | ErrorKind::WrongRoomKeysVersion { .. }
            );
            if !with_fields {
                assert_eq!(ErrorKind::from_wire(errcode, status), kind, "{kind:?} survives the trip");
            }
        }
    }

    #[test]
    fn statuses_follow_the_spec() {
        let cases = [
            (ErrorKind::Unrecognized, "M_UNRECOGNIZED", 404),
            (ErrorKind::MethodNotAllowed, "M_UNRECOGNIZED", 405),
            (ErrorKind::MissingToken, "M_MISSING_TOKEN", 401),
            (ErrorKind::UnknownToken { soft_logout: false }, "M_UNKNOWN_TOKEN", 401),
            (ErrorKind::TooLarge, "M_TOO_LARGE", 413),
            (ErrorKind::LimitExceeded { retry_after_ms: 5 }, "M_LIMIT_EXCEEDED", 429),
            (ErrorKind::UserDeactivated, "M_USER_DEACTIVATED", 403),
            (ErrorKind::Internal, "M_UNKNOWN", 500),
        ];
        for (kind, errcode, status) in cases {
            assert_eq!(kind.errcode_and_status(), (errcode, status));
        }
    }

    #[test]
    fn body_carries_the_fields_of_its_kind() {
        let e = MatrixError::new(ErrorKind::LimitExceeded { retry_after_ms: 1500 }, "slow down");
        let body = e.body();
        assert_eq!(body["errcode"], "M_LIMIT_EXCEEDED");
        assert_eq!(body["error"], "slow down");
        assert_eq!(body["retry_after_ms"], 1500);

        let e = MatrixError::new(ErrorKind::UnknownToken { soft_logout: false }, "gone");
        assert_eq!(e.body()["soft_logout"], false);

        let e = MatrixError::new(ErrorKind::WrongRoomKeysVersion { current_version: 42 }, "Wrong backup version");
        assert_eq!(e.status(), 403);
        assert_eq!(e.body()["current_version"], "42");
        assert!(!MatrixError::new(ErrorKind::NotFound, "x").body().contains_key("retry_after_ms"));
    }
}
