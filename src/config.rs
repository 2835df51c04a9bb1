//! Server configuration, read from `[vars]` and secrets and validated once per isolate.
//!
//! A bad value never half-works: the first request gets a 500 whose message names the variable,
//! and the same text goes to the log.

use std::cell::RefCell;
use std::rc::Rc;

use ruma_common::{OwnedServerName, OwnedUserId, ServerName, UserId};

use crate::password;
use crate::presence::{router, state::Timeouts};
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
    /// The idle (5 minutes) and offline (30 seconds after the last sync) timers.
    pub presence_timeouts: Timeouts,
    /// The built-in presence router's options.
    pub presence_router: PresenceRouterConfig,
    /// Registered presence routers to run after the built-in one, in order.
    pub presence_routers: Vec<String>,
    pub admin_contact: Option<AdminContact>,
    /// The largest request body we read, in bytes.
    pub max_request_bytes: usize,
    /// The largest media upload, in bytes (`m.upload.size`).
    pub max_upload_bytes: u64,
    /// The largest image (width × height) we make thumbnails of; larger ones get `M_TOO_LARGE`.
    pub max_thumbnail_pixels: u64,
    /// Who makes thumbnails: Wasm in the Worker, or Cloudflare's Images binding.
    pub thumbnailer: Thumbnailer,
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
    pub mau: MauLimits,
    /// Every request that could add activity is refused with this message.
    pub hs_disabled: Option<String>,
    /// The user who sends server notices; none turns them off.
    pub server_notices_mxid: Option<OwnedUserId>,
    /// Whether a puppet token's use counts as its target's activity, not only its admin's.
    pub track_puppeted_user_ips: bool,
    /// Whether application services' users count as active users (and so can be blocked).
    pub track_appservice_user_ips: bool,
    /// The secret of `/_synapse/admin/v1/register`; none turns that endpoint off.
    pub registration_shared_secret: Option<String>,
    pub registration_requires_token: bool,
    /// The secret of `/_stratus/local/v1/query`, which `scripts/serve` sets; none turns it off.
    pub local_command_secret: Option<String>,
}

/// The monthly active user limit, as Synapse's `limit_usage_by_mau` and friends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MauLimits {
    pub enabled: bool,
    pub max: u64,
    /// `MAU_TRIAL_DAYS` in ms: days may be fractional, as Synapse's `mau_trial_days` may be.
    pub trial_ms: u64,
    /// `(medium, address)` pairs whose holders are always active.
    pub reserved_threepids: Vec<(String, String)>,
}

/// A room's writer fans out twice per commit (wake-ups, then pushes), and a push queue that
/// relays also sends to gateways: 16 keeps each of those invocations well below the free
/// plan's 50 subrequests.
pub const DEFAULT_FANOUT_WIDTH: usize = 16;

/// The built-in presence router (the example router of Synapse's docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PresenceRouterConfig {
    /// Receive every user's presence.
    pub always_send_to_users: Vec<OwnedUserId>,
    /// Whose presence is never routed (shared-room presence is unaffected).
    pub blacklisted_users: Vec<OwnedUserId>,
}

/// Who to ask for help, served at `/.well-known/matrix/support`.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminContact {
    Email(String),
    Matrix(OwnedUserId),
}

impl AdminContact {
    /// The setting as written, which errors give as `admin_contact`.
    pub fn as_str(&self) -> &str {
        match self {
            AdminContact::Email(e) => e,
            AdminContact::Matrix(u) => u.as_str(),
        }
    }
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
        let server_notices_mxid = match var("SERVER_NOTICES_LOCALPART").filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(localpart) => Some(
                UserId::parse(format!("@{}:{server_name}", localpart.trim()))
                    .map_err(|e| format!("SERVER_NOTICES_LOCALPART {localpart:?} is not a localpart: {e}"))?,
            ),
        };
        let mau = MauLimits {
            enabled: flag(&var, "LIMIT_USAGE_BY_MAU", false)?,
            max: whole(&var, "MAX_MAU_VALUE", 0)?,
            trial_ms: days_ms(&var, "MAU_TRIAL_DAYS")?,
            reserved_threepids: threepids(&var, "MAU_LIMIT_RESERVED_THREEPIDS")?,
        };
        let hs_disabled = match flag(&var, "HS_DISABLED", false)? {
            true => Some(var("HS_DISABLED_MESSAGE").unwrap_or_default()),
            false => None,
        };
        let registration_shared_secret = var("REGISTRATION_SHARED_SECRET").filter(|v| !v.is_empty());
        let presence_router = PresenceRouterConfig {
            always_send_to_users: user_ids(&var, "PRESENCE_ROUTER_ALWAYS_SEND_TO_USERS")?,
            blacklisted_users: user_ids(&var, "PRESENCE_ROUTER_BLACKLISTED_USERS")?,
        };
        let presence_routers = list(&var, "PRESENCE_ROUTERS");
        if let Some(unknown) = presence_routers.iter().find(|name| !router::is_registered(name)) {
            return Err(format!("PRESENCE_ROUTERS names {unknown:?}, which is not a registered presence router"));
        }
        Ok(Self {
            mau,
            hs_disabled,
            server_notices_mxid,
            track_puppeted_user_ips: flag(&var, "TRACK_PUPPETED_USER_IPS", false)?,
            track_appservice_user_ips: flag(&var, "TRACK_APPSERVICE_USER_IPS", false)?,
            registration_shared_secret,
            registration_requires_token: flag(&var, "REGISTRATION_REQUIRES_TOKEN", false)?,
            local_command_secret: var("LOCAL_COMMAND_SECRET").filter(|v| !v.is_empty()),
            server_name,
            public_baseurl,
            enable_registration: flag(&var, "ENABLE_REGISTRATION", false)?,
            allow_guest_access: flag(&var, "ALLOW_GUEST_ACCESS", false)?,
            enable_presence: flag(&var, "ENABLE_PRESENCE", true)?,
            presence_timeouts: Timeouts {
                idle_ms: number(&var, "PRESENCE_IDLE_TIMEOUT_MS", 300_000)?,
                sync_ms: number(&var, "PRESENCE_SYNC_TIMEOUT_MS", 30_000)?,
            },
            presence_router,
            presence_routers,
            admin_contact,
            max_request_bytes: number(&var, "MAX_REQUEST_BYTES", 1 << 20)?,
            // Synapse's max_upload_size.
            max_upload_bytes: number(&var, "MAX_UPLOAD_BYTES", 50 << 20)?,
            max_thumbnail_pixels: number(&var, "MAX_THUMBNAIL_PIXELS", crate::media::thumbnail::MAX_PIXELS)?,
            thumbnailer: Thumbnailer::parse(var("THUMBNAILER").as_deref())?,
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

/// `THUMBNAILER`: `wasm` (the `image` crate in the Worker, the default where it is built in) or
/// `images` (the Images binding, the only one in a build without the `wasm-thumbnails` feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thumbnailer {
    Wasm,
    Images,
}

impl Thumbnailer {
    fn parse(value: Option<&str>) -> Result<Self, String> {
        let built_in = cfg!(feature = "wasm-thumbnails");
        match value.map(str::trim) {
            None | Some("") if built_in => Ok(Self::Wasm),
            None | Some("") | Some("images") => Ok(Self::Images),
            Some("wasm") if built_in => Ok(Self::Wasm),
            Some("wasm") => Err("THUMBNAILER=wasm needs a build with the wasm-thumbnails feature".to_owned()),
            Some(other) => Err(format!("THUMBNAILER must be wasm or images, not {other:?}")),
        }
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

/// A count that may be zero.
fn whole(var: &impl Fn(&str) -> Option<String>, name: &str, default: u64) -> Result<u64, String> {
    match var(name).as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => v.parse::<u64>().map_err(|_| format!("{name} must be a whole number, not {v:?}")),
    }
}

/// A JSON list of `{"medium": ..., "address": ...}`.
/// A number of days, maybe fractional, maybe zero (the default), in milliseconds.
fn days_ms(var: &impl Fn(&str) -> Option<String>, name: &str) -> Result<u64, String> {
    match var(name).as_deref().map(str::trim) {
        None | Some("") => Ok(0),
        Some(v) => match v.parse::<f64>() {
            Ok(days) if days.is_finite() && days >= 0.0 => Ok((days * 86_400_000.0) as u64),
            _ => Err(format!("{name} must be a non-negative number of days, not {v:?}")),
        },
    }
}

fn threepids(var: &impl Fn(&str) -> Option<String>, name: &str) -> Result<Vec<(String, String)>, String> {
    let Some(raw) = var(name).filter(|v| !v.trim().is_empty()) else { return Ok(Vec::new()) };
    let bad = || format!("{name} must be a JSON list of {{\"medium\", \"address\"}} objects, not {raw:?}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&raw).map_err(|_| bad())?;
    list.iter()
        .map(|t| match (t.get("medium").and_then(|m| m.as_str()), t.get("address").and_then(|a| a.as_str())) {
            (Some(medium), Some(address)) => Ok((medium.to_owned(), address.to_owned())),
            _ => Err(bad()),
        })
        .collect()
}

/// A comma-separated list; empty items are ignored.
fn list(var: &impl Fn(&str) -> Option<String>, name: &str) -> Vec<String> {
    var(name).unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn user_ids(var: &impl Fn(&str) -> Option<String>, name: &str) -> Result<Vec<OwnedUserId>, String> {
    list(var, name)
        .into_iter()
        .map(|id| UserId::parse(id.as_str()).map_err(|e| format!("{name}: {id:?} is not a user ID: {e}")))
        .collect()
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
        let built_in = if cfg!(feature = "wasm-thumbnails") { Thumbnailer::Wasm } else { Thumbnailer::Images };
        assert_eq!(c.thumbnailer, built_in);
        assert_eq!(c.rc_media_create, Rule { per_second: 10.0, burst: 50.0 });
        assert_eq!(c.public_baseurl, None);
        assert_eq!(c.rc_registration.burst, 3.0);
        assert_eq!(c.rc_to_device, Rule { per_second: 20.0, burst: 100.0 });
        assert_eq!(c.mau, MauLimits::default());
        assert!(c.hs_disabled.is_none() && c.server_notices_mxid.is_none() && c.registration_shared_secret.is_none());
        assert!(!c.track_puppeted_user_ips && !c.track_appservice_user_ips && !c.registration_requires_token);
    }

    #[test]
    fn administration_settings_are_read() {
        let c = parse(&[
            ("SERVER_NAME", "a.b"),
            ("LIMIT_USAGE_BY_MAU", "true"),
            ("MAX_MAU_VALUE", "0"),
            ("MAU_TRIAL_DAYS", "3"),
            ("MAU_LIMIT_RESERVED_THREEPIDS", r#"[{"medium": "email", "address": "x@a.b"}]"#),
            ("HS_DISABLED", "true"),
            ("HS_DISABLED_MESSAGE", "Down for maintenance"),
            ("SERVER_NOTICES_LOCALPART", "notices"),
            ("TRACK_PUPPETED_USER_IPS", "true"),
            ("TRACK_APPSERVICE_USER_IPS", "true"),
            ("REGISTRATION_SHARED_SECRET", "s3cret"),
            ("REGISTRATION_REQUIRES_TOKEN", "true"),
        ])
        .unwrap();
        let reserved = vec![("email".to_owned(), "x@a.b".to_owned())];
        assert_eq!(c.mau, MauLimits { enabled: true, max: 0, trial_ms: 3 * 86_400_000, reserved_threepids: reserved });
        assert_eq!(c.hs_disabled.as_deref(), Some("Down for maintenance"));
        assert_eq!(c.server_notices_mxid.as_ref().map(|u| u.as_str()), Some("@notices:a.b"));
        assert!(c.track_puppeted_user_ips && c.track_appservice_user_ips && c.registration_requires_token);
        assert_eq!(c.registration_shared_secret.as_deref(), Some("s3cret"));
        assert_eq!(c.presence_timeouts, Timeouts { idle_ms: 300_000, sync_ms: 30_000 });
        assert!(c.presence_routers.is_empty() && c.presence_router == PresenceRouterConfig::default());
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
            ("THUMBNAILER", "images"),
            ("RC_MEDIA_CREATE_PER_SECOND", "1"),
            ("RC_MEDIA_CREATE_BURST", "3"),
            ("RC_LOGIN_PER_SECOND", "10"),
            ("RC_LOGIN_BURST", "100"),
            ("RC_TO_DEVICE_PER_SECOND", "0.5"),
            ("RC_TO_DEVICE_BURST", "2"),
            ("PASSWORD_HASH_MEMORY_KIB", "19456"),
            ("PASSWORD_HASH_ITERATIONS", "2"),
            ("PRESENCE_IDLE_TIMEOUT_MS", "3000"),
            ("PRESENCE_SYNC_TIMEOUT_MS", "2000"),
            ("PRESENCE_ROUTER_ALWAYS_SEND_TO_USERS", "@a:example.org, @b:example.org"),
            ("PRESENCE_ROUTER_BLACKLISTED_USERS", "@c:example.org"),
            ("PRESENCE_ROUTERS", "docs_example,test_union"),
        ])
        .unwrap();
        assert_eq!(c.presence_timeouts, Timeouts { idle_ms: 3000, sync_ms: 2000 });
        assert_eq!(c.presence_router.always_send_to_users.len(), 2);
        assert_eq!(c.presence_router.blacklisted_users[0], "@c:example.org");
        assert_eq!(c.presence_routers, ["docs_example", "test_union"]);
        assert_eq!(c.public_baseurl.as_deref(), Some("https://matrix.example.org"));
        assert!(c.enable_registration && c.allow_guest_access && !c.enable_presence);
        assert!(matches!(c.admin_contact, Some(AdminContact::Matrix(ref u)) if u == "@admin:example.org"));
        assert_eq!(c.max_request_bytes, 2048);
        assert_eq!(c.max_upload_bytes, 4096);
        assert_eq!(c.max_thumbnail_pixels, 300_000);
        assert_eq!(c.thumbnailer, Thumbnailer::Images);
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
            (&[("SERVER_NAME", "a.b"), ("MAX_MAU_VALUE", "-3")], "MAX_MAU_VALUE"),
            (&[("SERVER_NAME", "a.b"), ("MAU_TRIAL_DAYS", "-1")], "MAU_TRIAL_DAYS"),
            (&[("SERVER_NAME", "a.b"), ("MAU_TRIAL_DAYS", "a week")], "MAU_TRIAL_DAYS"),
            (&[("SERVER_NAME", "a.b"), ("MAU_LIMIT_RESERVED_THREEPIDS", "[{}]")], "MAU_LIMIT_RESERVED_THREEPIDS"),
            (&[("SERVER_NAME", "a.b"), ("MAU_LIMIT_RESERVED_THREEPIDS", "x")], "MAU_LIMIT_RESERVED_THREEPIDS"),
            (&[("SERVER_NAME", "a.b"), ("HS_DISABLED", "1")], "HS_DISABLED"),
            (&[("SERVER_NAME", "a.b"), ("SERVER_NOTICES_LOCALPART", "a:b")], "SERVER_NOTICES_LOCALPART"),
            (&[("SERVER_NAME", "a.b"), ("TRACK_PUPPETED_USER_IPS", "y")], "TRACK_PUPPETED_USER_IPS"),
            (&[("SERVER_NAME", "a.b"), ("REGISTRATION_REQUIRES_TOKEN", "on")], "REGISTRATION_REQUIRES_TOKEN"),
            (&[("SERVER_NAME", "a.b"), ("PRESENCE_IDLE_TIMEOUT_MS", "0")], "PRESENCE_IDLE_TIMEOUT_MS"),
            (&[("SERVER_NAME", "a.b"), ("PRESENCE_SYNC_TIMEOUT_MS", "soon")], "PRESENCE_SYNC_TIMEOUT_MS"),
            (
                &[("SERVER_NAME", "a.b"), ("PRESENCE_ROUTER_BLACKLISTED_USERS", "bob")],
                "PRESENCE_ROUTER_BLACKLISTED_USERS",
            ),
            (&[("SERVER_NAME", "a.b"), ("PRESENCE_ROUTERS", "docs_example,nope")], "PRESENCE_ROUTERS"),
            (&[("SERVER_NAME", "a.b"), ("THUMBNAILER", "sharp")], "THUMBNAILER"),
        ];
        for (vars, named) in cases {
            let err = parse(vars).unwrap_err();
            assert!(err.contains(named), "{err:?} should name {named}");
        }
    }
}
