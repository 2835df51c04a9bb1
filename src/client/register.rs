//! Account registration: `POST /register` (users and guests), `GET /register/available` and
//! `GET /register/m.login.registration_token/validity`.

use ruma_common::UserId;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::appservice::exclusive;
use crate::auth_blocking::{self, Subject};
use crate::client::session::{new_session, APPSERVICE_LOGIN};
use crate::context::Ctx;
use crate::error::{forbidden, invalid_param, missing_param, ErrorKind, MatrixError, Result};
use crate::http::{parse_json_object, Reply};
use crate::identifiers::{local_user_id, user_id_for_appservice, user_id_for_registration};
use crate::password;
use crate::ratelimit;
use crate::storage::{access_tokens, profiles, registration_tokens, users};
use crate::time::now_ms;
use crate::tokens::{new_guest_localpart, token_hash};
use crate::uia::{self, AuthData, Flows};

const FLOWS: Flows = &[&[uia::DUMMY]];
/// With `REGISTRATION_REQUIRES_TOKEN`, as Synapse: the token stage goes before the others.
const FLOWS_WITH_TOKEN: Flows = &[&[uia::REGISTRATION_TOKEN, uia::DUMMY]];
/// Synapse's limit; longer passwords only cost hashing time.
const MAX_PASSWORD_BYTES: usize = 512;

#[derive(Default, Deserialize)]
struct RegisterBody {
    /// `m.login.application_service`, for services registering their users.
    #[serde(rename = "type")]
    kind: Option<String>,
    auth: Option<AuthData>,
    username: Option<String>,
    password: Option<String>,
    device_id: Option<String>,
    initial_device_display_name: Option<String>,
    #[serde(default)]
    inhibit_login: bool,
    /// A guest's access token: the guest becomes this full user.
    guest_access_token: Option<String>,
}

pub async fn register(cx: Ctx) -> Result<Reply> {
    let guest = match cx.req.query("kind").unwrap_or("user") {
        "user" => false,
        "guest" => true,
        other => return Err(invalid_param(format!("Unknown kind {other:?}; expected user or guest"))),
    };
    if guest {
        return register_guest(cx).await;
    }
    let mut body: RegisterBody = cx.req.json()?;
    if body.kind.as_deref() == Some(APPSERVICE_LOGIN) {
        return register_for_service(cx, body).await;
    }
    if !cx.config.enable_registration {
        return Err(forbidden("Registration has been disabled"));
    }
    // Synapse checks once the auth is done; a full server refuses before anything starts.
    let newcomer = Subject::Newcomer { user_type: None, threepid: None };
    auth_blocking::check(&cx.db, &cx.config, &newcomer, None).await?;
    if body.password.as_ref().is_some_and(|p| p.len() > MAX_PASSWORD_BYTES) {
        return Err(invalid_param(format!("Password may not be longer than {MAX_PASSWORD_BYTES} bytes")));
    }
    // A session remembers its parameters and, once complete, its account: a request with only
    // `auth` takes the remembered ones, and a replay of a completed session logs in again.
    let session = body.auth.as_ref().and_then(|a| a.session.clone());
    let remembered = match &session {
        Some(id) => uia::remembered(&cx, id).await?,
        None => None,
    };
    let (stored_params, registered) = remembered.unwrap_or_default();
    if let Some(user_id) = registered {
        let user_id = UserId::parse(user_id).map_err(|e| crate::error::internal("stored user ID", e))?;
        let params: Params = stored_params.and_then(|p| serde_json::from_str(&p).ok()).unwrap_or_default();
        return log_in_again(cx, &user_id, params).await;
    }
    // A registration counts when it opens its auth session, before the session is stored (and
    // before its password is hashed); the round-trips of that session, and the registration
    // that completes it, count no more.
    let now = now_ms();
    if body.auth.as_ref().is_none_or(|auth| auth.session.is_none()) {
        ratelimit::check(&cx.db, cx.config.rc_registration, "register", cx.req.client_address(), now).await?;
    }
    let params = match body.has_parameters() {
        true => Params::of(&cx, &mut body).await?,
        false => stored_params.and_then(|p| serde_json::from_str(&p).ok()).unwrap_or_default(),
    };
    // Check the name before the auth dance, so that a client learns of a taken name at once.
    let requested = match (&params.guest_user_id, &params.username) {
        (Some(guest), _) => Some(UserId::parse(guest.as_str()).map_err(|e| crate::error::internal("guest ID", e))?),
        (None, Some(name)) => Some(available_user_id(&cx, &name.to_lowercase()).await?),
        (None, None) => None,
    };
    let params_json = serde_json::to_string(&params).map_err(|e| crate::error::internal("registration", e))?;
    let flows = if cx.config.registration_requires_token { FLOWS_WITH_TOKEN } else { FLOWS };
    let done = uia::authenticate_registration(&cx, body.auth.take(), flows, &params_json).await?;
    let hash = params.password_hash.clone().ok_or_else(|| missing_param("password is required"))?;
    // The token's use counts now that the registration completes; the last use goes to one.
    if let Some(token) = &done.registration_token {
        if cx.db.run(registration_tokens::complete_use(&cx.db, token)?).await? == 0 {
            return Err(MatrixError::new(ErrorKind::Unauthorized, "Invalid registration token").into());
        }
    }
    let user_id = match requested {
        Some(user_id) => user_id,
        None => local_user_id(&new_guest_localpart()?, &cx.config.server_name)?,
    };
    let reply = match params.guest_user_id.is_some() {
        true => upgrade_guest(&cx, &user_id, &hash, params.into_body()).await?,
        false => {
            let kind = users::NewUser::default();
            create_account(&cx, &user_id, Some(hash.as_str()), kind, params.into_body(), now).await?
        }
    };
    uia::registered(&cx, &done.session, user_id.as_str()).await?;
    Ok(reply)
}

/// What a registration asks for, as its auth session remembers it: the password only hashed.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Params {
    username: Option<String>,
    password_hash: Option<String>,
    device_id: Option<String>,
    initial_device_display_name: Option<String>,
    #[serde(default)]
    inhibit_login: bool,
    /// The guest who becomes this user, named by its access token.
    guest_user_id: Option<String>,
}

impl Params {
    async fn of(cx: &Ctx, body: &mut RegisterBody) -> Result<Self> {
        let guest_user_id = match body.guest_access_token.take() {
            Some(token) => Some(guest_to_upgrade(cx, &token, body.username.as_deref()).await?),
            None => None,
        };
        let password_hash = body.password.take().map(|p| password::hash(&p, cx.config.password_cost)).transpose()?;
        Ok(Params {
            guest_user_id,
            username: body.username.take(),
            password_hash,
            device_id: body.device_id.take(),
            initial_device_display_name: body.initial_device_display_name.take(),
            inhibit_login: body.inhibit_login,
        })
    }

    fn into_body(self) -> RegisterBody {
        RegisterBody {
            device_id: self.device_id,
            initial_device_display_name: self.initial_device_display_name,
            inhibit_login: self.inhibit_login,
            ..RegisterBody::default()
        }
    }
}

impl RegisterBody {
    /// Whether the request says anything beyond `auth`.
    fn has_parameters(&self) -> bool {
        self.username.is_some()
            || self.password.is_some()
            || self.device_id.is_some()
            || self.initial_device_display_name.is_some()
            || self.inhibit_login
            || self.guest_access_token.is_some()
    }
}

/// The guest behind `token`, which may become a full user under its own ID only, as in Synapse.
async fn guest_to_upgrade(cx: &Ctx, token: &str, username: Option<&str>) -> Result<String> {
    let owner = access_tokens::lookup(&cx.db, &token_hash(token), false).await?;
    let guest =
        owner.filter(|o| o.is_guest() && !o.is_deactivated()).ok_or_else(|| forbidden("Not a guest's token"))?;
    let localpart = guest.user_id.strip_prefix('@').and_then(|u| u.split(':').next()).unwrap_or_default();
    if username.is_some_and(|name| name.to_lowercase() != localpart) {
        return Err(forbidden("A guest may only register its own user ID"));
    }
    Ok(guest.user_id)
}

/// A guest becomes a full user with a password, and (unless `inhibit_login`) a new session.
async fn upgrade_guest(cx: &Ctx, user_id: &UserId, password_hash: &str, body: RegisterBody) -> Result<Reply> {
    let mut statements = vec![users::upgrade_guest(&cx.db, user_id.as_str(), password_hash)?];
    let mut reply = Map::new();
    reply.insert("user_id".into(), user_id.as_str().into());
    reply.insert("home_server".into(), cx.config.server_name.as_str().into());
    if !body.inhibit_login {
        let session = new_session(cx, user_id, body.device_id, body.initial_device_display_name.as_deref())?;
        statements.extend(session.statements);
        reply.insert("device_id".into(), session.device_id.into());
        reply.insert("access_token".into(), session.access_token.into());
    }
    cx.db.batch(statements).await?;
    Reply::json(&reply)
}

/// The answer to a replay of a completed registration: the same account, with a new session
/// unless the registration inhibited login, as Synapse answers.
async fn log_in_again(cx: Ctx, user_id: &UserId, params: Params) -> Result<Reply> {
    let mut reply = Map::new();
    reply.insert("user_id".into(), user_id.as_str().into());
    reply.insert("home_server".into(), cx.config.server_name.as_str().into());
    if !params.inhibit_login {
        let session = new_session(&cx, user_id, None, params.initial_device_display_name.as_deref())?;
        cx.db.batch(session.statements).await?;
        reply.insert("device_id".into(), session.device_id.into());
        reply.insert("access_token".into(), session.access_token.into());
    }
    Reply::json(&reply)
}

/// A service registers a user of its namespace: no password, no user-interactive auth.
async fn register_for_service(cx: Ctx, body: RegisterBody) -> Result<Reply> {
    let (_, service) = cx.appservice()?;
    let service = service.clone();
    let localpart = body.username.as_deref().ok_or_else(|| missing_param("username is required"))?;
    let user_id = user_id_for_appservice(&localpart.to_lowercase(), &cx.config.server_name)?;
    if !service.is_interested_in_user(user_id.as_str()) {
        return Err(exclusive::exclusive("Invalid user localpart for this application service"));
    }
    exclusive::check_user(&cx.db, cx.config.server_name.as_str(), user_id.as_str(), Some(service.id())).await?;
    let now = now_ms();
    if service.registration.rate_limited {
        ratelimit::check(&cx.db, cx.config.rc_registration, "register", cx.req.client_address(), now).await?;
    }
    let kind = users::NewUser { appservice_id: Some(service.id()), ..Default::default() };
    create_account(&cx, &user_id, None, kind, body, now).await
}

/// A guest gets an all-digit ID and a device straight away; it has no password.
async fn register_guest(cx: Ctx) -> Result<Reply> {
    if !cx.config.allow_guest_access {
        return Err(forbidden("Guest access is disabled"));
    }
    // Guests never count as active, but a full or disabled server takes no one new (as Synapse).
    let newcomer = Subject::Newcomer { user_type: None, threepid: None };
    auth_blocking::check(&cx.db, &cx.config, &newcomer, None).await?;
    ratelimit::check(&cx.db, cx.config.rc_registration, "register", cx.req.client_address(), now_ms()).await?;
    let body: RegisterBody =
        if cx.req.body.is_empty() { RegisterBody::default() } else { parse_json_object(&cx.req.body)? };
    // Twelve random digits collide rarely; try a few before giving up.
    for _ in 0..3 {
        let user_id = local_user_id(&new_guest_localpart()?, &cx.config.server_name)?;
        let session = new_session(&cx, &user_id, None, body.initial_device_display_name.as_deref())?;
        let mut statements = vec![users::insert(
            &cx.db,
            user_id.as_str(),
            None,
            &users::NewUser { is_guest: true, ..Default::default() },
            now_ms(),
        )?];
        statements.extend(session.statements);
        if cx.db.try_batch(statements).await?.is_some() {
            return Reply::json(&json!({
                "user_id": user_id,
                "home_server": cx.config.server_name,
                "device_id": session.device_id,
                "access_token": session.access_token,
            }));
        }
    }
    Err(crate::error::internal("guest registration", "three ID collisions in a row"))
}

/// `GET /register/m.login.registration_token/validity`.
pub async fn registration_token_validity(cx: Ctx) -> Result<Reply> {
    ratelimit::check(&cx.db, cx.config.rc_registration, "register-token", cx.req.client_address(), now_ms()).await?;
    if !cx.config.enable_registration {
        return Err(forbidden("Registration has been disabled"));
    }
    let token = cx.req.query("token").ok_or_else(|| missing_param("token is required"))?;
    let valid = registration_tokens::get(&cx.db, token).await?.is_some_and(|t| t.is_valid(now_ms()));
    Reply::json(&json!({ "valid": valid }))
}

pub async fn get_username_availability(cx: Ctx) -> Result<Reply> {
    ratelimit::check(&cx.db, cx.config.rc_registration, "register-available", cx.req.client_address(), now_ms())
        .await?;
    if !cx.config.enable_registration {
        return Err(forbidden("Registration has been disabled"));
    }
    let username = cx.req.query("username").ok_or_else(|| missing_param("username is required"))?;
    available_user_id(&cx, &username.to_lowercase()).await?;
    Reply::json(&json!({ "available": true }))
}

async fn available_user_id(cx: &Ctx, localpart: &str) -> Result<ruma_common::OwnedUserId> {
    let user_id = user_id_for_registration(localpart, &cx.config.server_name)?;
    exclusive::check_user(&cx.db, cx.config.server_name.as_str(), user_id.as_str(), None).await?;
    if users::exists(&cx.db, user_id.as_str()).await? {
        return Err(user_in_use());
    }
    Ok(user_id)
}

fn user_in_use() -> crate::error::Error {
    MatrixError::new(ErrorKind::UserInUse, "User ID already taken").into()
}

/// Creates the account, with its display name and, unless `inhibit_login`, a session, in one
/// batch; `M_USER_IN_USE` when the ID was taken first.
async fn create_account(
    cx: &Ctx,
    user_id: &UserId,
    password_hash: Option<&str>,
    kind: users::NewUser<'_>,
    body: RegisterBody,
    now: u64,
) -> Result<Reply> {
    let mut statements = vec![
        users::insert(&cx.db, user_id.as_str(), password_hash, &kind, now)?,
        profiles::set(&cx.db, user_id.as_str(), "displayname", &Value::from(user_id.localpart()).to_string())?,
    ];
    let session = if body.inhibit_login {
        None
    } else {
        let session = new_session(cx, user_id, body.device_id, body.initial_device_display_name.as_deref())?;
        statements.extend(session.statements);
        Some((session.device_id, session.access_token))
    };
    if cx.db.try_batch(statements).await?.is_none() {
        return Err(user_in_use());
    }
    let mut reply = Map::new();
    reply.insert("user_id".into(), user_id.as_str().into());
    reply.insert("home_server".into(), cx.config.server_name.as_str().into());
    if let Some((device_id, access_token)) = session {
        reply.insert("device_id".into(), device_id.into());
        reply.insert("access_token".into(), access_token.into());
    }
    Reply::json(&reply)
}
