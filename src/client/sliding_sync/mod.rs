//! Simplified sliding sync (MSC4186): `POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync`.
//!
//! A request names lists (ranges over the user's rooms, filtered and ordered by recency) and
//! room subscriptions; the response carries each list's count and windows, and the rooms in them
//! that changed since the connection (user, device, `conn_id`) last sent them, all of a room the
//! first time. What each connection was sent is kept per position in D1 ([`connection`]); an
//! unknown `pos` is `M_UNKNOWN_POS`. The streams and the long poll are `/sync`'s: a pass reads D1
//! from the previous response's stream positions up to the heads it reads at its start, and with
//! nothing to say it waits in the user's `UserSync` object, registered with the positions it
//! covered, so that no wake-up is lost. Every read covers all the rooms of the response in one
//! query, so a pass costs a number of D1 queries that does not grow with the rooms.

mod connection;
mod extensions;
mod lists;
mod request;
mod rooms;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::durable_objects::user_sync::{self, Positions, Waited};
use crate::error::{internal, Result};
use crate::http::Reply;
use crate::room::versions::RoomVersion;
use crate::storage::current_state::{self, UserMembership};
use crate::storage::sliding_sync_positions::{self, Connection, NewPos};
use crate::storage::{account_data, rows, streams, typing};
use crate::time::now_ms;

use super::room_access::parse_limit;
use super::sync::{expire_typing, parse_sync_token, sync_token, EXPIRY_SLACK_MS};
use connection::{lists_digest, parse_pos, unknown_pos, ConnState};
use extensions::Scope;
use lists::Candidate;
use request::{Body, RoomConfig};

/// A stream position no change reaches: a waiter covers the streams it does not serve with it.
const NEVER: u64 = 1 << 53;
/// D1 passes one request may make: the first, and one after a wake-up, within the free plan's 50
/// queries (a first pass with every extension makes about 22, a later one about 12). A second
/// wake-up (the first may be a fresh `UserSync` object's) answers with the same `pos`, and the
/// client's next request reads what woke it.
const MAX_PASSES: usize = 2;
/// Connections unused this long are forgotten.
const CONNECTION_TTL_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// The position a request continues from.
struct Previous {
    pos: u64,
    streams: Positions,
    state: ConnState,
}

/// What does not change between the passes of one request: the user's `m.direct` rooms,
/// ignored users, and room tags (read only when a list filters by them).
struct Statics {
    dm_rooms: BTreeSet<String>,
    ignored: Vec<String>,
    tags: BTreeMap<String, Vec<String>>,
}

impl Statics {
    async fn load(cx: &Ctx, user: &str, body: &Body) -> Result<Statics> {
        let uses_tags = body.lists.values().any(|l| l.filters.as_ref().is_some_and(request::Filters::uses_tags));
        let tags = async {
            match uses_tags {
                true => account_data::room_entries_of_type(&cx.db, user, "m.tag").await,
                false => Ok(Vec::new()),
            }
        };
        let users = [user];
        let (rows, tag_rows) = futures::try_join!(
            account_data::global_of_users(&cx.db, &users, &["m.direct", "m.ignored_user_list"]),
            tags
        )?;
        let mut statics = Statics { dm_rooms: BTreeSet::new(), ignored: Vec::new(), tags: BTreeMap::new() };
        for (room_id, content) in tag_rows {
            let content: Value = serde_json::from_str(&content).unwrap_or_default();
            let names = content.get("tags").and_then(Value::as_object).into_iter().flat_map(|m| m.keys().cloned());
            statics.tags.insert(room_id, names.collect());
        }
        for (_, kind, content) in rows {
            let content: Value = serde_json::from_str(&content).unwrap_or_default();
            match kind.as_str() {
                "m.direct" => {
                    let rooms = content.as_object().into_iter().flat_map(|m| m.values()).filter_map(Value::as_array);
                    statics.dm_rooms.extend(rooms.flatten().filter_map(Value::as_str).map(str::to_owned));
                }
                _ => {
                    let users = content.get("ignored_users").and_then(Value::as_object);
                    statics.ignored.extend(users.into_iter().flat_map(|m| m.keys().cloned()));
                }
            }
        }
        Ok(statics)
    }
}

pub async fn sync(cx: Ctx) -> Result<Reply> {
    let body: Body = cx.req.json_or_empty()?;
    body.check()?;
    let timeout_ms = parse_limit(cx.req.query("timeout"), 0, u64::MAX >> 11)?;
    let set_presence = cx.req.query("set_presence");
    let requester = cx.requester()?;
    let (user, device) = (requester.user_id.to_string(), requester.device_id.clone());
    let conn = Connection { user_id: &user, device_id: &device, conn_id: body.conn_id.as_deref().unwrap_or("") };
    let pos = cx.req.query("pos").map(parse_pos).transpose()?;
    let previous = async {
        let Some(pos) = pos else { return Ok(None) };
        let stored = sliding_sync_positions::get(&cx.db, conn, pos).await?.ok_or_else(unknown_pos)?;
        let streams = parse_sync_token(&stored.streams)?;
        Ok(Some(Previous { pos, streams, state: ConnState::from_json(&stored.rooms)? }))
    };
    let (previous, statics, affects_presence) = futures::try_join!(
        previous,
        Statics::load(&cx, &user, &body),
        super::presence::on_sync(&cx, &user, &device, set_presence),
    )?;
    let previous: Option<Previous> = previous;

    let mut pass = build(&cx, &body, &user, &device, previous.as_ref(), &statics).await?;
    if let (Some(prev), true) = (&previous, timeout_ms > 0) {
        let deadline = now_ms() + timeout_ms.min(user_sync::MAX_WAIT_MS);
        let mut passes = 1;
        while pass.is_empty(prev) {
            let now = now_ms();
            // Typing that runs out is a change too: look again when the first one does.
            let expiry = match body.extensions.typing.as_ref().is_some_and(|t| t.is_enabled()) {
                true => typing::next_expiry(&cx.db, &pass.joined, now).await?,
                false => None,
            };
            let until = expiry.map_or(deadline, |at| deadline.min(at + EXPIRY_SLACK_MS));
            if until <= now {
                break;
            }
            let waited = user_sync::wait(&cx.env, &user, &device, pass.covered, until - now, affects_presence).await?;
            let timed_out = waited == Waited::TimedOut && until >= deadline;
            if waited == Waited::Superseded || timed_out || passes >= MAX_PASSES {
                break;
            }
            pass = build(&cx, &body, &user, &device, previous.as_ref(), &statics).await?;
            passes += 1;
        }
    }
    let pos = match &previous {
        // Nothing was sent: the connection stays where it was.
        Some(prev) if pass.is_empty(prev) => prev.pos,
        _ => {
            let now = now_ms();
            let statements = sliding_sync_positions::advance(
                &cx.db,
                conn,
                previous.as_ref().map(|p| p.pos),
                &sync_token(&pass.upto),
                &pass.state.to_json()?,
                now,
                now.saturating_sub(CONNECTION_TTL_MS),
            )?;
            let results = cx.db.batch_rows(statements).await.map_err(|e| internal("sliding sync", format!("{e:?}")))?;
            let inserted = results.first().map(rows::<NewPos>).transpose()?.unwrap_or_default();
            inserted.first().map(|r| r.pos as u64).ok_or_else(|| internal("sliding sync", "no position stored"))?
        }
    };
    let mut response = Map::new();
    response.insert("pos".into(), json!(pos.to_string()));
    if let Some(txn_id) = &body.txn_id {
        response.insert("txn_id".into(), json!(txn_id));
    }
    response.insert("lists".into(), Value::Object(pass.lists));
    response.insert("rooms".into(), Value::Object(pass.rooms));
    response.insert("extensions".into(), Value::Object(pass.extensions));
    Reply::json(&Value::Object(response))
}

/// One pass over D1 and what it found.
struct Pass {
    /// The stream positions the response covers.
    upto: Positions,
    /// What a waiter for news beyond this pass covers.
    covered: Positions,
    lists: Map<String, Value>,
    rooms: Map<String, Value>,
    extensions: Map<String, Value>,
    /// Whether an extension has news.
    news: bool,
    /// The connection's memory after this response.
    state: ConnState,
    /// The joined rooms of the response, whose typing may run out.
    joined: Vec<String>,
}

impl Pass {
    /// Nothing new since `prev`: no room, no extension news, the same lists.
    fn is_empty(&self, prev: &Previous) -> bool {
        self.rooms.is_empty() && !self.news && self.state.lists == prev.state.lists
    }
}

/// Which of the user's rooms lists may hold: every membership but a forgotten room's, an ignored
/// user's invite, and a room the user left themselves (unless since the previous response, to
/// tell the client), as Synapse's `filter_membership_for_sync`.
fn listable(m: &UserMembership, user: &str, from: Option<&Positions>, ignored: &[String]) -> bool {
    if m.is_forgotten() {
        return false;
    }
    match m.membership.as_str() {
        "join" | "knock" | "ban" => true,
        "invite" => !ignored.contains(&m.sender),
        "leave" => m.sender != user || from.is_some_and(|f| m.position() > f.events),
        _ => false,
    }
}

async fn build(
    cx: &Ctx,
    body: &Body,
    user: &str,
    device: &str,
    previous: Option<&Previous>,
    statics: &Statics,
) -> Result<Pass> {
    let from = previous.map(|p| &p.streams);
    // The heads first, then what they bound: anything newer is left for the next response.
    let (heads, expired_typing, memberships) = futures::try_join!(
        streams::heads(&cx.db),
        expire_typing(cx),
        current_state::memberships_of_user(&cx.db, user)
    )?;
    let heads = Positions::from_array(heads);
    let upto = Positions { typing: expired_typing.unwrap_or(heads.typing), ..heads };
    let memberships: Vec<&UserMembership> = memberships.iter().filter(|m| m.position() <= upto.events).collect();

    // The rooms lists may hold, and the subscribed ones the user has a membership in.
    let in_lists: BTreeSet<&str> =
        memberships.iter().filter(|m| listable(m, user, from, &statics.ignored)).map(|m| m.room_id.as_str()).collect();
    let considered: Vec<&&UserMembership> = memberships
        .iter()
        .filter(|m| {
            in_lists.contains(m.room_id.as_str())
                || (!m.is_forgotten() && body.room_subscriptions.contains_key(&m.room_id))
        })
        .collect();
    let bounds: Vec<(String, u64)> = considered
        .iter()
        .map(|m| (m.room_id.clone(), if m.membership == "join" { upto.events } else { m.position() }))
        .collect();
    let spaces: Vec<String> =
        body.lists.values().flat_map(|l| l.filters.iter().flat_map(|f| f.spaces.iter().flatten())).cloned().collect();
    let (facts, children) = futures::try_join!(
        current_state::room_facts(&cx.db, &bounds, user),
        current_state::space_children(&cx.db, &spaces)
    )?;
    let children: BTreeSet<String> = children.into_iter().collect();
    let facts: BTreeMap<&str, &current_state::RoomFacts> = facts.iter().map(|f| (f.room_id.as_str(), f)).collect();
    let mut candidates: BTreeMap<&str, (Candidate, Option<RoomVersion>)> = BTreeMap::new();
    for m in &considered {
        let Some(f) = facts.get(m.room_id.as_str()) else { continue };
        let is_direct = f.is_direct.as_ref().is_some_and(|v| v == &json!(1) || v == &json!(true));
        let candidate = Candidate {
            room_id: m.room_id.clone(),
            membership: m.membership.clone(),
            membership_at: m.position(),
            bump: match m.membership.as_str() {
                "join" => f.bump.map_or(m.position(), |b| b as u64),
                _ => m.position(),
            },
            is_dm: statics.dm_rooms.contains(&m.room_id) || (m.membership == "invite" && is_direct),
            encrypted: f.encrypted != 0.0,
            room_type: f.room_type.as_ref().and_then(Value::as_str).map(str::to_owned),
            tags: statics.tags.get(&m.room_id).cloned().unwrap_or_default(),
        };
        let version = f.room_version.as_deref().and_then(|v| RoomVersion::parse(v).ok());
        candidates.insert(m.room_id.as_str(), (candidate, version));
    }

    // Each list's rooms, order and windows, and what the rooms in them are asked for.
    let mut lists = Map::new();
    let mut windows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut configs: BTreeMap<String, RoomConfig> = BTreeMap::new();
    let no_filters = request::Filters::default();
    for (name, list) in &body.lists {
        let filters = list.filters.as_ref().unwrap_or(&no_filters);
        let mut rooms: Vec<&Candidate> = candidates
            .iter()
            .filter(|(id, _)| in_lists.contains(*id))
            .map(|(_, (c, _))| c)
            .filter(|c| lists::passes(c, filters, &children))
            .collect();
        lists::sort(&mut rooms);
        let (answer, covered) = lists::window(&rooms, &list.ranges);
        for id in &covered {
            configs.entry(id.clone()).or_default().merge(&list.params);
        }
        lists.insert(name.clone(), answer);
        windows.insert(name.clone(), covered);
    }
    let mut subscribed = Vec::new();
    for (room_id, params) in &body.room_subscriptions {
        if candidates.contains_key(room_id.as_str()) {
            configs.entry(room_id.clone()).or_default().merge(params);
            subscribed.push(room_id.clone());
        }
    }
    let wanted: Vec<rooms::Wanted> = configs
        .iter()
        .filter_map(|(id, config)| {
            let (room, version) = candidates.get(id.as_str())?;
            Some(rooms::Wanted { room, config, version: version.clone()? })
        })
        .collect();
    let joined: Vec<String> =
        wanted.iter().filter(|w| w.room.membership == "join").map(|w| w.room.room_id.clone()).collect();
    let prev_state = previous.map(|p| &p.state);
    let ext = &body.extensions;
    let to_device_ext = ext.to_device.as_ref().filter(|t| t.enabled == Some(true));
    let e2ee_enabled = ext.e2ee.as_ref().is_some_and(|e| e.enabled == Some(true));
    // The extensions that need nothing of the rooms are read beside them.
    let to_device = async {
        match to_device_ext {
            Some(t) => extensions::to_device(cx, user, device, t, heads.to_device).await.map(Some),
            None => Ok(None),
        }
    };
    let e2ee = async {
        match e2ee_enabled {
            true => extensions::e2ee(cx, user, device, from, &upto).await.map(Some),
            false => Ok(None),
        }
    };
    let (mut found, to_device, e2ee) = futures::try_join!(
        rooms::build(cx, user, &wanted, prev_state, from, &upto, &statics.ignored),
        to_device,
        e2ee
    )?;

    // The connection remembers every room it ever sent, now with those of this response.
    let mut state = prev_state.cloned().unwrap_or_default();
    state.rooms.extend(std::mem::take(&mut found.sent));
    state.lists = lists_digest(&lists);

    let scope = Scope { lists: &windows, subscriptions: &subscribed };
    let scoped_joined = |scoped: &request::Scoped| -> Vec<String> {
        scope.rooms(scoped).into_iter().filter(|r| joined.contains(r)).collect()
    };
    let account_data_ext = ext.account_data.as_ref().filter(|e| e.is_enabled());
    let receipts_ext = ext.receipts.as_ref().filter(|e| e.is_enabled());
    let typing_ext = ext.typing.as_ref().filter(|e| e.is_enabled());
    let initial = &found.initial_joined;
    let account_data = async {
        match account_data_ext {
            Some(scoped) => {
                let rooms = scope.rooms(scoped);
                extensions::account_data(cx, user, &rooms, initial, from, &upto).await.map(Some)
            }
            None => Ok(None),
        }
    };
    let receipts = async {
        match receipts_ext {
            Some(scoped) => {
                let rooms: BTreeSet<String> = scoped_joined(scoped).into_iter().collect();
                extensions::receipts(cx, user, &rooms, initial, &found.receipts_since, &upto).await.map(Some)
            }
            None => Ok(None),
        }
    };
    let typing = async {
        match typing_ext {
            Some(scoped) => {
                let rooms = scoped_joined(scoped);
                extensions::typing(cx, &rooms, initial, from, &upto, &statics.ignored).await.map(Some)
            }
            None => Ok(None),
        }
    };
    let (account_data, receipts, typing) = futures::try_join!(account_data, receipts, typing)?;

    let mut covered = Positions { presence: NEVER, ..upto };
    // A connection without rooms (an encryption-only one, say) waits for its extensions alone;
    // device lists follow memberships, which are events.
    if body.lists.is_empty() && subscribed.is_empty() {
        covered.receipts = NEVER;
        covered.notifications = NEVER;
        if !e2ee_enabled {
            covered.events = NEVER;
        }
    }
    covered.to_device = to_device.as_ref().map_or(NEVER, |(_, next)| *next);
    if e2ee.is_none() {
        covered.device_lists = NEVER;
    }
    if account_data.is_none() {
        covered.account_data = NEVER;
    }
    if typing.is_none() {
        covered.typing = NEVER;
    }
    let mut extensions = Map::new();
    let mut news = false;
    let answers = [
        ("to_device", to_device.map(|(answer, _)| answer)),
        ("e2ee", e2ee),
        ("account_data", account_data),
        ("receipts", receipts),
        ("typing", typing),
    ];
    for (name, answer) in answers {
        if let Some(answer) = answer {
            news |= answer.news;
            extensions.insert(name.into(), answer.json);
        }
    }
    Ok(Pass { upto, covered, lists, rooms: found.rooms, extensions, news, state, joined })
}
