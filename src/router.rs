//! The route table, each endpoint with its method, path and auth scheme, and the dispatcher that
//! turns a request into a reply through it.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use percent_encoding::percent_decode_str;
use worker::{Env, Method, Response};

use crate::activity;
use crate::admin;
use crate::auth;
use crate::client::{
    account, account_data, admin as client_admin, alias, appservice, create_room, cross_signing, device, directory,
    discovery, filter, key_backup, keys, legacy, media, membership, message, notifications, openid, presence, profile,
    push_rules, pushers, receipts, register, relations, room_read, room_send, session, sliding_sync, sync, tags,
    thirdparty, to_device, typing, upgrade, user_directory,
};
use crate::config::Config;
use crate::context::Ctx;
use crate::cost;
use crate::error::{internal, Error, ErrorKind, MatrixError, Result};
use crate::http::{Incoming, Reply};
use crate::storage::Db;
use crate::time::now_ms;

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone; no token is read.
    None,
    /// A user's access token; guests are refused.
    User,
    /// A user's access token; guests too, for the endpoints the spec opens to them.
    UserOrGuest,
    /// An application service's `as_token`; the requester is the service's sender.
    Appservice,
    /// Anyone, or an application service when the request carries an `as_token`
    /// (`/register` and `/login` of type `m.login.application_service`).
    NoneOrAppservice,
    /// A server admin's access token (the admin API); others get `M_FORBIDDEN`.
    Admin,
}

type Handler = fn(Ctx) -> Pin<Box<dyn Future<Output = Result<Reply>>>>;

pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub auth: Auth,
    /// The handler reads the body itself, as a stream (`Incoming::stream`), up to
    /// `MAX_UPLOAD_BYTES` rather than `MAX_REQUEST_BYTES`.
    pub streams_body: bool,
    handler: Handler,
}

macro_rules! method {
    (GET) => {
        Method::Get
    };
    (PUT) => {
        Method::Put
    };
    (POST) => {
        Method::Post
    };
    (DELETE) => {
        Method::Delete
    };
}

macro_rules! routes {
    ($($method:ident $path:literal $auth:ident $($stream:ident)? => $handler:path;)*) => {
        &[$(Route {
            method: method!($method),
            path: $path,
            auth: Auth::$auth,
            streams_body: streams!($($stream)?),
            handler: |cx| Box::pin($handler(cx)),
        },)*]
    };
}

macro_rules! streams {
    () => {
        false
    };
    (Stream) => {
        true
    };
}

/// Every endpoint of the server. Paths use the spec's parameter names.
pub static ROUTES: &[Route] = routes! {
    // Discovery and capabilities
    GET "/.well-known/matrix/client" None => discovery::get_client_well_known;
    GET "/.well-known/matrix/server" None => discovery::get_server_well_known;
    GET "/.well-known/matrix/support" None => discovery::get_support;
    GET "/_matrix/client/versions" None => discovery::get_supported_versions;
    GET "/_matrix/client/v3/capabilities" User => discovery::get_capabilities;
    // Registration
    POST "/_matrix/client/v3/register" NoneOrAppservice => register::register;
    GET "/_matrix/client/v3/register/available" None => register::get_username_availability;
    GET "/_matrix/client/v1/register/m.login.registration_token/validity" None => register::registration_token_validity;
    // Login and sessions
    GET "/_matrix/client/v3/login" None => session::get_login_types;
    POST "/_matrix/client/v3/login" NoneOrAppservice => session::login;
    POST "/_matrix/client/v3/logout" UserOrGuest => session::logout;
    POST "/_matrix/client/v3/logout/all" UserOrGuest => session::logout_all;
    GET "/_matrix/client/v3/account/whoami" UserOrGuest => session::whoami;
    // Account
    POST "/_matrix/client/v3/account/password" User => account::change_password;
    POST "/_matrix/client/v3/account/deactivate" User => account::deactivate;
    // Devices
    GET "/_matrix/client/v3/devices" UserOrGuest => device::get_devices;
    GET "/_matrix/client/v3/devices/{deviceId}" UserOrGuest => device::get_device;
    PUT "/_matrix/client/v3/devices/{deviceId}" UserOrGuest => device::update_device;
    DELETE "/_matrix/client/v3/devices/{deviceId}" User => device::delete_device;
    POST "/_matrix/client/v3/delete_devices" User => device::delete_devices;
    // Profile
    GET "/_matrix/client/v3/profile/{userId}" None => profile::get_profile;
    GET "/_matrix/client/v3/profile/{userId}/{keyName}" None => profile::get_profile_field;
    PUT "/_matrix/client/v3/profile/{userId}/{keyName}" UserOrGuest => profile::set_profile_field;
    DELETE "/_matrix/client/v3/profile/{userId}/{keyName}" UserOrGuest => profile::delete_profile_field;
    // Rooms: creation and events
    POST "/_matrix/client/v3/createRoom" User => create_room::create_room;
    PUT "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}" UserOrGuest => room_send::send_message_event;
    POST "/_matrix/client/v3/rooms/{roomId}/send/{eventType}" UserOrGuest => room_send::send_message_event;
    PUT "/_matrix/client/v3/rooms/{roomId}/state/{eventType}" User => room_send::send_state_event;
    PUT "/_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey?}" User => room_send::send_state_event;
    PUT "/_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}" User => room_send::redact_event;
    // Rooms: membership
    GET "/_matrix/client/v3/joined_rooms" UserOrGuest => membership::joined_rooms;
    POST "/_matrix/client/v3/join/{roomIdOrAlias}" UserOrGuest => membership::join_room_by_id_or_alias;
    POST "/_matrix/client/v3/rooms/{roomId}/join" UserOrGuest => membership::join_room_by_id;
    POST "/_matrix/client/v3/knock/{roomIdOrAlias}" User => membership::knock_room;
    POST "/_matrix/client/v3/rooms/{roomId}/invite" User => membership::invite_user;
    POST "/_matrix/client/v3/rooms/{roomId}/leave" UserOrGuest => membership::leave_room;
    POST "/_matrix/client/v3/rooms/{roomId}/forget" UserOrGuest => membership::forget_room;
    POST "/_matrix/client/v3/rooms/{roomId}/kick" User => membership::kick_user;
    POST "/_matrix/client/v3/rooms/{roomId}/ban" User => membership::ban_user;
    POST "/_matrix/client/v3/rooms/{roomId}/unban" User => membership::unban_user;
    // Rooms: reading state and events
    GET "/_matrix/client/v3/rooms/{roomId}/state" UserOrGuest => room_read::get_state_events;
    GET "/_matrix/client/v3/rooms/{roomId}/state/{eventType}" UserOrGuest => room_read::get_state_events_for_key;
    GET "/_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey?}" UserOrGuest => room_read::get_state_events_for_key;
    GET "/_matrix/client/v3/rooms/{roomId}/event/{eventId}" UserOrGuest => room_read::get_room_event;
    GET "/_matrix/client/v3/rooms/{roomId}/members" UserOrGuest => room_read::get_member_events;
    GET "/_matrix/client/v3/rooms/{roomId}/joined_members" UserOrGuest => room_read::joined_members;
    GET "/_matrix/client/v3/rooms/{roomId}/messages" UserOrGuest => message::get_message_events;
    GET "/_matrix/client/v3/rooms/{roomId}/context/{eventId}" UserOrGuest => message::get_context;
    GET "/_matrix/client/v1/rooms/{roomId}/timestamp_to_event" UserOrGuest => message::get_event_by_timestamp;
    GET "/_matrix/client/v1/rooms/{roomId}/relations/{eventId}" UserOrGuest => relations::get_relating_events;
    GET "/_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}" UserOrGuest => relations::get_relating_events_with_rel_type;
    GET "/_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}" UserOrGuest => relations::get_relating_events_with_rel_type_and_event_type;
    GET "/_matrix/client/v1/rooms/{roomId}/threads" UserOrGuest => relations::get_threads;
    // Room aliases and the directory
    GET "/_matrix/client/v3/directory/room/{roomAlias}" None => alias::get_alias;
    PUT "/_matrix/client/v3/directory/room/{roomAlias}" User => alias::create_alias;
    DELETE "/_matrix/client/v3/directory/room/{roomAlias}" User => alias::delete_alias;
    GET "/_matrix/client/v3/rooms/{roomId}/aliases" UserOrGuest => alias::get_room_aliases;
    GET "/_matrix/client/v3/publicRooms" None => directory::get_public_rooms;
    POST "/_matrix/client/v3/publicRooms" User => directory::get_public_rooms_filtered;
    GET "/_matrix/client/v3/directory/list/room/{roomId}" None => directory::get_room_visibility;
    PUT "/_matrix/client/v3/directory/list/room/{roomId}" User => directory::set_room_visibility;
    // Room upgrades
    POST "/_matrix/client/v3/rooms/{roomId}/upgrade" User => upgrade::upgrade_room;
    // Sync
    GET "/_matrix/client/v3/sync" UserOrGuest => sync::sync;
    POST "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync" User => sliding_sync::sync;
    // The deprecated event stream and initial syncs (`/events` also at r0, where Sytest calls it)
    GET "/_matrix/client/v3/events" UserOrGuest => legacy::get_events;
    GET "/_matrix/client/r0/events" UserOrGuest => legacy::get_events;
    GET "/_matrix/client/v3/initialSync" UserOrGuest => legacy::initial_sync;
    GET "/_matrix/client/v3/rooms/{roomId}/initialSync" UserOrGuest => legacy::room_initial_sync;
    // Filters, account data, room tags and send-to-device
    POST "/_matrix/client/v3/user/{userId}/filter" UserOrGuest => filter::create_filter;
    GET "/_matrix/client/v3/user/{userId}/filter/{filterId}" UserOrGuest => filter::get_filter;
    GET "/_matrix/client/v3/user/{userId}/account_data/{type}" User => account_data::get_account_data;
    PUT "/_matrix/client/v3/user/{userId}/account_data/{type}" User => account_data::set_account_data;
    GET "/_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}" User => account_data::get_room_account_data;
    PUT "/_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}" User => account_data::set_room_account_data;
    GET "/_matrix/client/v3/user/{userId}/rooms/{roomId}/tags" User => tags::get_room_tags;
    PUT "/_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}" User => tags::set_room_tag;
    DELETE "/_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}" User => tags::delete_room_tag;
    PUT "/_matrix/client/v3/sendToDevice/{eventType}/{txnId}" UserOrGuest => to_device::send_to_device;
    // Receipts, read markers and typing
    POST "/_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}" User => receipts::post_receipt;
    POST "/_matrix/client/v3/rooms/{roomId}/read_markers" User => receipts::set_read_marker;
    PUT "/_matrix/client/v3/rooms/{roomId}/typing/{userId}" User => typing::set_typing;
    // Presence
    GET "/_matrix/client/v3/presence/{userId}/status" UserOrGuest => presence::get_presence;
    PUT "/_matrix/client/v3/presence/{userId}/status" UserOrGuest => presence::set_presence;
    // Synapse's `ModuleApi.send_local_online_presence_to`; for services until there are admins.
    POST "/_stratus/admin/v1/send_online_presence_to" Admin => presence::send_online_presence_to;
    // Push notifications
    GET "/_matrix/client/v3/notifications" User => notifications::get_notifications;
    GET "/_matrix/client/v3/pushers" User => pushers::get_pushers;
    POST "/_matrix/client/v3/pushers/set" User => pushers::set_pusher;
    // Push rules
    GET "/_matrix/client/v3/pushrules/" User => push_rules::get_pushrules_all;
    GET "/_matrix/client/v3/pushrules/{scope}/" User => push_rules::get_pushrules_global_scope;
    GET "/_matrix/client/v3/pushrules/{scope}/{kind}/" User => push_rules::get_pushrules_kind;
    GET "/_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}" User => push_rules::get_pushrule;
    PUT "/_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}" User => push_rules::set_pushrule;
    DELETE "/_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}" User => push_rules::delete_pushrule;
    GET "/_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}/enabled" User => push_rules::get_pushrule_enabled;
    PUT "/_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}/enabled" User => push_rules::set_pushrule_enabled;
    GET "/_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}/actions" User => push_rules::get_pushrule_actions;
    PUT "/_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}/actions" User => push_rules::set_pushrule_actions;
    // Paths of the push rules API that name no rule or no attribute: 400, as in Synapse.
    PUT "/_matrix/client/v3/pushrules/" User => push_rules::incomplete_path;
    GET "/_matrix/client/v3/pushrules/{scope}" User => push_rules::incomplete_path;
    PUT "/_matrix/client/v3/pushrules/{scope}" User => push_rules::incomplete_path;
    PUT "/_matrix/client/v3/pushrules/{scope}/" User => push_rules::incomplete_path;
    GET "/_matrix/client/v3/pushrules/{scope}/{kind}" User => push_rules::incomplete_path;
    PUT "/_matrix/client/v3/pushrules/{scope}/{kind}" User => push_rules::incomplete_path;
    PUT "/_matrix/client/v3/pushrules/{scope}/{kind}/" User => push_rules::incomplete_path;
    GET "/_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}/{attr}" User => push_rules::incomplete_path;
    PUT "/_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}/{attr}" User => push_rules::incomplete_path;
    // End-to-end encryption: keys
    POST "/_matrix/client/v3/keys/upload" UserOrGuest => keys::upload_keys;
    POST "/_matrix/client/v3/keys/query" UserOrGuest => keys::get_keys;
    POST "/_matrix/client/v3/keys/claim" UserOrGuest => keys::claim_keys;
    GET "/_matrix/client/v3/keys/changes" UserOrGuest => keys::get_key_changes;
    POST "/_matrix/client/v3/keys/device_signing/upload" User => cross_signing::upload_signing_keys;
    POST "/_matrix/client/v3/keys/signatures/upload" UserOrGuest => cross_signing::upload_signatures;
    // The unstable paths of cross-signing, which clients of Matrix 1.0 still call (as Synapse serves them)
    POST "/_matrix/client/unstable/keys/device_signing/upload" User => cross_signing::upload_signing_keys;
    POST "/_matrix/client/unstable/keys/signatures/upload" UserOrGuest => cross_signing::upload_signatures;
    // End-to-end encryption: server-side key backups
    POST "/_matrix/client/v3/room_keys/version" User => key_backup::create_backup_version;
    GET "/_matrix/client/v3/room_keys/version" User => key_backup::get_latest_backup_info;
    GET "/_matrix/client/v3/room_keys/version/{version}" User => key_backup::get_backup_info;
    PUT "/_matrix/client/v3/room_keys/version/{version}" User => key_backup::update_backup_version;
    DELETE "/_matrix/client/v3/room_keys/version/{version}" User => key_backup::delete_backup_version;
    PUT "/_matrix/client/v3/room_keys/keys" User => key_backup::add_backup_keys;
    GET "/_matrix/client/v3/room_keys/keys" User => key_backup::get_backup_keys;
    DELETE "/_matrix/client/v3/room_keys/keys" User => key_backup::delete_backup_keys;
    PUT "/_matrix/client/v3/room_keys/keys/{roomId}" User => key_backup::add_backup_keys_for_room;
    GET "/_matrix/client/v3/room_keys/keys/{roomId}" User => key_backup::get_backup_keys_for_room;
    DELETE "/_matrix/client/v3/room_keys/keys/{roomId}" User => key_backup::delete_backup_keys_for_room;
    PUT "/_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}" User => key_backup::add_backup_keys_for_session;
    GET "/_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}" User => key_backup::get_backup_keys_for_session;
    DELETE "/_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}" User => key_backup::delete_backup_keys_for_session;
    // The user directory
    POST "/_matrix/client/v3/user_directory/search" User => user_directory::search_user_directory;
    // OpenID
    POST "/_matrix/client/v3/user/{userId}/openid/request_token" User => openid::request_openid_token;
    GET "/_matrix/federation/v1/openid/userinfo" None => openid::get_openid_userinfo;
    // Application services
    POST "/_matrix/client/v1/appservice/{appserviceId}/ping" Appservice => appservice::ping;
    // Third-party networks, through the application services that bridge them
    GET "/_matrix/client/v3/thirdparty/protocols" UserOrGuest => thirdparty::get_protocols;
    GET "/_matrix/client/v3/thirdparty/protocol/{protocol}" UserOrGuest => thirdparty::get_protocol_metadata;
    GET "/_matrix/client/v3/thirdparty/location/{protocol}" UserOrGuest => thirdparty::query_location_by_protocol;
    GET "/_matrix/client/v3/thirdparty/user/{protocol}" UserOrGuest => thirdparty::query_user_by_protocol;
    GET "/_matrix/client/v3/thirdparty/location" UserOrGuest => thirdparty::query_location_by_alias;
    GET "/_matrix/client/v3/thirdparty/user" UserOrGuest => thirdparty::query_user_by_id;
    // Server keys
    GET "/_matrix/key/v2/server" None => crate::server_keys::get_server_keys;
    // Content repository (URL previews are absent: 404 M_UNRECOGNIZED)
    POST "/_matrix/media/v3/upload" User Stream => media::create_content;
    POST "/_matrix/media/v1/create" User => media::create_mxc_uri;
    PUT "/_matrix/media/v3/upload/{serverName}/{mediaId}" User Stream => media::upload_content_to_mxc;
    GET "/_matrix/client/v1/media/config" UserOrGuest => media::get_config;
    GET "/_matrix/client/v1/media/download/{serverName}/{mediaId}" UserOrGuest => media::get_content;
    GET "/_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName?}" UserOrGuest => media::get_content_as_filename;
    GET "/_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}" UserOrGuest => media::get_content_thumbnail;
    // The unauthenticated media endpoints, frozen: nothing uploaded here is served through them.
    GET "/_matrix/media/v3/config" User => media::get_config;
    GET "/_matrix/media/v3/download/{serverName}/{mediaId}" None => media::frozen;
    GET "/_matrix/media/v3/download/{serverName}/{mediaId}/{fileName}" None => media::frozen;
    GET "/_matrix/media/v3/thumbnail/{serverName}/{mediaId}" None => media::frozen;
    // The Client-Server API's whois: the user itself or a server admin
    GET "/_matrix/client/v3/admin/whois/{userId}" User => client_admin::whois;
    // The local commands' way into a running dev server's D1 (off unless `scripts/serve` set it up)
    POST "/_stratus/local/v1/query" None => admin::local_query::query;
    // The admin API (Synapse's)
    GET "/_synapse/admin/v1/server_version" None => admin::server_version;
    GET "/_synapse/admin/v1/register" None => admin::register::get_nonce;
    POST "/_synapse/admin/v1/register" None => admin::register::register;
    GET "/_synapse/admin/v2/users" Admin => admin::users::list_users;
    GET "/_synapse/admin/v2/users/{userId}" Admin => admin::users::get_user;
    PUT "/_synapse/admin/v2/users/{userId}" Admin => admin::users::put_user;
    POST "/_synapse/admin/v1/users/{userId}/login" Admin => admin::users::puppet_login;
    POST "/_synapse/admin/v1/deactivate/{userId}" Admin => admin::users::deactivate;
    POST "/_synapse/admin/v1/reset_password/{userId}" Admin => admin::users::reset_password;
    GET "/_synapse/admin/v1/whois/{userId}" Admin => admin::users::whois;
    POST "/_synapse/admin/v1/send_server_notice" Admin => crate::server_notices::send_server_notice;
    GET "/_synapse/admin/v1/rooms" Admin => admin::rooms::list_rooms;
    GET "/_synapse/admin/v1/rooms/{roomId}" Admin => admin::rooms::get_room;
    GET "/_synapse/admin/v1/rooms/{roomId}/members" Admin => admin::rooms::get_room_members;
    DELETE "/_synapse/admin/v2/rooms/{roomId}" Admin => admin::rooms::delete_room;
    GET "/_synapse/admin/v2/rooms/{roomId}/delete_status" Admin => admin::rooms::delete_status_by_room;
    GET "/_synapse/admin/v2/rooms/delete_status/{deleteId}" Admin => admin::rooms::delete_status_by_id;
    POST "/_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}" Admin => admin::media::quarantine;
    POST "/_synapse/admin/v1/media/unquarantine/{serverName}/{mediaId}" Admin => admin::media::unquarantine;
    POST "/_synapse/admin/v1/media/protect/{mediaId}" Admin => admin::media::protect;
    POST "/_synapse/admin/v1/media/unprotect/{mediaId}" Admin => admin::media::unprotect;
    POST "/_synapse/admin/v1/room/{roomId}/media/quarantine" Admin => admin::media::quarantine_room_media;
    GET "/_synapse/admin/v1/room/{roomId}/media" Admin => admin::media::list_room_media;
    POST "/_synapse/admin/v1/user/{userId}/media/quarantine" Admin => admin::media::quarantine_user_media;
    GET "/_synapse/admin/v1/registration_tokens" Admin => admin::registration_tokens::list;
    POST "/_synapse/admin/v1/registration_tokens/new" Admin => admin::registration_tokens::create;
    GET "/_synapse/admin/v1/registration_tokens/{token}" Admin => admin::registration_tokens::get;
    PUT "/_synapse/admin/v1/registration_tokens/{token}" Admin => admin::registration_tokens::update;
    DELETE "/_synapse/admin/v1/registration_tokens/{token}" Admin => admin::registration_tokens::delete;
};

/// What the table says of a method and path.
#[derive(Debug, PartialEq)]
pub enum Lookup<'a> {
    Found(&'a Route, Vec<(&'static str, String)>),
    MethodNotAllowed,
    NotFound,
    BadPath,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.method == other.method && self.path == other.path
    }
}

/// Finds the route for a method and a raw (percent-encoded) path.
pub fn lookup<'a>(routes: &'a [Route], method: &Method, path: &str) -> Lookup<'a> {
    let mut segments = Vec::new();
    for raw in path.split('/') {
        match percent_decode_str(raw).decode_utf8() {
            Ok(s) => segments.push(s.into_owned()),
            Err(_) => return Lookup::BadPath,
        }
    }
    let mut path_known = false;
    for route in routes {
        let Some(params) = match_path(route.path, &segments) else { continue };
        if &route.method == method {
            return Lookup::Found(route, params);
        }
        path_known = true;
    }
    if path_known {
        Lookup::MethodNotAllowed
    } else {
        Lookup::NotFound
    }
}

fn match_path(pattern: &'static str, segments: &[String]) -> Option<Vec<(&'static str, String)>> {
    let mut params = Vec::new();
    let mut pattern_segments = pattern.split('/');
    for segment in segments {
        let expected = pattern_segments.next()?;
        match expected.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            // `{name?}` may be empty: a state key, as in `/state/m.room.name/`.
            Some(name) if name.ends_with('?') => params.push((&name[..name.len() - 1], segment.clone())),
            Some(name) if !segment.is_empty() => params.push((name, segment.clone())),
            Some(_) => return None,
            None if expected == segment => {}
            None => return None,
        }
    }
    pattern_segments.next().is_none().then_some(params)
}

/// Serves one request through the route table.
pub async fn handle(req: worker::Request, env: Env, worker_ctx: worker::Context) -> worker::Result<Response> {
    let retry_after = |e: &Error| match e.matrix().map(|m| m.kind) {
        Some(ErrorKind::LimitExceeded { retry_after_ms }) => Some(retry_after_ms),
        _ => None,
    };
    let cost_headers = Config::get(&env).is_ok_and(|c| c.cost_headers);
    let (dispatched, counts) = cost::measure(dispatch(req, env, Rc::new(worker_ctx)));
    let response = match dispatched.await {
        Ok(reply) => reply.into_response(None),
        Err(e) => Reply::error(&e).into_response(retry_after(&e)),
    };
    match response {
        Ok(response) if cost_headers => {
            let headers = response.headers().clone();
            headers.set("server-timing", &counts.server_timing())?;
            Ok(response.with_headers(headers))
        }
        response => response,
    }
}

async fn dispatch(req: worker::Request, env: Env, worker_ctx: Rc<worker::Context>) -> Result<Reply> {
    let config = Config::get(&env).map_err(|message| {
        // Not a storage detail: the operator needs to see which setting is wrong.
        crate::log::error(&format!("configuration: {message}"));
        MatrixError::new(ErrorKind::Internal, format!("Server misconfigured: {message}"))
    })?;
    let url = req.url().map_err(|e| internal("request URL", e))?;
    let (route, params) = match lookup(ROUTES, &req.method(), url.path()) {
        Lookup::Found(route, params) => (route, params),
        Lookup::MethodNotAllowed => {
            return Err(
                MatrixError::new(ErrorKind::MethodNotAllowed, "This endpoint does not support this method").into()
            )
        }
        Lookup::NotFound => return Err(MatrixError::new(ErrorKind::Unrecognized, "Unrecognized request").into()),
        Lookup::BadPath => {
            return Err(MatrixError::new(ErrorKind::InvalidParam, "The path is not valid percent-encoded UTF-8").into())
        }
    };
    let max_body = if route.streams_body { config.max_upload_bytes } else { config.max_request_bytes as u64 };
    let req = Incoming::read(req, max_body, route.streams_body).await?;
    let db = Db::new(&env)?;
    let requester = match route.auth {
        Auth::None => None,
        Auth::User | Auth::UserOrGuest | Auth::Admin => {
            let now = now_ms();
            let server_name = config.server_name.as_str();
            let (requester, due) = auth::authenticate(&db, server_name, &req, now, &config.mau).await?;
            if requester.is_guest && route.auth != Auth::UserOrGuest {
                return Err(
                    MatrixError::new(ErrorKind::GuestAccessForbidden, "Guest access is not allowed here").into()
                );
            }
            // Keep "last seen", client addresses and monthly activity roughly current without a
            // write on every request.
            let record = activity::record(&db, &config, &requester, &req, due.as_deref(), now)?;
            if !record.is_empty() {
                let db = Db::new(&env)?;
                worker_ctx.wait_until(async move {
                    let _ = db.batch(record).await;
                });
            }
            if route.auth == Auth::Admin && !requester.is_admin {
                return Err(MatrixError::new(ErrorKind::Forbidden, "You are not a server admin").into());
            }
            Some(requester)
        }
        Auth::Appservice => Some(auth::authenticate_service(&db, config.server_name.as_str(), &req).await?),
        Auth::NoneOrAppservice => match auth::access_token(&req) {
            Ok(Some(_)) => auth::authenticate_service(&db, config.server_name.as_str(), &req).await.ok(),
            _ => None,
        },
    };
    (route.handler)(Ctx { config, env, db, req, params, requester, worker_ctx }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(method: Method, path: &str) -> Lookup<'static> {
        lookup(ROUTES, &method, path)
    }

    #[test]
    fn literal_and_parameter_segments() {
        match find(Method::Get, "/_matrix/client/v3/account/whoami") {
            Lookup::Found(r, params) => {
                assert_eq!(r.path, "/_matrix/client/v3/account/whoami");
                assert!(params.is_empty());
            }
            other => panic!("{other:?}"),
        }
        match find(Method::Put, "/_matrix/client/v3/profile/%40alice%3Aexample.org/displayname") {
            Lookup::Found(r, params) => {
                assert_eq!(r.auth, Auth::UserOrGuest);
                assert_eq!(
                    params,
                    vec![("userId", "@alice:example.org".to_owned()), ("keyName", "displayname".to_owned())]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_paths_wrong_methods_and_bad_encoding() {
        assert_eq!(find(Method::Get, "/_matrix/client/v3/nonsense"), Lookup::NotFound);
        assert_eq!(find(Method::Get, "/_matrix/client/v3/account/whoami/extra"), Lookup::NotFound);
        assert_eq!(find(Method::Get, "/_matrix/client/v3/devices/"), Lookup::NotFound);
        assert_eq!(find(Method::Delete, "/_matrix/client/v3/account/whoami"), Lookup::MethodNotAllowed);
        assert_eq!(find(Method::Get, "/_matrix/client/v3/devices/%ff"), Lookup::BadPath);
    }

    #[test]
    fn the_table_has_no_duplicate_or_shadowed_routes() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(!(a.method == b.method && a.path == b.path), "{a:?} twice");
            }
            // Each route is reachable: a concrete path built from it finds it and not another.
            let concrete: String =
                a.path.split('/').map(|s| if s.starts_with('{') { "x" } else { s }).collect::<Vec<_>>().join("/");
            match lookup(ROUTES, &a.method, &concrete) {
                Lookup::Found(found, _) => assert_eq!(found, a, "{concrete} is shadowed"),
                other => panic!("{concrete}: {other:?}"),
            }
        }
    }
}
