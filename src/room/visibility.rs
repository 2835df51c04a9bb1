//! History visibility: which of a room's events a user may see.
//!
//! The rules are the spec's ("Room History Visibility"), as Synapse applies them. Whether a user
//! sees an event depends on the state of the room at that event:
//!
//! 1. `world_readable` history is visible to anyone, members or not.
//! 2. A user whose membership was `join` sees the event.
//! 3. Under `shared`, a user sees the event if they joined the room at any point after it.
//! 4. Under `invited`, a user whose membership was `invite` sees the event.
//! 5. Anything else is hidden.
//!
//! An `m.room.history_visibility` event is visible if the setting before *or* after it allows
//! it, and a user's own `m.room.member` events are always visible to them. A missing or unknown
//! setting counts as `shared`.
//!
//! A room's state is linear here (one writer, no federation), so what decides visibility for a
//! user is a short list of changes in stream order: the room's history visibility settings and
//! the user's own memberships. [`Timeline`] turns that list into the set of stream positions the
//! user may see, as ranges, so that readers can push the check into their queries and page
//! through visible events only.

/// The `history_visibility` of a room, most permissive first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HistoryVisibility {
    WorldReadable,
    Shared,
    Invited,
    Joined,
}

impl HistoryVisibility {
    /// The setting of an `m.room.history_visibility` content value; `shared` when it is missing
    /// or not understood, as the spec says.
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("world_readable") => Self::WorldReadable,
            Some("invited") => Self::Invited,
            Some("joined") => Self::Joined,
            _ => Self::Shared,
        }
    }
}

/// A user's membership of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    Join,
    Invite,
    Knock,
    Leave,
    Ban,
}

impl Membership {
    /// The `membership` of an `m.room.member` event; an unknown value counts as `leave`.
    pub fn parse(value: &str) -> Self {
        match value {
            "join" => Self::Join,
            "invite" => Self::Invite,
            "knock" => Self::Knock,
            "ban" => Self::Ban,
            _ => Self::Leave,
        }
    }
}

/// One change of what decides a user's view of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// An `m.room.history_visibility` event.
    Visibility(HistoryVisibility),
    /// An `m.room.member` event of the user.
    Membership(Membership),
}

/// An inclusive range of stream positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub first: u64,
    pub last: u64,
}

impl Range {
    pub fn contains(&self, position: u64) -> bool {
        (self.first..=self.last).contains(&position)
    }
}

/// How a user may read a room, decided from the room's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The user is joined: the current state, and history as visibility allows.
    Joined,
    /// The user is not joined but the room is `world_readable`: anyone may peek.
    Peeking,
    /// The user left or was banned at this stream position and has not forgotten the room: the
    /// state as it was then, and history as visibility allows.
    Departed { at: u64 },
}

/// The history visibility settings of a room and one user's memberships, in stream order, up to a
/// snapshot position: everything needed to decide what the user may see of the room.
#[derive(Debug, Clone)]
pub struct Timeline {
    changes: Vec<(u64, Change)>,
    head: u64,
}

impl Timeline {
    /// The changes at stream positions up to `head`, in any order; later ones are dropped.
    pub fn new(mut changes: Vec<(u64, Change)>, head: u64) -> Self {
        changes.retain(|(position, _)| *position <= head);
        changes.sort_by_key(|(position, _)| *position);
        Self { changes, head }
    }

    /// The snapshot position: nothing after it is visible.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The room's history visibility now.
    pub fn current_visibility(&self) -> HistoryVisibility {
        self.changes
            .iter()
            .rev()
            .find_map(|(_, c)| match c {
                Change::Visibility(v) => Some(*v),
                Change::Membership(_) => None,
            })
            .unwrap_or(HistoryVisibility::Shared)
    }

    /// The user's membership now, and the position of the event that set it.
    pub fn current_membership(&self) -> Option<(Membership, u64)> {
        self.changes.iter().rev().find_map(|(p, c)| match c {
            Change::Membership(m) => Some((*m, *p)),
            Change::Visibility(_) => None,
        })
    }

    /// How the user may read the room: `None` when they may not.
    pub fn access(&self, forgotten: bool) -> Option<Access> {
        let membership = self.current_membership();
        match membership {
            Some((Membership::Join, _)) => Some(Access::Joined),
            _ if self.current_visibility() == HistoryVisibility::WorldReadable => Some(Access::Peeking),
            Some((Membership::Leave | Membership::Ban, at)) if !forgotten => Some(Access::Departed { at }),
            _ => None,
        }
    }

    /// The positions of events sent while the user was joined, as Synapse judges it for erased
    /// senders: the membership before the event, and for the user's own membership events the
    /// more joined of before and after.
    pub fn joined_ranges(&self) -> Vec<Range> {
        let mut ranges = Vec::new();
        let mut joined = false;
        let mut next = 0u64;
        for &(position, change) in &self.changes {
            if position < next {
                continue; // a second change at one position: the first one decided it
            }
            if joined && position > next {
                add_range(&mut ranges, next, position - 1);
            }
            let now_joined = match change {
                Change::Membership(new) => new == Membership::Join,
                Change::Visibility(_) => joined,
            };
            if joined || now_joined {
                add_range(&mut ranges, position, position);
            }
            joined = now_joined;
            next = position + 1;
        }
        if joined && next <= self.head {
            add_range(&mut ranges, next, self.head);
        }
        ranges
    }

    /// The positions the user may see, as sorted, disjoint and non-adjacent ranges.
    pub fn visible_ranges(&self) -> Vec<Range> {
        let last_join = self
            .changes
            .iter()
            .filter(|(_, c)| *c == Change::Membership(Membership::Join))
            .map(|(p, _)| *p)
            .next_back();
        // Whether an ordinary event at `position` is visible, given the state before it.
        let sees = |visibility: HistoryVisibility, membership: Option<Membership>, position: u64| {
            visibility == HistoryVisibility::WorldReadable
                || membership == Some(Membership::Join)
                || (visibility == HistoryVisibility::Shared && last_join.is_some_and(|j| j > position))
                || (visibility == HistoryVisibility::Invited && membership == Some(Membership::Invite))
        };
        let mut ranges: Vec<Range> = Vec::new();
        let mut push = |first: u64, last: u64| add_range(&mut ranges, first, last);
        let mut visibility = HistoryVisibility::Shared;
        let mut membership = None;
        // The first position not yet decided.
        let mut next = 0u64;
        for &(position, change) in &self.changes {
            if position < next {
                continue; // a second change at one position: the first one decided it
            }
            // The ordinary events between the previous change and this one. Nothing decides
            // their visibility in between, and `last_join`, a change, is not among them.
            if position > next && sees(visibility, membership, position - 1) {
                push(next, position - 1);
            }
            let visible = match change {
                Change::Visibility(new) => {
                    let seen = sees(visibility, membership, position) || sees(new, membership, position);
                    visibility = new;
                    seen
                }
                Change::Membership(new) => {
                    membership = Some(new);
                    true
                }
            };
            if visible {
                push(position, position);
            }
            next = position + 1;
        }
        if next <= self.head && sees(visibility, membership, self.head) {
            push(next, self.head);
        }
        ranges
    }
}

/// Adds `first..=last` to sorted ranges that end before it, merging it with an adjacent last one.
fn add_range(ranges: &mut Vec<Range>, first: u64, last: u64) {
    if first > last {
        return;
    }
    match ranges.last_mut() {
        Some(r) if r.last.saturating_add(1) >= first => r.last = r.last.max(last),
        _ => ranges.push(Range { first, last }),
    }
}

/// Whether a position lies in one of the ranges.
pub fn in_ranges(ranges: &[Range], position: u64) -> bool {
    ranges.iter().any(|r| r.contains(position))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Change::{Membership as M, Visibility as V};
    use HistoryVisibility::*;
    use Membership::*;

    fn r(first: u64, last: u64) -> Range {
        Range { first, last }
    }

    fn visible(changes: &[(u64, Change)], head: u64) -> Vec<u64> {
        let ranges = Timeline::new(changes.to_vec(), head).visible_ranges();
        (0..=head + 2).filter(|p| in_ranges(&ranges, *p)).collect()
    }

    #[test]
    fn joined_ranges_cover_what_was_sent_while_joined() {
        // Joined at 3, left at 7, joined again at 12 until the head.
        let changes = [(1, V(Shared)), (3, M(Join)), (5, V(Joined)), (7, M(Leave)), (9, M(Invite)), (12, M(Join))];
        let t = Timeline::new(changes.to_vec(), 15);
        assert_eq!(t.joined_ranges(), vec![r(3, 7), r(12, 15)], "their own join and leave included");
        assert_eq!(Timeline::new(vec![(2, M(Invite))], 5).joined_ranges(), vec![]);
        assert_eq!(Timeline::new(vec![], 5).joined_ranges(), vec![]);
    }

    #[test]
    fn settings_parse_with_shared_as_the_default() {
        assert_eq!(HistoryVisibility::parse(Some("world_readable")), WorldReadable);
        assert_eq!(HistoryVisibility::parse(Some("joined")), Joined);
        assert_eq!(HistoryVisibility::parse(Some("invited")), Invited);
        assert_eq!(HistoryVisibility::parse(Some("shared")), Shared);
        assert_eq!(HistoryVisibility::parse(Some("bogus")), Shared);
        assert_eq!(HistoryVisibility::parse(None), Shared);
        assert_eq!(Membership::parse("knock"), Knock);
        assert_eq!(Membership::parse("nonsense"), Leave);
        assert!(WorldReadable < Shared && Shared < Invited && Invited < Joined);
    }

    #[test]
    fn a_member_sees_everything_while_joined() {
        // Joined at 3 under `joined` (set at 5): sees 3.. and the setting itself.
        let t = Timeline::new(vec![(3, M(Join)), (5, V(Joined))], 10);
        assert_eq!(t.visible_ranges(), vec![r(0, 10)], "shared before 5, and they joined after it");
        assert_eq!(t.access(false), Some(Access::Joined));
    }

    #[test]
    fn joined_hides_what_came_before_the_join() {
        // The room is `joined` from 4; the user joins at 8.
        let changes = [(4, V(Joined)), (8, M(Join))];
        // 0..=3 are `shared` (the default) and the user joined after them; 4 is the setting
        // event (shared before it); 5..=7 are hidden; 8.. is theirs.
        assert_eq!(visible(&changes, 12), vec![0, 1, 2, 3, 4, 8, 9, 10, 11, 12]);
    }

    #[test]
    fn invited_shows_history_from_the_invite() {
        let changes = [(2, V(Invited)), (6, M(Invite)), (9, M(Join))];
        assert_eq!(visible(&changes, 11), vec![0, 1, 2, 6, 7, 8, 9, 10, 11]);
        // Under `joined` the invite does not open history; the invite event itself is theirs.
        let changes = [(2, V(Joined)), (6, M(Invite)), (9, M(Join))];
        assert_eq!(visible(&changes, 11), vec![0, 1, 2, 6, 9, 10, 11]);
    }

    #[test]
    fn shared_shows_all_history_to_a_later_joiner_but_not_to_the_invited() {
        let changes = [(2, V(Shared)), (6, M(Invite))];
        let t = Timeline::new(changes.to_vec(), 11);
        assert_eq!(t.visible_ranges(), vec![r(6, 6)], "invited but not joined: only their invite");
        assert_eq!(t.access(false), None, "an invitee may not read a room that is not world_readable");
        let changes = [(2, V(Shared)), (6, M(Invite)), (9, M(Join))];
        assert_eq!(Timeline::new(changes.to_vec(), 11).visible_ranges(), vec![r(0, 11)]);
    }

    #[test]
    fn a_departed_user_sees_up_to_their_leave() {
        // Joined at 5 in a shared room, left at 9.
        let changes = [(2, V(Shared)), (5, M(Join)), (9, M(Leave))];
        let t = Timeline::new(changes.to_vec(), 20);
        assert_eq!(t.visible_ranges(), vec![r(0, 9)]);
        assert_eq!(t.access(false), Some(Access::Departed { at: 9 }));
        assert_eq!(t.access(true), None, "forgotten rooms are closed");
        // Banned: the same.
        let changes = [(2, V(Joined)), (5, M(Join)), (9, M(Ban))];
        let t = Timeline::new(changes.to_vec(), 20);
        assert_eq!(t.visible_ranges(), vec![r(0, 2), r(5, 9)]);
        assert_eq!(t.access(false), Some(Access::Departed { at: 9 }));
    }

    #[test]
    fn rejoining_reopens_shared_history_in_between() {
        let changes = [(2, V(Shared)), (5, M(Join)), (9, M(Leave)), (15, M(Join)), (18, M(Leave))];
        assert_eq!(Timeline::new(changes.to_vec(), 25).visible_ranges(), vec![r(0, 18)]);
        let changes = [(2, V(Joined)), (5, M(Join)), (9, M(Leave)), (15, M(Join)), (18, M(Leave))];
        assert_eq!(Timeline::new(changes.to_vec(), 25).visible_ranges(), vec![r(0, 2), r(5, 9), r(15, 18)]);
    }

    #[test]
    fn world_readable_is_open_to_anyone() {
        let changes = [(2, V(WorldReadable)), (7, V(Joined)), (12, V(WorldReadable))];
        let t = Timeline::new(changes.to_vec(), 20);
        // Never a member: `shared` 0..=1 is hidden; 2..=6 world readable; 7 is the change away
        // (world readable before it); 8..=11 hidden; 12 the change back and after it.
        assert_eq!(t.visible_ranges(), vec![r(2, 7), r(12, 20)]);
        assert_eq!(t.access(false), Some(Access::Peeking));
        assert_eq!(t.current_membership(), None);
        let closed = Timeline::new(changes[..2].to_vec(), 20);
        assert_eq!(closed.access(false), None, "not world readable now");
        // A departed user of a world readable room peeks: it is readable now.
        let departed = Timeline::new(vec![(2, V(WorldReadable)), (3, M(Join)), (4, M(Leave))], 9);
        assert_eq!(departed.access(false), Some(Access::Peeking));
        assert_eq!(departed.access(true), Some(Access::Peeking));
        assert_eq!(departed.visible_ranges(), vec![r(0, 9)], "the shared start too: they joined after it");
    }

    #[test]
    fn visibility_changes_are_visible_on_either_side() {
        // A non-member sees the switch to world_readable and the switch away from it.
        assert_eq!(visible(&[(3, V(Joined)), (5, V(WorldReadable)), (8, V(Joined))], 10), vec![5, 6, 7, 8]);
        // A member who joined under `joined` and left sees the switch made while they were in.
        assert_eq!(
            visible(&[(1, V(Joined)), (3, M(Join)), (5, V(Invited)), (6, M(Leave)), (8, V(Shared))], 9),
            vec![0, 1, 3, 4, 5, 6]
        );
    }

    #[test]
    fn own_membership_events_are_always_visible() {
        // Knocked at 4, rejected at 6 (leave), under `joined`: both are theirs to see.
        let changes = [(2, V(Joined)), (4, M(Knock)), (6, M(Leave))];
        assert_eq!(visible(&changes, 9), vec![4, 6]);
    }

    #[test]
    fn nothing_after_the_head_is_visible() {
        let t = Timeline::new(vec![(1, M(Join)), (30, M(Leave))], 10);
        assert_eq!(t.current_membership(), Some((Join, 1)), "a change after the snapshot is dropped");
        assert_eq!(t.visible_ranges(), vec![r(0, 10)]);
        assert!(in_ranges(&t.visible_ranges(), 0));
        assert!(in_ranges(&t.visible_ranges(), 10));
        assert!(!in_ranges(&t.visible_ranges(), 11));
    }

    #[test]
    fn no_history_visibility_event_means_shared() {
        let t = Timeline::new(vec![(5, M(Join))], 9);
        assert_eq!(t.current_visibility(), Shared);
        assert_eq!(t.visible_ranges(), vec![r(0, 9)]);
        let stranger = Timeline::new(vec![], 9);
        assert_eq!(stranger.visible_ranges(), vec![]);
        assert_eq!(stranger.access(false), None);
    }
}
