//! Auth blocking, as Synapse's `AuthBlocking`: a disabled server (`HS_DISABLED`) and the monthly
//! active user limit refuse whatever would add activity — registration, new tokens, `/sync`,
//! `createRoom` and sending events — with 403 `M_RESOURCE_LIMIT_EXCEEDED`.
//!
//! Who may pass is decided by [`decide`], which is pure; the facts it needs of an authenticated
//! user come with the token lookup ([`Standing`]), so an active user's request reads nothing
//! more.

use ruma_common::{OwnedUserId, UserId};

use crate::auth::Requester;
use crate::config::Config;
use crate::error::{ErrorKind, LimitType, MatrixError, Result};
use crate::storage::{monthly_active_users, users, Db};
use crate::time::now_ms;

pub const SUPPORT: &str = "support";

/// What the limit needs to know of an existing user.
#[derive(Debug, Clone)]
pub struct Standing {
    pub user_id: OwnedUserId,
    pub user_type: Option<String>,
    pub created_ms: u64,
    /// When the user was last counted active, if they are in the table.
    pub mau_ts: Option<u64>,
    /// The number of active users, when it was read along.
    pub mau_count: Option<u64>,
}

/// Who asks to do something that may add activity.
#[derive(Debug)]
pub enum Subject<'a> {
    /// An existing user.
    User(&'a Standing),
    /// An application service, or one of its users.
    Appservice,
    /// Someone registering: maybe a support user, maybe with a third-party ID.
    Newcomer { user_type: Option<&'a str>, threepid: Option<(&'a str, &'a str)> },
}

/// What [`decide`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// The server is disabled.
    Disabled,
    /// Allowed only while the active users are fewer than the limit.
    IfRoom,
}

/// Synapse's `check_auth_blocking`, with the count left to the caller.
pub fn decide(config: &Config, subject: &Subject<'_>, now_ms: u64) -> Decision {
    let standing = match subject {
        Subject::Appservice if !config.track_appservice_user_ips => return Decision::Allow,
        Subject::User(s) => Some(*s),
        _ => None,
    };
    // Never the notices user or a support user: they must be able to tell others of the block.
    // (A support user registering gets a token as one, which Synapse lets through.)
    if let Some(s) = standing {
        if config.server_notices_mxid.as_ref() == Some(&s.user_id) || s.user_type.as_deref() == Some(SUPPORT) {
            return Decision::Allow;
        }
    }
    if let Subject::Newcomer { user_type: Some(SUPPORT), .. } = subject {
        return Decision::Allow;
    }
    if config.hs_disabled.is_some() {
        return Decision::Disabled;
    }
    if !config.mau.enabled {
        return Decision::Allow;
    }
    match subject {
        Subject::User(s) if s.mau_ts.is_some() || in_trial(config, s, now_ms) => Decision::Allow,
        Subject::Newcomer { threepid: Some((medium, address)), .. } if is_reserved(config, medium, address) => {
            Decision::Allow
        }
        _ => Decision::IfRoom,
    }
}

fn in_trial(config: &Config, standing: &Standing, now_ms: u64) -> bool {
    now_ms.saturating_sub(standing.created_ms) < config.mau.trial_ms
}

pub fn is_reserved(config: &Config, medium: &str, address: &str) -> bool {
    config.mau.reserved_threepids.iter().any(|(m, a)| m == medium && a == address)
}

/// The error of a refusal.
pub fn refusal(config: &Config, limit_type: LimitType) -> MatrixError {
    let message = match limit_type {
        LimitType::HsDisabled => config.hs_disabled.clone().unwrap_or_default(),
        LimitType::MonthlyActiveUser => "Monthly Active User Limit Exceeded".to_owned(),
    };
    MatrixError::new(ErrorKind::ResourceLimitExceeded { limit_type }, message)
        .with_admin_contact(config.admin_contact.as_ref().map(|c| c.as_str()))
}

/// Refuses unless `subject` may add activity; `count` is the number of active users if known.
pub async fn check(db: &Db, config: &Config, subject: &Subject<'_>, count: Option<u64>) -> Result<()> {
    match decide(config, subject, now_ms()) {
        Decision::Allow => Ok(()),
        Decision::Disabled => Err(refusal(config, LimitType::HsDisabled).into()),
        Decision::IfRoom => {
            let count = match count {
                Some(n) => n,
                None => monthly_active_users::count(db).await?,
            };
            if count >= config.mau.max {
                return Err(refusal(config, LimitType::MonthlyActiveUser).into());
            }
            Ok(())
        }
    }
}

/// The check for an authenticated request: `/sync`, `createRoom`, sending events.
pub async fn check_requester(db: &Db, config: &Config, requester: &Requester) -> Result<()> {
    if config.hs_disabled.is_none() && !config.mau.enabled {
        return Ok(());
    }
    match (&requester.appservice, &requester.standing) {
        (Some(_), _) if !config.track_appservice_user_ips => check(db, config, &Subject::Appservice, None).await,
        (None, Some(standing)) => check(db, config, &Subject::User(standing), standing.mau_count).await,
        // A service acting as one of its users, with its users counted: that user's standing.
        _ => check_user(db, config, &requester.user_id).await,
    }
}

/// The check for a user who gets a new token (login, or an admin's puppeting).
pub async fn check_user(db: &Db, config: &Config, user_id: &UserId) -> Result<()> {
    if config.hs_disabled.is_none() && !config.mau.enabled {
        return Ok(());
    }
    let Some(user) = users::get(db, user_id.as_str()).await? else { return Ok(()) };
    let standing = Standing {
        user_id: user_id.to_owned(),
        user_type: user.user_type,
        created_ms: user.created_ms as u64,
        mau_ts: match config.mau.enabled {
            true => monthly_active_users::timestamp(db, user_id.as_str()).await?,
            false => None,
        },
        mau_count: None,
    };
    check(db, config, &Subject::User(&standing), None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        let mut all = vec![("SERVER_NAME", "server"), ("ADMIN_CONTACT", "mailto:admin@server")];
        all.extend_from_slice(vars);
        Config::from_vars(|n| all.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string())).unwrap()
    }

    fn standing(user_type: Option<&str>, mau_ts: Option<u64>) -> Standing {
        Standing {
            user_id: UserId::parse("@user:server").unwrap(),
            user_type: user_type.map(str::to_owned),
            created_ms: 0,
            mau_ts,
            mau_count: None,
        }
    }

    const DAY_MS: u64 = 24 * 60 * 60 * 1000;
    const NOW: u64 = 100 * DAY_MS;
    const MAU: &[(&str, &str)] = &[("LIMIT_USAGE_BY_MAU", "true"), ("MAX_MAU_VALUE", "50")];

    #[test]
    fn without_limits_everyone_passes() {
        let c = config(&[("MAX_MAU_VALUE", "50")]);
        assert_eq!(decide(&c, &Subject::User(&standing(None, None)), NOW), Decision::Allow);
        assert_eq!(decide(&c, &Subject::Newcomer { user_type: None, threepid: None }, NOW), Decision::Allow);
    }

    #[test]
    fn the_limit_spares_active_support_and_trial_users_not_bots() {
        let c = config(MAU);
        assert_eq!(decide(&c, &Subject::User(&standing(None, None)), NOW), Decision::IfRoom);
        assert_eq!(decide(&c, &Subject::User(&standing(None, Some(NOW))), NOW), Decision::Allow);
        assert_eq!(decide(&c, &Subject::User(&standing(Some("support"), None)), NOW), Decision::Allow);
        assert_eq!(decide(&c, &Subject::User(&standing(Some("bot"), None)), NOW), Decision::IfRoom);
        let newcomer = |user_type| Subject::Newcomer { user_type, threepid: None };
        assert_eq!(decide(&c, &newcomer(Some("support")), NOW), Decision::Allow);
        assert_eq!(decide(&c, &newcomer(Some("bot")), NOW), Decision::IfRoom);
        let trial = config(&[MAU[0], MAU[1], ("MAU_TRIAL_DAYS", "2")]);
        let mut young = standing(None, None);
        young.created_ms = NOW - DAY_MS;
        assert_eq!(decide(&trial, &Subject::User(&young), NOW), Decision::Allow);
        young.created_ms = NOW - 2 * DAY_MS;
        assert_eq!(decide(&trial, &Subject::User(&young), NOW), Decision::IfRoom);
    }

    #[test]
    fn services_are_spared_unless_their_users_are_tracked() {
        assert_eq!(decide(&config(MAU), &Subject::Appservice, NOW), Decision::Allow);
        let tracked = config(&[MAU[0], MAU[1], ("TRACK_APPSERVICE_USER_IPS", "true")]);
        assert_eq!(decide(&tracked, &Subject::Appservice, NOW), Decision::IfRoom);
    }

    #[test]
    fn reserved_threepids_pass() {
        let reserved = r#"[{"medium": "email", "address": "reserved@server.com"}]"#;
        let c = config(&[MAU[0], ("MAX_MAU_VALUE", "1"), ("MAU_LIMIT_RESERVED_THREEPIDS", reserved)]);
        let with = |address| Subject::Newcomer { user_type: None, threepid: Some(("email", address)) };
        assert_eq!(decide(&c, &with("reserved@server.com"), NOW), Decision::Allow);
        assert_eq!(decide(&c, &with("unreserved@server.com"), NOW), Decision::IfRoom);
        assert_eq!(decide(&c, &Subject::Newcomer { user_type: None, threepid: None }, NOW), Decision::IfRoom);
    }

    #[test]
    fn a_disabled_server_spares_only_the_notices_user_and_support_users() {
        let c = config(&[("HS_DISABLED", "true"), ("HS_DISABLED_MESSAGE", "Reason for being disabled")]);
        assert_eq!(decide(&c, &Subject::User(&standing(None, Some(NOW))), NOW), Decision::Disabled);
        assert_eq!(decide(&c, &Subject::User(&standing(Some("support"), None)), NOW), Decision::Allow);
        let support = Subject::Newcomer { user_type: Some("support"), threepid: None };
        assert_eq!(decide(&c, &support, NOW), Decision::Allow);
        let with_notices = config(&[("HS_DISABLED", "true"), ("SERVER_NOTICES_LOCALPART", "user")]);
        assert_eq!(decide(&with_notices, &Subject::User(&standing(None, None)), NOW), Decision::Allow);
        let e = refusal(&c, LimitType::HsDisabled).body();
        assert_eq!(e["errcode"], "M_RESOURCE_LIMIT_EXCEEDED");
        assert_eq!(e["error"], "Reason for being disabled");
        assert_eq!(e["admin_contact"], "mailto:admin@server");
        assert_eq!(e["limit_type"], "hs_disabled");
    }
}
