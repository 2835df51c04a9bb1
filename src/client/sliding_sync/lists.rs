//! Sliding sync lists: which of the user's rooms a list holds (its filters), in which order (by
//! recency), and the rooms its ranges cover.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::request::Filters;

/// A room the user may see in a list, with what lists filter and sort by.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub room_id: String,
    /// `join`, `invite`, `knock`, `leave` or `ban`.
    pub membership: String,
    /// Where the user's membership took effect.
    pub membership_at: u64,
    /// The bump stamp: the position of the newest bump event the user may see (for a room the
    /// user is not joined to, not past its membership), which orders lists newest first.
    pub bump: u64,
    pub is_dm: bool,
    pub encrypted: bool,
    pub room_type: Option<String>,
    /// The user's tags on the room.
    pub tags: Vec<String>,
}

/// Whether a room passes a list's filters; `space_children` are the children of the spaces the
/// filter names.
pub fn passes(c: &Candidate, f: &Filters, space_children: &BTreeSet<String>) -> bool {
    let is_invite = c.membership == "invite";
    f.is_dm.is_none_or(|want| want == c.is_dm)
        && f.is_encrypted.is_none_or(|want| want == c.encrypted)
        && f.is_invite.is_none_or(|want| want == is_invite)
        && f.room_types.as_ref().is_none_or(|types| types.contains(&c.room_type))
        && !f.not_room_types.contains(&c.room_type)
        && f.spaces.as_ref().is_none_or(|_| space_children.contains(&c.room_id))
        && f.tags.as_ref().is_none_or(|tags| tags.iter().any(|t| c.tags.contains(t)))
        && !f.not_tags.iter().any(|t| c.tags.contains(t))
}

/// Newest bump first; ties by room ID, so that the order is stable.
pub fn sort(rooms: &mut [&Candidate]) {
    rooms.sort_by(|a, b| b.bump.cmp(&a.bump).then_with(|| a.room_id.cmp(&b.room_id)));
}

/// A list's answer: its count and one `SYNC` operation per range (as Synapse sends them), and the
/// rooms the ranges cover, each once, in list order.
pub fn window(sorted: &[&Candidate], ranges: &[(u64, u64)]) -> (Value, Vec<String>) {
    let mut ops = Vec::new();
    let mut covered: Vec<String> = Vec::new();
    for &(start, end) in ranges {
        let ids: Vec<String> = sorted
            .iter()
            .skip(usize::try_from(start).unwrap_or(usize::MAX))
            .take(usize::try_from(end - start).unwrap_or(usize::MAX).saturating_add(1))
            .map(|c| c.room_id.clone())
            .collect();
        for id in &ids {
            if !covered.contains(id) {
                covered.push(id.clone());
            }
        }
        ops.push(json!({"op": "SYNC", "range": [start, end], "room_ids": ids}));
    }
    (json!({"count": sorted.len(), "ops": ops}), covered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(id: &str, membership: &str, bump: u64) -> Candidate {
        Candidate {
            room_id: id.into(),
            membership: membership.into(),
            membership_at: 1,
            bump,
            is_dm: false,
            encrypted: false,
            room_type: None,
            tags: Vec::new(),
        }
    }

    #[test]
    fn lists_sort_by_bump_and_cut_ranges() {
        let rooms = [room("!a", "join", 5), room("!b", "join", 9), room("!c", "invite", 7), room("!d", "join", 7)];
        let mut sorted: Vec<&Candidate> = rooms.iter().collect();
        sort(&mut sorted);
        let order: Vec<&str> = sorted.iter().map(|c| c.room_id.as_str()).collect();
        assert_eq!(order, ["!b", "!c", "!d", "!a"]);
        let (list, covered) = window(&sorted, &[(0, 1), (1, 10)]);
        assert_eq!(list["count"], 4);
        assert_eq!(list["ops"][0], json!({"op": "SYNC", "range": [0, 1], "room_ids": ["!b", "!c"]}));
        assert_eq!(list["ops"][1]["room_ids"], json!(["!c", "!d", "!a"]));
        assert_eq!(covered, ["!b", "!c", "!d", "!a"]);
        let (list, covered) = window(&sorted, &[(10, 20)]);
        assert_eq!(list["ops"][0]["room_ids"], json!([]));
        assert!(covered.is_empty());
        let (_, covered) = window(&sorted, &[(0, u64::MAX)]);
        assert_eq!(covered.len(), 4);
    }

    #[test]
    fn filters_all_hold() {
        let mut dm = room("!dm", "join", 1);
        dm.is_dm = true;
        let mut space = room("!space", "invite", 1);
        space.room_type = Some("m.space".into());
        space.encrypted = true;
        let none = BTreeSet::new();
        let f = |json: Value| -> Filters { serde_json::from_value(json).unwrap() };
        assert!(passes(&dm, &f(json!({"is_dm": true})), &none));
        assert!(!passes(&space, &f(json!({"is_dm": true})), &none));
        assert!(passes(&space, &f(json!({"is_invite": true, "is_encrypted": true})), &none));
        assert!(!passes(&dm, &f(json!({"is_invite": true})), &none));
        assert!(passes(&dm, &f(json!({"room_types": [null]})), &none));
        assert!(!passes(&space, &f(json!({"room_types": [null]})), &none));
        assert!(!passes(&space, &f(json!({"room_types": ["m.space"], "not_room_types": ["m.space"]})), &none));
        assert!(passes(&dm, &f(json!({"not_room_types": ["m.space"]})), &none));
        let children: BTreeSet<String> = ["!dm".to_owned()].into();
        assert!(passes(&dm, &f(json!({"spaces": ["!s:hs"]})), &children));
        assert!(!passes(&space, &f(json!({"spaces": ["!s:hs"]})), &children));
    }

    #[test]
    fn tags_need_one_of_them_and_none_of_the_excluded() {
        let mut both = room("!both", "join", 1);
        both.tags = vec!["m.favourite".into(), "u.work".into()];
        let mut work = room("!work", "join", 1);
        work.tags = vec!["u.work".into()];
        let untagged = room("!none", "join", 1);
        let none = BTreeSet::new();
        let f = |json: Value| -> Filters { serde_json::from_value(json).unwrap() };
        let favourites = f(json!({"tags": ["m.favourite", "m.lowpriority"]}));
        assert!(passes(&both, &favourites, &none) && !passes(&work, &favourites, &none));
        assert!(!passes(&untagged, &favourites, &none));
        let not_favourites = f(json!({"not_tags": ["m.favourite"]}));
        assert!(!passes(&both, &not_favourites, &none) && passes(&work, &not_favourites, &none));
        assert!(passes(&untagged, &not_favourites, &none));
        // not_tags wins over tags.
        assert!(!passes(&both, &f(json!({"tags": ["u.work"], "not_tags": ["m.favourite"]})), &none));
        assert!(passes(&work, &f(json!({"tags": ["u.work"], "not_tags": ["m.favourite"]})), &none));
        assert!(!passes(&untagged, &f(json!({"tags": []})), &none), "an empty tags list matches nothing");
        assert!(favourites.uses_tags() && not_favourites.uses_tags() && !f(json!({"is_dm": true})).uses_tags());
    }
}
