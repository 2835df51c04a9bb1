//! An application service's registration: the format bridges generate, its validation, and
//! the questions the server asks of it (is this user, alias or room in a namespace; may this
//! address use the token).

use std::net::IpAddr;

use regex_lite::Regex;
use ruma_common::{OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A registration as stored: what the bridge's YAML says, less the `as_token`, of which only
/// the hash is kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registration {
    pub id: String,
    pub url: Option<String>,
    #[serde(default, skip_serializing)]
    pub as_token: String,
    pub hs_token: String,
    pub sender_localpart: String,
    #[serde(default)]
    pub namespaces: Namespaces,
    #[serde(default = "yes")]
    pub rate_limited: bool,
    #[serde(default)]
    pub protocols: Vec<String>,
    /// Also spelled `de.sorunome.msc2409.push_ephemeral` and `push_ephemeral` ([`EPHEMERAL_NAMES`]).
    #[serde(default)]
    pub receive_ephemeral: bool,
    #[serde(default, rename = "org.matrix.msc3202")]
    pub msc3202: bool,
    #[serde(default, rename = "io.element.msc4190")]
    pub msc4190: bool,
    #[serde(default)]
    pub ip_range_whitelist: Vec<String>,
}

fn yes() -> bool {
    true
}

/// The names bridges give `receive_ephemeral`; some write more than one, and any that is true
/// turns it on.
const EPHEMERAL_NAMES: [&str; 3] = ["receive_ephemeral", "de.sorunome.msc2409.push_ephemeral", "push_ephemeral"];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Namespaces {
    #[serde(default)]
    pub users: Vec<Namespace>,
    #[serde(default)]
    pub aliases: Vec<Namespace>,
    #[serde(default)]
    pub rooms: Vec<Namespace>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Namespace {
    pub regex: String,
    pub exclusive: bool,
}

/// A registration ready to answer questions: its regexes compiled, its ranges parsed.
#[derive(Debug)]
pub struct Service {
    pub registration: Registration,
    /// `@sender_localpart:server`.
    pub sender: OwnedUserId,
    users: Vec<(Regex, bool)>,
    aliases: Vec<(Regex, bool)>,
    rooms: Vec<(Regex, bool)>,
    ranges: Vec<Cidr>,
}

/// Which entries of a namespace count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Any,
    Exclusive,
}

impl Service {
    /// Compiles a registration; the error names what is wrong with it.
    pub fn new(registration: Registration, server_name: &str) -> Result<Service, String> {
        let compile = |kind: &str, list: &[Namespace]| -> Result<Vec<(Regex, bool)>, String> {
            list.iter()
                .map(|ns| {
                    // As in Synapse (Python's `re.match`), a regex matches from the start of the ID.
                    Regex::new(&format!("^(?:{})", ns.regex))
                        .map(|r| (r, ns.exclusive))
                        .map_err(|e| format!("namespaces.{kind}: bad regex {:?}: {e}", ns.regex))
                })
                .collect()
        };
        let ranges = registration
            .ip_range_whitelist
            .iter()
            .map(|r| Cidr::parse(r).ok_or_else(|| format!("ip_range_whitelist: {r:?} is not a CIDR range")))
            .collect::<Result<_, _>>()?;
        let sender = UserId::parse(format!("@{}:{server_name}", registration.sender_localpart))
            .map_err(|_| format!("`sender_localpart` {:?} is not a valid localpart", registration.sender_localpart))?;
        Ok(Service {
            sender,
            users: compile("users", &registration.namespaces.users)?,
            aliases: compile("aliases", &registration.namespaces.aliases)?,
            rooms: compile("rooms", &registration.namespaces.rooms)?,
            ranges,
            registration,
        })
    }

    pub fn id(&self) -> &str {
        &self.registration.id
    }

    /// The sender or a user of the users namespace.
    pub fn is_interested_in_user(&self, user_id: &str) -> bool {
        user_id == self.sender.as_str() || self.user_in_namespace(user_id, Scope::Any)
    }

    pub fn user_in_namespace(&self, user_id: &str, scope: Scope) -> bool {
        matches(&self.users, user_id, scope)
    }

    pub fn alias_in_namespace(&self, alias: &str, scope: Scope) -> bool {
        matches(&self.aliases, alias, scope)
    }

    pub fn room_in_namespace(&self, room_id: &str) -> bool {
        matches(&self.rooms, room_id, Scope::Any)
    }

    /// Whether the `as_token` may be used from this address: always without a whitelist.
    pub fn allows_address(&self, ip: Option<&str>) -> bool {
        if self.ranges.is_empty() {
            return true;
        }
        let Some(ip) = ip.and_then(|ip| ip.parse::<IpAddr>().ok()) else { return false };
        self.ranges.iter().any(|range| range.contains(ip))
    }
}

fn matches(list: &[(Regex, bool)], value: &str, scope: Scope) -> bool {
    list.iter().any(|(regex, exclusive)| (scope == Scope::Any || *exclusive) && regex.is_match(value))
}

/// An IPv4 or IPv6 range, `address/prefix`; a bare address is a range of one.
#[derive(Debug)]
struct Cidr {
    network: IpAddr,
    prefix: u32,
}

impl Cidr {
    fn parse(s: &str) -> Option<Cidr> {
        let (address, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u32>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(Cidr { network: address, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client may reach an IPv6 socket as an IPv4-mapped address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let mask = |bits: u32, width: u32| if bits == 0 { 0 } else { u128::MAX << (width - bits) };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let m = mask(self.prefix, 32) as u32;
                u32::from(net) & m == u32::from(ip) & m
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let m = mask(self.prefix, 128);
                u128::from(net) & m == u128::from(ip) & m
            }
            _ => false,
        }
    }
}

/// What the registrations already stored hold that a new one may not reuse.
#[derive(Debug, Default, Deserialize)]
pub struct Existing {
    pub id: String,
    pub as_token_hash: String,
    pub hs_token: String,
}

/// Parses and checks a registration (as JSON, from the bridge's YAML) against those stored.
/// The error names the problem.
pub fn validate(mut value: Value, server_name: &str, existing: &[Existing]) -> Result<Service, String> {
    let object = value.as_object_mut().ok_or("a registration is a mapping of keys to values")?;
    let mut ephemeral = false;
    for name in EPHEMERAL_NAMES {
        match object.remove(name) {
            None | Some(Value::Null) => {}
            Some(Value::Bool(on)) => ephemeral |= on,
            Some(_) => return Err(format!("`{name}` must be true or false")),
        }
    }
    object.insert("receive_ephemeral".into(), Value::Bool(ephemeral));
    for field in ["id", "as_token", "hs_token", "sender_localpart", "namespaces"] {
        if !object.contains_key(field) {
            return Err(format!("missing field `{field}`"));
        }
    }
    if !object.contains_key("url") {
        return Err("missing field `url` (it may be null: no transactions)".into());
    }
    let registration: Registration = serde_json::from_value(value).map_err(|e| e.to_string())?;
    for (name, field) in [
        ("id", &registration.id),
        ("as_token", &registration.as_token),
        ("hs_token", &registration.hs_token),
        ("sender_localpart", &registration.sender_localpart),
    ] {
        if field.trim().is_empty() {
            return Err(format!("`{name}` is empty"));
        }
    }
    if registration.as_token == registration.hs_token {
        return Err("`as_token` and `hs_token` must differ".into());
    }
    if let Some(url) = &registration.url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("`url` {url:?} is not an http(s) URL"));
        }
    }
    let as_hash = crate::tokens::token_hash(&registration.as_token);
    let hs_hash = crate::tokens::token_hash(&registration.hs_token);
    for other in existing {
        if other.id == registration.id {
            return Err(format!("an application service with id {:?} is already registered", other.id));
        }
        if other.as_token_hash == as_hash || other.hs_token == registration.as_token {
            return Err(format!("`as_token` is already used by the application service {:?}", other.id));
        }
        if other.hs_token == registration.hs_token || other.as_token_hash == hs_hash {
            return Err(format!("`hs_token` is already used by the application service {:?}", other.id));
        }
    }
    Service::new(registration, server_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn registration() -> Value {
        json!({
            "id": "irc", "url": "http://127.0.0.1:9000", "as_token": "a", "hs_token": "h",
            "sender_localpart": "ircbot",
            "namespaces": {
                "users": [{"exclusive": true, "regex": "@_irc_.*:example\\.org"}],
                "aliases": [{"exclusive": false, "regex": "#_irc_.*"}],
                "rooms": []
            },
            "de.sorunome.msc2409.push_ephemeral": true,
            "ip_range_whitelist": ["10.0.0.0/8", "fd00::/8"]
        })
    }

    #[test]
    fn namespaces_match_from_the_start() {
        let service = validate(registration(), "example.org", &[]).unwrap();
        assert!(service.user_in_namespace("@_irc_bob:example.org", Scope::Exclusive));
        assert!(!service.user_in_namespace("@bob:example.org", Scope::Any));
        assert!(!service.user_in_namespace("@x@_irc_bob:example.org", Scope::Any));
        assert!(service.is_interested_in_user("@ircbot:example.org"));
        assert!(service.alias_in_namespace("#_irc_x:example.org", Scope::Any));
        assert!(!service.alias_in_namespace("#_irc_x:example.org", Scope::Exclusive));
        assert!(service.registration.receive_ephemeral);
        assert!(service.registration.rate_limited);
    }

    #[test]
    fn every_name_of_receive_ephemeral_counts() {
        let mut both = registration();
        both["receive_ephemeral"] = json!(false);
        assert!(validate(both.clone(), "example.org", &[]).unwrap().registration.receive_ephemeral);
        both["de.sorunome.msc2409.push_ephemeral"] = json!(false);
        both["push_ephemeral"] = json!(true);
        assert!(validate(both.clone(), "example.org", &[]).unwrap().registration.receive_ephemeral);
        both["push_ephemeral"] = json!("yes");
        assert!(validate(both, "example.org", &[]).unwrap_err().contains("`push_ephemeral`"));
        let mut none = registration();
        none.as_object_mut().unwrap().remove("de.sorunome.msc2409.push_ephemeral");
        assert!(!validate(none, "example.org", &[]).unwrap().registration.receive_ephemeral);
    }

    #[test]
    fn address_ranges() {
        let service = validate(registration(), "example.org", &[]).unwrap();
        assert!(service.allows_address(Some("10.1.2.3")));
        assert!(service.allows_address(Some("::ffff:10.1.2.3")));
        assert!(service.allows_address(Some("fd12::1")));
        assert!(!service.allows_address(Some("11.0.0.1")));
        assert!(!service.allows_address(Some("fe80::1")));
        assert!(!service.allows_address(None));
        let mut open = registration();
        open["ip_range_whitelist"] = json!([]);
        assert!(validate(open, "example.org", &[]).unwrap().allows_address(None));
    }

    #[test]
    fn refusals_name_the_problem() {
        let refuse = |change: &dyn Fn(&mut Value), existing: &[Existing]| {
            let mut r = registration();
            change(&mut r);
            validate(r, "example.org", existing).unwrap_err()
        };
        assert!(refuse(&|r| r["namespaces"]["users"][0]["regex"] = json!("@(unclosed"), &[]).contains("bad regex"));
        assert!(refuse(&|r| drop(r.as_object_mut().unwrap().remove("hs_token")), &[]).contains("`hs_token`"));
        assert!(refuse(&|r| drop(r.as_object_mut().unwrap().remove("url")), &[]).contains("`url`"));
        assert!(refuse(&|r| r["ip_range_whitelist"] = json!(["10.0.0.0/33"]), &[]).contains("ip_range_whitelist"));
        let other = |id: &str, as_token: &str, hs_token: &str| Existing {
            id: id.into(),
            as_token_hash: crate::tokens::token_hash(as_token),
            hs_token: hs_token.into(),
        };
        assert!(refuse(&|_| {}, &[other("irc", "x", "y")]).contains("id \"irc\""));
        assert!(refuse(&|_| {}, &[other("b", "a", "y")]).contains("`as_token`"));
        assert!(refuse(&|_| {}, &[other("b", "x", "a")]).contains("`as_token`"));
        assert!(refuse(&|_| {}, &[other("b", "x", "h")]).contains("`hs_token`"));
        assert!(refuse(&|_| {}, &[other("b", "h", "y")]).contains("`hs_token`"));
    }
}
