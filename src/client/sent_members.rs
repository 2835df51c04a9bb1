//! Which member events each device was sent, so that a lazy-loading sync can leave out the ones
//! the device already has (`include_redundant_members: false`).
//!
//! A record says "member event E of user M in room R went out in a response whose token is at
//! position P". A sync from `since` trusts it only when P <= `since`: the device then holds that
//! response or a later one. A response that was lost, or a sync from an older token, makes the
//! member go out again. The record is a cache in the isolate's memory, bounded and best-effort:
//! whatever it forgets is sent again, which the spec allows.

use std::cell::RefCell;
use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

/// Devices remembered at once; the least recently used goes first.
const MAX_DEVICES: usize = 256;
/// Member events remembered per device; a device past it starts over.
const MAX_PER_DEVICE: usize = 4096;

/// What one device was sent: by the hash of (room, member), the hash of the event ID and the
/// position of the response. Hashes keep an entry small; 64 bits make a collision negligible.
#[derive(Default)]
struct DeviceRecord {
    last_used: u64,
    members: BTreeMap<u64, (u64, u64)>,
}

#[derive(Default)]
pub struct SentMembers {
    devices: BTreeMap<(String, String), DeviceRecord>,
    clock: u64,
}

fn hash(parts: &[&str]) -> u64 {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

impl SentMembers {
    /// Whether `user`'s `device`, syncing from position `since`, holds `event_id` as the member
    /// event of `member` in `room`.
    pub fn holds(&self, user: &str, device: &str, room: &str, member: &str, event_id: &str, since: u64) -> bool {
        let Some(record) = self.devices.get(&(user.to_owned(), device.to_owned())) else { return false };
        record.members.get(&hash(&[room, member])).is_some_and(|&(event, at)| event == hash(&[event_id]) && at <= since)
    }

    /// Notes that a response at `position` sent these `(member, event_id)` of `room` to the device.
    pub fn record<'a>(
        &mut self,
        user: &str,
        device: &str,
        room: &str,
        sent: impl IntoIterator<Item = (&'a str, &'a str)>,
        position: u64,
    ) {
        self.clock += 1;
        let key = (user.to_owned(), device.to_owned());
        if !self.devices.contains_key(&key) && self.devices.len() >= MAX_DEVICES {
            let oldest = self.devices.iter().min_by_key(|(_, r)| r.last_used).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.devices.remove(&oldest);
            }
        }
        let record = self.devices.entry(key).or_default();
        record.last_used = self.clock;
        for (member, event_id) in sent {
            if record.members.len() >= MAX_PER_DEVICE {
                record.members.clear();
            }
            record.members.insert(hash(&[room, member]), (hash(&[event_id]), position));
        }
    }
}

thread_local! {
    static SENT: RefCell<SentMembers> = RefCell::new(SentMembers::default());
}

/// Runs `f` on this isolate's record.
pub fn with<T>(f: impl FnOnce(&mut SentMembers) -> T) -> T {
    SENT.with(|sent| f(&mut sent.borrow_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_held_only_from_a_token_at_or_after_its_response() {
        let mut s = SentMembers::default();
        s.record("@me:hs", "D", "!r:hs", [("@m:hs", "$join")], 10);
        assert!(s.holds("@me:hs", "D", "!r:hs", "@m:hs", "$join", 10));
        assert!(s.holds("@me:hs", "D", "!r:hs", "@m:hs", "$join", 12));
        // The response at 10 may have been lost: a sync from 9 sends the member again.
        assert!(!s.holds("@me:hs", "D", "!r:hs", "@m:hs", "$join", 9));
    }

    #[test]
    fn another_event_device_room_or_user_is_not_held() {
        let mut s = SentMembers::default();
        s.record("@me:hs", "D", "!r:hs", [("@m:hs", "$join")], 10);
        assert!(!s.holds("@me:hs", "D", "!r:hs", "@m:hs", "$rename", 20));
        assert!(!s.holds("@me:hs", "E", "!r:hs", "@m:hs", "$join", 20));
        assert!(!s.holds("@me:hs", "D", "!other:hs", "@m:hs", "$join", 20));
        assert!(!s.holds("@me:hs", "D", "!r:hs", "@n:hs", "$join", 20));
        assert!(!s.holds("@you:hs", "D", "!r:hs", "@m:hs", "$join", 20));
    }

    #[test]
    fn a_newer_record_replaces_the_older() {
        let mut s = SentMembers::default();
        s.record("@me:hs", "D", "!r:hs", [("@m:hs", "$join")], 10);
        s.record("@me:hs", "D", "!r:hs", [("@m:hs", "$rename")], 20);
        assert!(!s.holds("@me:hs", "D", "!r:hs", "@m:hs", "$join", 30));
        assert!(s.holds("@me:hs", "D", "!r:hs", "@m:hs", "$rename", 30));
    }

    #[test]
    fn the_record_stays_bounded() {
        let mut s = SentMembers::default();
        for d in 0..MAX_DEVICES + 10 {
            s.record("@me:hs", &format!("D{d}"), "!r:hs", [("@m:hs", "$e")], 1);
        }
        assert_eq!(s.devices.len(), MAX_DEVICES);
        // The least recently used went first.
        assert!(!s.holds("@me:hs", "D0", "!r:hs", "@m:hs", "$e", 1));
        assert!(s.holds("@me:hs", &format!("D{}", MAX_DEVICES + 9), "!r:hs", "@m:hs", "$e", 1));
        let members: Vec<String> = (0..MAX_PER_DEVICE + 1).map(|i| format!("@m{i}:hs")).collect();
        s.record("@me:hs", "BIG", "!r:hs", members.iter().map(|m| (m.as_str(), "$e")), 1);
        assert!(s.devices[&("@me:hs".to_owned(), "BIG".to_owned())].members.len() <= MAX_PER_DEVICE);
    }
}
