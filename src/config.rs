//! Server configuration, read from `[vars]` and secrets and validated once per isolate.
//!
//! A bad value never half-works: the first request gets a 500 whose message names the variable,
//! and the same text goes to the log.

use std::cell::RefCell;
use std::rc::Rc;

use ruma_common::{OwnedServerName, OwnedUserId, ServerName, UserId};

use crate::password;
use crate::ratelimit::Rule;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The domain part of every local ID, e.g. `example.org`.
    pub server_name: OwnedServerName,
    /// Where clients reach us; when unset, the origin of each request.
    pub public_baseurl: Option<String>,
    pub enable_registration: bool,
    pub allow_guest_access: bool,
    /// Whether presence is tracked and shared; it costs a wake-up of every co-member per change.
    pub enable_presence: bool,
    pub admin_contact: Option<AdminContact>,
    /// The largest request body we read, in bytes.
    pub max_request_bytes: usize,
    /// The largest media upload, in bytes (`m.upload.size`).
    pub max_upload_bytes: u64,
    /// The largest image (width × height) we make thumbnails of; larger ones get `M_TOO_LARGE`.
    pub max_thumbnail_pixels: u64,
    pub rc_login: Rule,
    pub rc_registration: Rule,
    pub rc_to_device: Rule,
    pub rc_media_create: Rule,
    pub password_cost: password::Cost,
    /// Whether each response says what its invocation cost in D1 queries, Durable Object calls
    /// and fetches (a `Server-Timing` header): on for `npm run dev` and the tests.
    pub cost_headers: bool,
    /// The most calls one invocation makes when it fans out to many users' objects.
    pub fanout_width: usize,
}

/// A room's writer fans out twice per commit (wake-ups, then pushes), and a push queue that
/// relays also sends to gateways: 16 keeps each of those invocations well below the free
/// plan's 50 subrequests.
pub const DEFAULT_FANOUT_WIDTH: usize = 16;

/// Who to ask for help, served at `/.well-known/matrix/support`.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminContact {
    Email(String),
    Matrix(OwnedUserId),
}

impl Config {
    /// Reads every setting through `var`, which returns a variable's value if it is set.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let server_name = var("SERVER_NAME").ok_or("SERVER_NAME is not set")?;
        let server_name = ServerName::parse(server_name.trim())
            .map_err(|e| format!("SERVER_NAME {server_name:?} is not a server name: {e}"))?;
        let public_baseurl = match var("PUBLIC_BASEURL").filter(|v| !v.is_empty()) {
            None => None,
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                Some(url.trim_end_matches('/').to_owned())
            }
            Some(url) => return Err(format!("PUBLIC_BASEURL {url:?} must start with https://")),
        };
        let admin_contact = match var("ADMIN_CONTACT").filter(|v| !v.is_empty()) {
            None => None,
            Some(c) if c.starts_with('@') => Some(AdminContact::Matrix(
                UserId::parse(c.as_str()).map_err(|e| format!("ADMIN_CONTACT {c:?} is not a user ID: {e}"))?,
            )),
            Some(c) if c.contains('@') => Some(AdminContact::Email(c)),
            Some(c) => return Err(format!("ADMIN_CONTACT {c:?} is neither an email address nor a user ID")),
        };
        let defaults = password::Cost::default();
        let password_cost = password::Cost {
            memory_kib: number(&var, "PASSWORD_HASH_MEMORY_KIB", defaults.memory_kib)?,
            iterations: number(&var, "PASSWORD_HASH_ITERATIONS", defaults.iterations)?,
        };
        if !password_cost.is_valid() {
            return Err(format!("PASSWORD_HASH_MEMORY_KIB must be at least 8, not {}", password_cost.memory_kib));
        }
        let fanout_width = number(&var, "FANOUT_WIDTH", DEFAULT_FANOUT_WIDTH)?;
        if !(2..=20).contains(&fanout_width) {
            return Err(format!("FANOUT_WIDTH must be from 2 to 20, not {fanout_width}"));
        }
        Ok(Self {
            server_name,
            public_baseurl,
            enable_registration: flag(&var, "ENABLE_REGISTRATION", false)?,
            allow_guest_access: flag(&var, "ALLOW_GUEST_ACCESS", false)?,
            enable_presence: flag(&var, "ENABLE_PRESENCE", true)?,
            admin_contact,
            max_request_bytes: number(&var, "MAX_REQUEST_BYTES", 1 << 20)?,
            // Synapse's max_upload_size.
            max_upload_bytes: number(&var, "MAX_UPLOAD_BYTES", 50 << 20)?,
            max_thumbnail_pixels: number(&var, "MAX_THUMBNAIL_PIXELS", crate::media::thumbnail::MAX_PIXELS)?,
            // Synapse's defaults: rc_login.address and rc_registration.
            rc_login: Rule {
                per_second: number(&var, "RC_LOGIN_PER_SECOND", 0.003)?,
                burst: number(&var, "RC_LOGIN_BURST", 5.0)?,
            },
            rc_registration: Rule {
                per_second: number(&var, "RC_REGISTRATION_PER_SECOND", 0.17)?,
                burst: number(&var, "RC_REGISTRATION_BURST", 3.0)?,
            },
            // Synapse's rc_key_requests, the one limit it puts on to-device messages.
            rc_to_device: Rule {
                per_second: number(&var, "RC_TO_DEVICE_PER_SECOND", 20.0)?,
                burst: number(&var, "RC_TO_DEVICE_BURST", 100.0)?,
            },
            // Synapse's rc_media_create, counted here for every upload as well as every /create.
            rc_media_create: Rule {
                per_second: number(&var, "RC_MEDIA_CREATE_PER_SECOND", 10.0)?,
                burst: number(&var, "RC_MEDIA_CREATE_BURST", 50.0)?,
            },
            password_cost,
            cost_headers: flag(&var, "COST_HEADERS", false)?,
            fanout_width,
        })
    }

    /// The configuration of this isolate, parsed on first use.
    pub fn get(env: &worker::Env) -> Result<Rc<Config>, String> {
        thread_local!(static CACHE: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) });
        if let Some(config) = CACHE.with(|c| c.borrow().clone()) {
            return Ok(config);
        }
        let config = Rc::new(Config::from_vars(|name| {
            env.var(name).ok().map(|v| v.to_string()).or_else(|| env.secret(name).ok().map(|v| v.to_string()))
        })?);
        CACHE.with(|c| *c.borrow_mut() = Some(config.clone()));
        Ok(config)
    }
}

fn flag(var: &impl Fn(&str) -> Option<String>, name: &str, default: bool) -> Result<bool, String> {
    match var(name).as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(format!("{name} must be true or false, not {other:?}")),
    }
}

fn number<T: std::str::FromStr + PartialOrd + Default>(
    var: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> Result<T, String> {
    match var(name).as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => match v.parse::<T>() {
            Ok(n) if n > T::default() => Ok(n),
            _ => Err(format!("{name} must be a positive number, not {v:?}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_vars(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn minimal_config_takes_the_defaults() {
        let c = parse(&[("SERVER_NAME", "localhost")]).unwrap();
        assert_eq!(c.server_name.as_str(), "localhost");
        assert!(!c.enable_registration);
        assert!(!c.allow_guest_access);
        assert!(c.enable_presence);
        assert_eq!(c.max_request_bytes, 1 << 20);
        assert_eq!(c.max_upload_bytes, 50 << 20);
        assert_eq!(c.max_thumbnail_pixels, 16_000_000);
        assert_eq!(c.rc_media_create, Rule { per_second: 10.0, burst: 50.0 });
        assert_eq!(c.public_baseurl, None);
        assert_eq!(c.rc_registration.burst, 3.0);
        assert_eq!(c.rc_to_device, Rule { per_second: 20.0, burst: 100.0 });
    }

    #[test]
    fn every_setting_is_read() {
        let c = parse(&[
            ("SERVER_NAME", "example.org:8448"),
            ("PUBLIC_BASEURL", "https://matrix.example.org/"),
            ("ENABLE_REGISTRATION", "true"),
            ("ALLOW_GUEST_ACCESS", "true"),
            ("ENABLE_PRESENCE", "false"),
            ("ADMIN_CONTACT", "@admin:example.org"),
            ("MAX_REQUEST_BYTES", "2048"),
            ("MAX_UPLOAD_BYTES", "4096"),
            ("MAX_THUMBNAIL_PIXELS", "300000"),
            ("RC_MEDIA_CREATE_PER_SECOND", "1"),
            ("RC_MEDIA_CREATE_BURST", "3"),
            ("RC_LOGIN_PER_SECOND", "10"),
            ("RC_LOGIN_BURST", "100"),
            ("RC_TO_DEVICE_PER_SECOND", "0.5"),
            ("RC_TO_DEVICE_BURST", "2"),
            ("PASSWORD_HASH_MEMORY_KIB", "19456"),
            ("PASSWORD_HASH_ITERATIONS", "2"),
        ])
        .unwrap();
        assert_eq!(c.public_baseurl.as_deref(), Some("https://matrix.example.org"));
        assert!(c.enable_registration && c.allow_guest_access && !c.enable_presence);
        assert!(matches!(c.admin_contact, Some(AdminContact::Matrix(ref u)) if u == "@admin:example.org"));
        assert_eq!(c.max_request_bytes, 2048);
        assert_eq!(c.max_upload_bytes, 4096);
        assert_eq!(c.max_thumbnail_pixels, 300_000);
        assert_eq!(c.rc_media_create, Rule { per_second: 1.0, burst: 3.0 });
        assert_eq!(c.rc_login, Rule { per_second: 10.0, burst: 100.0 });
        assert_eq!(c.rc_to_device, Rule { per_second: 0.5, burst: 2.0 });
        assert_eq!(c.password_cost, password::Cost { memory_kib: 19456, iterations: 2 });
        let c = parse(&[("SERVER_NAME", "a.b"), ("ADMIN_CONTACT", "ops@a.b")]).unwrap();
        assert_eq!(c.admin_contact, Some(AdminContact::Email("ops@a.b".into())));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "SERVER_NAME"),
            (&[("SERVER_NAME", "not a name")], "SERVER_NAME"),
            (&[("SERVER_NAME", "a.b"), ("ENABLE_REGISTRATION", "yes")], "ENABLE_REGISTRATION"),
            (&[("SERVER_NAME", "a.b"), ("MAX_REQUEST_BYTES", "-1")], "MAX_REQUEST_BYTES"),
            (&[("SERVER_NAME", "a.b"), ("RC_LOGIN_BURST", "0")], "RC_LOGIN_BURST"),
            (&[("SERVER_NAME", "a.b"), ("PASSWORD_HASH_MEMORY_KIB", "4")], "PASSWORD_HASH_MEMORY_KIB"),
            (&[("SERVER_NAME", "a.b"), ("PASSWORD_HASH_ITERATIONS", "x")], "PASSWORD_HASH_ITERATIONS"),
            (&[("SERVER_NAME", "a.b"), ("PUBLIC_BASEURL", "ftp://x")], "PUBLIC_BASEURL"),
            (&[("SERVER_NAME", "a.b"), ("ADMIN_CONTACT", "@bad")], "ADMIN_CONTACT"),
            (&[("SERVER_NAME", "a.b"), ("ADMIN_CONTACT", "nobody")], "ADMIN_CONTACT"),
        ];
        for (vars, named) in cases {
            let err = parse(vars).unwrap_err();
            assert!(err.contains(named), "{err:?} should name {named}");
        }
    }
}
