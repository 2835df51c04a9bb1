//! Table-driven tests of the authorization rules of room versions 10, 11 and 12, read from the JSON
//! fixtures in `tests/fixtures/auth/`: events in, accepted or rejected out.
//!
//! Each case starts from an empty room. Its events (after the file's or the case's `setup`, whose
//! events are all expected to be accepted) are built, signed and authorized through our own code:
//! `state::create_event` for the first event, `RoomState::prepare` for the others, or, for events
//! carrying a PDU-level `mutate`, `RoomState::position_for` + `pdu::build` + `RoomState::authorize`
//! with the tampered fields. Accepted events are applied; rejected ones are not.
//!
//! Fixture format (`"…"` is a string, `{v}` means "a value, or an object from room version to
//! value"):
//!
//! ```text
//! { "description": "…", "room_versions": ["10", "11", "12"], "setup": [event…],
//!   "cases": [ { "name": "…", "rule": "…", "room_versions"?: […], "setup"?: [event…],
//!                "events": [event…], "final"?: { "membership"?: {user: {v}}, "power"?: {user: {v}},
//!                                                "known_bug"?: {v} } } ] }
//! event = { "id"?: label, "note"?: "…", "sender": user, "type": "…", "state_key"?: "…",
//!           "content"?: {…}, "content_by_version"?: {version: {…}}, "redacts"?: label or "$id",
//!           "sign_third_party_invite"?: key name, "also_signed_by"?: [server…],
//!           "mutate"?: { "prev_events"?: [label or "$id"], "room_id"?: "other" | "event:<label>" | "!id",
//!                        "auth_events"?: { "clear"?: bool, "remove"?: [[type, key]], "add"?: [[type, key]],
//!                                          "duplicate"?: [[type, key]] } },
//!           "expect": {"accept" | "reject"}, "error_contains"?: "…", "known_bug"?: {"…"} }
//! ```
//!
//! Strings in content are placeholders when they are exactly `{{room_version}}`,
//! `{{public_key:<key name>}}` or `{{event_id:<label>}}`. Every server and third-party identity
//! server signs with a key derived from its name. `known_bug` marks a fixture where our code is
//! known to disagree with the spec: the fixture still asserts the spec's answer, and a mismatch is
//! reported as a known bug (and fails); a `known_bug` that no longer fails is reported as stale.
//! Set `AUTH_FIXTURES_TRACE=1` (with `--nocapture`) to print every outcome and rejection reason.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use ruma_common::{CanonicalJsonObject, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::pdu::{self, EventTemplate, Pdu, Position};
use super::signing::ServerKey;
use super::state::{self, Refusal, RoomState};
use super::versions::{RoomVersion, SUPPORTED};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    description: String,
    room_versions: Vec<String>,
    #[serde(default)]
    setup: Vec<FixtureEvent>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    rule: String,
    room_versions: Option<Vec<String>>,
    /// Replaces the file's setup.
    setup: Option<Vec<FixtureEvent>>,
    events: Vec<FixtureEvent>,
    #[serde(rename = "final")]
    finally: Option<Final>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureEvent {
    id: Option<String>,
    note: Option<String>,
    sender: String,
    #[serde(rename = "type")]
    kind: String,
    state_key: Option<String>,
    #[serde(default)]
    content: Map<String, Value>,
    #[serde(default)]
    content_by_version: BTreeMap<String, Map<String, Value>>,
    redacts: Option<String>,
    sign_third_party_invite: Option<String>,
    #[serde(default)]
    also_signed_by: Vec<String>,
    mutate: Option<Mutation>,
    /// Required in cases; setup events are expected to be accepted.
    expect: Option<Value>,
    error_contains: Option<String>,
    known_bug: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Mutation {
    prev_events: Option<Vec<String>>,
    room_id: Option<String>,
    auth_events: Option<AuthEventsMutation>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuthEventsMutation {
    #[serde(default)]
    clear: bool,
    #[serde(default)]
    remove: Vec<(String, String)>,
    #[serde(default)]
    add: Vec<(String, String)>,
    #[serde(default)]
    duplicate: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Final {
    #[serde(default)]
    membership: BTreeMap<String, Value>,
    #[serde(default)]
    power: BTreeMap<String, Value>,
    known_bug: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Accept,
    Reject,
}

/// What our code did with an event.
enum Outcome {
    Accepted(Pdu),
    Rejected(String),
}

/// The value of a fixture field for a room version: the value itself, or its entry in an object
/// keyed by room version.
fn for_version<'a>(value: &'a Value, version: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) if map.keys().all(|k| SUPPORTED.contains(&k.as_str())) => map.get(version),
        other => Some(other),
    }
}

fn known_bug_for(value: Option<&Value>, version: &str) -> Option<String> {
    value.and_then(|v| for_version(v, version)).and_then(Value::as_str).map(str::to_owned)
}

/// A deterministic signing key per server (or identity server) name.
fn key_for(name: &str) -> ServerKey {
    let seed = STANDARD_NO_PAD.encode(Sha256::digest(format!("stratus auth fixture key for {name}")));
    ServerKey::from_seed("ed25519:fixture", &seed).unwrap()
}

fn server_of(user_id: &str) -> &str {
    user_id.split_once(':').map(|(_, server)| server).unwrap_or_else(|| panic!("{user_id} has no server name"))
}

/// A room ID other than any a fixture room has, in the format of the room version.
fn other_room_id(version: &RoomVersion, server: &str) -> OwnedRoomId {
    if version.room_id_from_create_event() {
        RoomId::parse(format!("!{}", URL_SAFE_NO_PAD.encode(Sha256::digest(b"another room")))).unwrap()
    } else {
        RoomId::parse(format!("!another:{server}")).unwrap()
    }
}

struct Run<'f> {
    file: &'f str,
    case: &'f str,
    version: RoomVersion,
    version_id: String,
    room: Option<RoomState>,
    labels: BTreeMap<String, OwnedEventId>,
    clock: u64,
}

impl Run<'_> {
    fn event_id(&self, label_or_id: &str) -> OwnedEventId {
        if label_or_id.starts_with('$') {
            return OwnedEventId::try_from(label_or_id).unwrap();
        }
        self.labels.get(label_or_id).cloned().unwrap_or_else(|| {
            panic!("{}: {}: v{}: no accepted event labelled {label_or_id:?}", self.file, self.case, self.version_id)
        })
    }

    fn resolve(&self, value: &Value) -> Value {
        match value {
            Value::String(s) if s.starts_with("{{") && s.ends_with("}}") => {
                let inner = &s[2..s.len() - 2];
                if inner == "room_version" {
                    Value::String(self.version_id.clone())
                } else if let Some(name) = inner.strip_prefix("public_key:") {
                    Value::String(key_for(name).public_key())
                } else if let Some(label) = inner.strip_prefix("event_id:") {
                    Value::String(self.event_id(label).to_string())
                } else {
                    panic!("{}: {}: unknown placeholder {s}", self.file, self.case)
                }
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| self.resolve(v)).collect()),
            Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), self.resolve(v))).collect()),
            other => other.clone(),
        }
    }

    fn template(&self, event: &FixtureEvent) -> EventTemplate {
        let content = event.content_by_version.get(&self.version_id).unwrap_or(&event.content);
        let mut content = self.resolve(&Value::Object(content.clone()));
        if let Some(identity_server) = &event.sign_third_party_invite {
            let signed = content
                .pointer_mut("/third_party_invite/signed")
                .unwrap_or_else(|| panic!("{}: {}: no third_party_invite.signed to sign", self.file, self.case));
            let mut object: CanonicalJsonObject = serde_json::from_value(signed.clone()).unwrap();
            key_for(identity_server).sign_json(identity_server, &mut object).unwrap();
            *signed = serde_json::to_value(object).unwrap();
        }
        EventTemplate {
            kind: event.kind.clone(),
            state_key: event.state_key.clone(),
            sender: OwnedUserId::try_from(event.sender.as_str()).unwrap(),
            content: serde_json::from_value(content).unwrap(),
            redacts: event.redacts.as_deref().map(|r| self.event_id(r)),
        }
    }

    fn now(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Builds, signs and authorizes one fixture event through our code; `Err` when it could not
    /// even be built.
    fn submit(&mut self, event: &FixtureEvent) -> Result<Outcome, String> {
        let template = self.template(event);
        let server = server_of(&event.sender).to_owned();
        let key = key_for(&server);
        let now = self.now();
        let plain = event.mutate.is_none() && event.also_signed_by.is_empty();
        let Some(room) = &self.room else {
            return self.submit_create(event, &template, now, &key, &server);
        };
        if plain {
            return refusal_outcome(room.prepare(&template, now, &key, &server));
        }

        let at = match room.position_for(&template) {
            Ok(at) => at,
            Err(refusal) => return refusal_outcome(Err(refusal)),
        };
        let unmutated = Mutation::default();
        let mutation = event.mutate.as_ref().unwrap_or(&unmutated);
        let prev_events = match &mutation.prev_events {
            Some(ids) => ids.iter().map(|id| self.event_id(id)).collect(),
            None => at.prev_events.clone(),
        };
        let mut auth_events = at.auth_events.clone();
        if let Some(change) = &mutation.auth_events {
            let id_of = |(kind, state_key): &(String, String)| {
                room.get(kind, state_key).map(|e| e.event_id.clone()).unwrap_or_else(|| {
                    panic!("{}: {}: no ({kind}, {state_key}) in the room state to tamper with", self.file, self.case)
                })
            };
            if change.clear {
                auth_events.clear();
            }
            for pair in &change.remove {
                let id = id_of(pair);
                auth_events.retain(|e| *e != id);
            }
            auth_events.extend(change.add.iter().map(id_of));
            auth_events.extend(change.duplicate.iter().map(id_of));
        }
        let room_id = match mutation.room_id.as_deref() {
            None => room.room_id.clone(),
            Some(spec) => self.room_id_for(spec, &server),
        };
        let at = Position { room_id: Some(&room_id), prev_events, auth_events, depth: at.depth };
        let mut pdu = pdu::build(&self.version, &template, at, now, &key, &server).map_err(|e| format!("{e:?}"))?;
        for other in &event.also_signed_by {
            pdu = self.countersign(pdu, other);
        }
        let result = room.authorize(&pdu).map(|()| pdu);
        refusal_outcome(result)
    }

    fn room_id_for(&self, spec: &str, server: &str) -> OwnedRoomId {
        if spec == "other" {
            other_room_id(&self.version, server)
        } else if let Some(label) = spec.strip_prefix("event:") {
            RoomId::parse(format!("!{}", &self.event_id(label).as_str()[1..])).unwrap()
        } else {
            RoomId::parse(spec).unwrap()
        }
    }

    /// Adds another server's signature to a built PDU.
    fn countersign(&self, pdu: Pdu, server: &str) -> Pdu {
        let mut object: CanonicalJsonObject = serde_json::from_str(&pdu.json).unwrap();
        key_for(server).hash_and_sign_event(server, &mut object, &self.version.rules.redaction).unwrap();
        let json = serde_json::to_string(&object).unwrap();
        assert_eq!(pdu::event_id_of(&object, &self.version.rules).unwrap(), pdu.event_id);
        Pdu::from_json(pdu.event_id, json).unwrap()
    }

    fn submit_create(
        &mut self,
        event: &FixtureEvent,
        template: &EventTemplate,
        now: u64,
        key: &ServerKey,
        server: &str,
    ) -> Result<Outcome, String> {
        assert_eq!(event.kind, "m.room.create", "{}: {}: a case's first event creates the room", self.file, self.case);
        let fresh = || RoomId::parse(format!("!fixture:{server}")).unwrap();
        let result = match &event.mutate {
            None => state::create_event(&self.version, template, fresh, now, key, server),
            Some(mutation) => {
                assert!(
                    mutation.auth_events.is_none(),
                    "{}: {}: a create event has no auth events",
                    self.file,
                    self.case
                );
                let given = match mutation.room_id.as_deref() {
                    Some(spec) => Some(self.room_id_for(spec, server)),
                    None => (!self.version.room_id_from_create_event()).then(fresh),
                };
                let prev_events = mutation.prev_events.iter().flatten().map(|id| self.event_id(id)).collect();
                let at = Position { room_id: given.as_deref(), prev_events, auth_events: Vec::new(), depth: 1 };
                let pdu = pdu::build(&self.version, template, at, now, key, server).map_err(|e| format!("{e:?}"))?;
                let room_id = match given {
                    Some(id) => id,
                    None => pdu::room_id_from_create_event(&pdu)?,
                };
                RoomState::new(self.version.clone(), room_id.clone()).authorize(&pdu).map(|()| (room_id, pdu))
            }
        };
        match result {
            Ok((room_id, pdu)) => {
                self.room = Some(RoomState::new(self.version.clone(), room_id));
                Ok(Outcome::Accepted(pdu))
            }
            Err(Refusal::Forbidden(reason)) => Ok(Outcome::Rejected(reason)),
            Err(Refusal::Build(e)) => Err(format!("{e:?}")),
        }
    }
}

fn refusal_outcome(result: Result<Pdu, Refusal>) -> Result<Outcome, String> {
    match result {
        Ok(pdu) => Ok(Outcome::Accepted(pdu)),
        Err(Refusal::Forbidden(reason)) => Ok(Outcome::Rejected(reason)),
        Err(Refusal::Build(e)) => Err(format!("could not build the event: {e:?}")),
    }
}

/// What a file's run found.
#[derive(Default)]
struct Report {
    cases: BTreeMap<String, usize>,
    events: BTreeMap<String, usize>,
    failures: Vec<String>,
    known_bugs: Vec<String>,
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/auth")
}

fn load(file: &str) -> Fixture {
    let path = fixtures_dir().join(format!("{file}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run_file(file: &str) -> Report {
    let fixture = load(file);
    let mut report = Report::default();
    let mut names = std::collections::BTreeSet::new();
    for case in &fixture.cases {
        assert!(names.insert(case.name.as_str()), "{file}: duplicate case name {}", case.name);
        assert!(!case.rule.trim().is_empty(), "{file}: {}: cite the rule", case.name);
        assert!(!case.events.is_empty(), "{file}: {}: no events", case.name);
        let versions = case.room_versions.as_ref().unwrap_or(&fixture.room_versions);
        for version in versions {
            assert!(SUPPORTED.contains(&version.as_str()), "{file}: {}: room version {version}", case.name);
            *report.cases.entry(version.clone()).or_default() += 1;
            run_case(file, &fixture, case, version, &mut report);
        }
    }
    report
}

fn run_case(file: &str, fixture: &Fixture, case: &Case, version: &str, report: &mut Report) {
    let mut run = Run {
        file,
        case: &case.name,
        version: RoomVersion::parse(version).unwrap(),
        version_id: version.to_owned(),
        room: None,
        labels: BTreeMap::new(),
        clock: 1_000,
    };
    let setup = case.setup.as_ref().unwrap_or(&fixture.setup);
    let context = |index: usize, event: &FixtureEvent, stage: &str| {
        let note = event.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
        format!(
            "{file}.json: {} [v{version}] {stage} event #{index} {} from {}{note}",
            case.name, event.kind, event.sender
        )
    };

    for (index, event) in setup.iter().enumerate() {
        assert!(event.expect.is_none() && event.known_bug.is_none(), "{}: setup events must be accepted", case.name);
        match run.submit(event) {
            Ok(Outcome::Accepted(pdu)) => accept(&mut run, event, pdu),
            Ok(Outcome::Rejected(reason)) => {
                report.failures.push(format!("{}: setup event rejected: {reason}", context(index, event, "setup")));
                return;
            }
            Err(e) => {
                report.failures.push(format!("{}: {e}", context(index, event, "setup")));
                return;
            }
        }
    }

    for (index, event) in case.events.iter().enumerate() {
        *report.events.entry(version.to_owned()).or_default() += 1;
        let where_ = context(index, event, "case");
        let expect = event
            .expect
            .as_ref()
            .and_then(|e| for_version(e, version))
            .map(|e| match e.as_str() {
                Some("accept") => Expect::Accept,
                Some("reject") => Expect::Reject,
                other => panic!("{where_}: expect {other:?}"),
            })
            .unwrap_or_else(|| panic!("{where_}: no expectation for v{version}"));
        assert!(
            event.error_contains.is_none() || expect == Expect::Reject,
            "{where_}: error_contains only makes sense on an expected rejection"
        );
        let known_bug = known_bug_for(event.known_bug.as_ref(), version);
        let outcome = match run.submit(event) {
            Ok(outcome) => outcome,
            Err(e) => {
                report.failures.push(format!("{where_}: {e}"));
                return;
            }
        };
        let got = match &outcome {
            Outcome::Accepted(_) => "accepted".to_owned(),
            Outcome::Rejected(reason) => format!("rejected ({reason})"),
        };
        if std::env::var_os("AUTH_FIXTURES_TRACE").is_some() {
            println!("{where_}: expected {expect:?}, {got}");
        }
        let matches = match (&outcome, expect) {
            (Outcome::Accepted(_), Expect::Accept) => true,
            (Outcome::Rejected(reason), Expect::Reject) => {
                if let Some(needle) = &event.error_contains {
                    if !reason.contains(needle.as_str()) {
                        report.failures.push(format!(
                            "{where_}: rejected, but not by the rule under test: {reason:?} lacks {needle:?}"
                        ));
                        return;
                    }
                }
                true
            }
            _ => false,
        };
        match (matches, known_bug) {
            (true, None) => {}
            (true, Some(bug)) => {
                report.failures.push(format!("{where_}: marked known_bug ({bug}) but now agrees with the spec"));
            }
            (false, None) => {
                report.failures.push(format!("{where_}: the spec says {expect:?}, our code {got}"));
                return;
            }
            (false, Some(bug)) => {
                report.known_bugs.push(format!("{where_}: the spec says {expect:?}, our code {got}: {bug}"));
                return;
            }
        }
        if let Outcome::Accepted(pdu) = outcome {
            accept(&mut run, event, pdu);
        }
    }

    if let Some(finally) = &case.finally {
        check_final(&run, finally, &format!("{file}.json: {} [v{version}] final state", case.name), report);
    }
}

fn accept(run: &mut Run<'_>, event: &FixtureEvent, pdu: Pdu) {
    if let Some(label) = &event.id {
        run.labels.insert(label.clone(), pdu.event_id.clone());
    }
    run.room.as_mut().expect("the room exists once its create event is accepted").apply(pdu);
}

fn check_final(run: &Run<'_>, finally: &Final, where_: &str, report: &mut Report) {
    let room = run.room.as_ref().expect("a room");
    let version = run.version_id.as_str();
    let mut wrong = Vec::new();
    for (user, expected) in &finally.membership {
        let Some(expected) = for_version(expected, version) else { continue };
        let got = room.membership(user);
        if got.as_deref() != expected.as_str() {
            wrong.push(format!("membership of {user}: the spec says {expected}, RoomState::membership {got:?}"));
        }
    }
    for (user, expected) in &finally.power {
        let Some(expected) = for_version(expected, version) else { continue };
        let expected = match expected {
            Value::String(s) if s == "infinite" => i64::MAX,
            other => other.as_i64().unwrap_or_else(|| panic!("{where_}: power {other}")),
        };
        let got = room.user_power(user);
        if got != expected {
            wrong.push(format!("power of {user}: the spec says {expected}, RoomState::user_power {got}"));
        }
    }
    let known_bug = known_bug_for(finally.known_bug.as_ref(), version);
    match (wrong.is_empty(), known_bug) {
        (true, None) => {}
        (true, Some(bug)) => report.failures.push(format!("{where_}: marked known_bug ({bug}) but now agrees")),
        (false, None) => report.failures.push(format!("{where_}: {}", wrong.join("; "))),
        (false, Some(bug)) => report.known_bugs.push(format!("{where_}: {}: {bug}", wrong.join("; "))),
    }
}

fn check_file(file: &str) {
    println!("{file}.json: {}", load(file).description);
    let report = run_file(file);
    let counts: Vec<String> = report
        .cases
        .iter()
        .map(|(v, n)| format!("v{v}: {n} cases, {} events", report.events.get(v).copied().unwrap_or(0)))
        .collect();
    println!("{file}.json: {}", counts.join("; "));
    let mut problems = Vec::new();
    problems.extend(report.known_bugs.iter().map(|b| format!("KNOWN BUG: {b}")));
    problems.extend(report.failures.iter().map(|f| format!("FAILED: {f}")));
    assert!(problems.is_empty(), "{file}.json ({}):\n{}", counts.join("; "), problems.join("\n"));
}

macro_rules! fixture_files {
    ($($file:ident),* $(,)?) => {
        const FILES: &[&str] = &[$(stringify!($file)),*];
        $(
            #[test]
            fn $file() {
                check_file(stringify!($file));
            }
        )*
    };
}

fixture_files!(
    create,
    federate,
    auth_events,
    member_join,
    invite,
    leave,
    ban,
    knock,
    restricted,
    third_party_invite,
    sender_membership,
    power_levels,
    redaction,
    creators_v12,
);

#[test]
fn every_fixture_file_is_run() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter_map(|name| name.strip_suffix(".json").map(str::to_owned))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FILES.iter().map(|f| f.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "every fixture file needs an entry in fixture_files!");
}

/// Prints how many cases each room version runs (`cargo test … -- --nocapture fixture_inventory`).
#[test]
fn fixture_inventory() {
    let mut cases: BTreeMap<String, usize> = BTreeMap::new();
    for file in FILES {
        let fixture = load(file);
        for case in &fixture.cases {
            for version in case.room_versions.as_ref().unwrap_or(&fixture.room_versions) {
                *cases.entry(version.clone()).or_default() += 1;
            }
        }
    }
    println!("auth fixture cases per room version: {cases:?}");
    assert!(SUPPORTED.iter().all(|v| cases.get(*v).copied().unwrap_or(0) > 0));
}
