//! User-interactive authentication: the 401 dance of flows, stages and sessions that guards
//! registration, password changes, deactivation and device deletion.
//!
//! A session is bound to the method and path that started it; completing a flow spends it,
//! except a registration's, which remembers its parameters and the account it created.

use ruma_common::UserId;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::error::{Error, ErrorKind, MatrixError, Result};
use crate::identifiers::resolve_login_user;
use crate::password;
use crate::ratelimit;
use crate::storage::{registration_tokens, uia_sessions, users};
use crate::time::now_ms;
use crate::tokens::new_session_id;

pub const DUMMY: &str = "m.login.dummy";
pub const PASSWORD: &str = "m.login.password";
pub const REGISTRATION_TOKEN: &str = "m.login.registration_token";

/// How long a session lives, as in Synapse.
const SESSION_LIFETIME_MS: u64 = 24 * 60 * 60 * 1000;

/// The flows an endpoint accepts; each is a list of stages to complete in order.
pub type Flows = &'static [&'static [&'static str]];

/// The `auth` object of a request.
#[derive(Debug, Default, Deserialize)]
pub struct AuthData {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub session: Option<String>,
    pub identifier: Option<Value>,
    pub user: Option<Value>,
    pub password: Option<String>,
    /// The registration token of an `m.login.registration_token` stage.
    pub token: Option<String>,
}

/// The 401 answer while auth is incomplete.
#[derive(Debug)]
pub struct UiaChallenge {
    flows: Flows,
    completed: Vec<String>,
    session: String,
    /// Why the last stage failed, if it did.
    error: Option<MatrixError>,
}

impl UiaChallenge {
    pub fn body(&self) -> Map<String, Value> {
        let mut body = match &self.error {
            Some(error) => error.body(),
            None => Map::new(),
        };
        let flows: Vec<Value> = self.flows.iter().map(|stages| json!({ "stages": stages })).collect();
        body.insert("flows".into(), flows.into());
        body.insert("params".into(), json!({}));
        body.insert("session".into(), self.session.clone().into());
        // Always, even empty, as Synapse answers (and clients such as Sytest read it).
        body.insert("completed".into(), self.completed.clone().into());
        body
    }
}

/// Whether the completed stages finish some flow. Stages count only in order: a flow is done when
/// its stages are exactly a prefix-ordered match of the completed list.
pub fn flow_complete(flows: Flows, completed: &[String]) -> bool {
    flows.iter().any(|stages| stages.len() <= completed.len() && stages.iter().zip(completed).all(|(s, c)| s == c))
}

/// Whether `stage` is the next stage of some flow, given what is completed.
fn stage_expected(flows: Flows, completed: &[String], stage: &str) -> bool {
    flows.iter().any(|stages| {
        stages.len() > completed.len()
            && stages.iter().zip(completed).all(|(s, c)| s == c)
            && stages[completed.len()] == stage
    })
}

/// Runs one round of user-interactive auth for the request in `cx`. `Ok(())` means a flow is
/// complete and the request may proceed; otherwise the error is the challenge to send back.
/// `account` is the user whose password the password stage checks.
pub async fn authenticate(cx: &Ctx, auth: Option<AuthData>, flows: Flows, account: Option<&UserId>) -> Result<()> {
    run(cx, auth, flows, account, None).await.map(|_| ())
}

/// A complete registration's auth: its session, and the registration token its token stage
/// took, if any (its use is the caller's to count).
pub struct Completed {
    pub session: String,
    pub registration_token: Option<String>,
}

/// A registration's round of user-interactive auth: the session remembers `params` (the
/// request's, or the ones it had) and is kept once complete, for [`registered`].
pub async fn authenticate_registration(
    cx: &Ctx,
    auth: Option<AuthData>,
    flows: Flows,
    params: &str,
) -> Result<Completed> {
    run(cx, auth, flows, None, Some(params)).await
}

/// A registration session of this request's method and path: its remembered parameters and the
/// user it registered. `None` when there is no such session.
pub async fn remembered(cx: &Ctx, session: &str) -> Result<Option<(Option<String>, Option<String>)>> {
    let stored = uia_sessions::get(&cx.db, session, now_ms().saturating_sub(SESSION_LIFETIME_MS)).await?;
    Ok(stored
        .filter(|s| s.method == cx.req.method.to_string() && s.path == cx.req.path)
        .map(|s| (s.params, s.registered_user_id)))
}

/// Notes the user a completed registration session created.
pub async fn registered(cx: &Ctx, session: &str, user_id: &str) -> Result<()> {
    cx.db.run(uia_sessions::set_registered(&cx.db, session, user_id)?).await?;
    Ok(())
}

async fn run(
    cx: &Ctx,
    auth: Option<AuthData>,
    flows: Flows,
    account: Option<&UserId>,
    params: Option<&str>,
) -> Result<Completed> {
    let now = now_ms();
    let method = cx.req.method.to_string();
    let Some(auth) = auth else {
        let session = start_session(cx, &method, now, params).await?;
        return Err(challenge(flows, Vec::new(), session, None));
    };
    let (session, mut completed, mut registration_token) = match &auth.session {
        Some(id) => {
            let stored = uia_sessions::get(&cx.db, id, now.saturating_sub(SESSION_LIFETIME_MS))
                .await?
                .ok_or_else(|| MatrixError::new(ErrorKind::Unknown, "Unknown or expired auth session"))?;
            if stored.method != method || stored.path != cx.req.path {
                return Err(MatrixError::new(
                    ErrorKind::Forbidden,
                    "Requested operation has changed during the UI authentication session",
                )
                .into());
            }
            if let Some(params) = params.filter(|p| stored.params.as_deref() != Some(*p)) {
                cx.db.run(uia_sessions::set_params(&cx.db, id, params)?).await?;
            }
            let completed: Vec<String> = serde_json::from_str(&stored.completed).unwrap_or_default();
            (id.clone(), completed, stored.registration_token)
        }
        None => (start_session(cx, &method, now, params).await?, Vec::new(), None),
    };
    if let Some(stage) = auth.kind.as_deref() {
        if !stage_expected(flows, &completed, stage) {
            return Err(
                MatrixError::new(ErrorKind::Unknown, format!("Auth stage {stage:?} is not expected here")).into()
            );
        }
        if let Err(failed) = check_stage(cx, stage, &auth, account).await? {
            return Err(challenge(flows, completed, session, Some(failed)));
        }
        if stage == REGISTRATION_TOKEN {
            registration_token = auth.token.clone();
        }
        completed.push(stage.to_owned());
    }
    if flow_complete(flows, &completed) {
        // A registration's session stays, for a replay; any other is spent.
        if params.is_none() {
            cx.db.run(uia_sessions::delete(&cx.db, &session)?).await?;
        }
        return Ok(Completed { session, registration_token });
    }
    let completed_json = serde_json::to_string(&completed).unwrap_or_else(|_| "[]".into());
    let set = uia_sessions::set_completed(&cx.db, &session, &completed_json, registration_token.as_deref())?;
    cx.db.run(set).await?;
    Err(challenge(flows, completed, session, None))
}

async fn start_session(cx: &Ctx, method: &str, now: u64, params: Option<&str>) -> Result<String> {
    let id = new_session_id()?;
    let mut statements = vec![
        uia_sessions::delete_expired(&cx.db, now.saturating_sub(SESSION_LIFETIME_MS))?,
        uia_sessions::insert(&cx.db, &id, method, &cx.req.path, now)?,
    ];
    if let Some(params) = params {
        statements.push(uia_sessions::set_params(&cx.db, &id, params)?);
    }
    cx.db.batch(statements).await?;
    Ok(id)
}

fn challenge(flows: Flows, completed: Vec<String>, session: String, error: Option<MatrixError>) -> Error {
    Error::Uia(Box::new(UiaChallenge { flows, completed, session, error }))
}

/// Checks one stage. A wrong credential is the inner error, which the caller turns into a
/// challenge; credentials of another user than the account are a plain 403, as in Synapse.
async fn check_stage(
    cx: &Ctx,
    stage: &str,
    auth: &AuthData,
    account: Option<&UserId>,
) -> Result<std::result::Result<(), MatrixError>> {
    match stage {
        DUMMY => Ok(Ok(())),
        PASSWORD => {
            // The login limits: a stolen access token gives no more password guesses than /login.
            let now = now_ms();
            ratelimit::check(&cx.db, cx.config.rc_login, "login", cx.req.client_address(), now).await?;
            if let Some(account) = account {
                ratelimit::check(&cx.db, cx.config.rc_login, "login-account", account.as_str(), now).await?;
            }
            let wrong = || MatrixError::new(ErrorKind::Forbidden, "Invalid username or password");
            let named = resolve_login_user(auth.identifier.as_ref(), auth.user.as_ref(), &cx.config.server_name)?;
            let password = auth
                .password
                .as_deref()
                .ok_or_else(|| MatrixError::new(ErrorKind::MissingParam, "auth.password is required"))?;
            let Some(account) = account else { return Ok(Err(wrong())) };
            if named.as_deref() != Some(account) {
                return Err(MatrixError::new(ErrorKind::Forbidden, "The credentials are not this account's").into());
            }
            let Some(user) = users::get(&cx.db, account.as_str()).await? else { return Ok(Err(wrong())) };
            match user.password_hash {
                Some(hash) if password::verify(password, &hash) => Ok(Ok(())),
                _ => Ok(Err(wrong())),
            }
        }
        REGISTRATION_TOKEN => {
            let token = auth
                .token
                .as_deref()
                .ok_or_else(|| MatrixError::new(ErrorKind::MissingParam, "auth.token is required"))?;
            let started = cx.db.run(registration_tokens::start_use(&cx.db, token, now_ms())?).await?;
            match started {
                0 => Ok(Err(MatrixError::new(ErrorKind::Unauthorized, "Invalid registration token"))),
                _ => Ok(Ok(())),
            }
        }
        _ => Err(MatrixError::new(ErrorKind::Unknown, format!("Unsupported auth stage {stage:?}")).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOWS: Flows = &[&[DUMMY], &[PASSWORD, DUMMY]];

    fn done(stages: &[&str]) -> Vec<String> {
        stages.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_flow_is_complete_when_its_stages_are_done_in_order() {
        assert!(!flow_complete(FLOWS, &[]));
        assert!(flow_complete(FLOWS, &done(&[DUMMY])));
        assert!(!flow_complete(FLOWS, &done(&[PASSWORD])));
        assert!(flow_complete(FLOWS, &done(&[PASSWORD, DUMMY])));
        assert!(!flow_complete(&[&[PASSWORD, DUMMY]], &done(&[DUMMY, PASSWORD])));
    }

    #[test]
    fn only_the_next_stage_of_some_flow_is_expected() {
        assert!(stage_expected(FLOWS, &[], DUMMY));
        assert!(stage_expected(FLOWS, &[], PASSWORD));
        assert!(!stage_expected(FLOWS, &[], "m.login.recaptcha"));
        assert!(stage_expected(FLOWS, &done(&[PASSWORD]), DUMMY));
        assert!(!stage_expected(FLOWS, &done(&[PASSWORD]), PASSWORD));
    }

    #[test]
    fn challenge_body_has_flows_session_and_the_failure() {
        let fresh = UiaChallenge { flows: FLOWS, completed: vec![], session: "s1".into(), error: None }.body();
        assert_eq!(fresh["flows"], json!([{"stages": [DUMMY]}, {"stages": [PASSWORD, DUMMY]}]));
        assert_eq!(fresh["session"], "s1");
        assert_eq!(fresh["params"], json!({}));
        assert!(!fresh.contains_key("errcode"));
        assert_eq!(fresh["completed"], json!([]));

        let failed = UiaChallenge {
            flows: FLOWS,
            completed: done(&[PASSWORD]),
            session: "s1".into(),
            error: Some(MatrixError::new(ErrorKind::Forbidden, "Invalid password")),
        }
        .body();
        assert_eq!(failed["errcode"], "M_FORBIDDEN");
        assert_eq!(failed["completed"], json!([PASSWORD]));
    }
}
