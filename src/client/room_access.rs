//! Who may read what of a room, checked against D1, and the pagination tokens of room history.
//!
//! Every read of a room's events or state goes through a [`RoomView`]: it finds the room
//! (`M_NOT_FOUND` for one this server does not have), decides whether the requester may read it
//! at all (`M_FORBIDDEN` when not), and knows which stream positions history visibility lets the
//! requester see ([`crate::room::visibility`]). Readers pass those positions into their queries
//! and check each row again, so that no path serves an event visibility hides.
//!
//! # Pagination tokens
//!
//! A token is `s<N>`: the point in history just after global stream position `N`. Paging
//! backward from it returns events at `N` and below, newest first; paging forward returns events
//! above `N`, oldest first; as a `to` bound it stops before the events on its far side; as the
//! `at` of `/members` it means the state just after `N`. `/sync` hands out the same tokens:
//! its `prev_batch` is `s<P - 1>` for a timeline whose oldest event is at `P`, and its live
//! position is `s<head>`. Anything after an `_` is ignored here, so that a token carrying
//! other streams' positions (`s<N>_...`) also works as a room history position.

use ruma_common::RoomId;
use serde_json::Value;

use crate::context::Ctx;
use crate::error::{forbidden, invalid_param, missing_param, not_found, Result};
use crate::room::client_format::{client_event, Reader};
use crate::room::versions::RoomVersion;
use crate::room::visibility::{in_ranges, Access, Change, HistoryVisibility, Membership, Range, Timeline};
use crate::storage::events::{self, Direction, EventSelection, StoredEvent, TimelineRow};
use crate::time::now_ms;

use super::rooms::{parse_event_id, reader, room_version};

/// The largest position a token may name: D1 numbers are exact up to 2^53.
const MAX_POSITION: u64 = (1 << 53) - 1;

/// The token for the point just after stream position `position`.
pub fn stream_token(position: u64) -> String {
    format!("s{position}")
}

/// The stream position a token names: `M_INVALID_PARAM` for anything that is not one of ours.
pub fn parse_stream_token(raw: &str) -> Result<u64> {
    let bad = || invalid_param(format!("Unknown pagination token {raw:?}"));
    let digits = raw.strip_prefix('s').ok_or_else(bad)?;
    let digits = digits.split_once('_').map_or(digits, |(d, _)| d);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 16 {
        return Err(bad());
    }
    digits.parse::<u64>().ok().filter(|p| *p <= MAX_POSITION).ok_or_else(bad)
}

/// An optional token query parameter.
pub fn token_param(cx: &Ctx, name: &str) -> Result<Option<u64>> {
    cx.req.query(name).map(parse_stream_token).transpose()
}

/// The `dir` query parameter: `b` or `f`; `default` when absent, or `M_MISSING_PARAM`.
pub fn dir_param(cx: &Ctx, default: Option<Direction>) -> Result<Direction> {
    parse_dir(cx.req.query("dir"), default)
}

pub fn parse_dir(raw: Option<&str>, default: Option<Direction>) -> Result<Direction> {
    match raw {
        Some("b") => Ok(Direction::Backward),
        Some("f") => Ok(Direction::Forward),
        Some(other) => Err(invalid_param(format!("dir must be \"b\" or \"f\", not {other:?}"))),
        None => default.ok_or_else(|| missing_param("The dir parameter is required")),
    }
}

/// A non-negative integer query parameter, at most `max`.
pub fn parse_limit(raw: Option<&str>, default: u64, max: u64) -> Result<u64> {
    match raw {
        None => Ok(default.min(max)),
        Some(raw) => raw
            .parse::<u64>()
            .map(|n| n.min(max))
            .map_err(|_| invalid_param(format!("limit must be a non-negative integer, not {raw:?}"))),
    }
}

/// A boolean query parameter: `true` or `false`.
pub fn parse_bool(name: &str, raw: Option<&str>) -> Result<Option<bool>> {
    match raw {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(invalid_param(format!("{name} must be true or false, not {other:?}"))),
    }
}

/// An event ID path parameter: `M_INVALID_PARAM` when it is not one.
pub fn event_id_param(cx: &Ctx) -> Result<String> {
    parse_event_id(cx.param("eventId")).map(|id| id.to_string())
}

/// The rows of [`events::visibility_timeline`] as a [`Timeline`], and whether the user forgot
/// the room.
pub fn timeline_from_rows(rows: Vec<TimelineRow>) -> (Timeline, bool) {
    let mut changes = Vec::new();
    let mut head = 0;
    let mut forgotten = false;
    for row in rows {
        let position = row.stream_ordering as u64;
        match row.kind.as_str() {
            "head" => {
                head = position;
                forgotten = row.forgotten.unwrap_or(0.0) != 0.0;
            }
            "m.room.history_visibility" => {
                changes.push((position, Change::Visibility(HistoryVisibility::parse(row.visibility.as_deref()))));
            }
            _ => {
                changes.push((position, Change::Membership(Membership::parse(row.membership.as_deref().unwrap_or("")))))
            }
        }
    }
    (Timeline::new(changes, head), forgotten)
}

/// A page of events and where the next one starts.
#[derive(Debug)]
pub struct Page {
    pub events: Vec<StoredEvent>,
    /// The token position to continue from in the same direction; `None` when nothing visible
    /// is left that way.
    pub next: Option<u64>,
}

/// What the requester may read of one room.
pub struct RoomView {
    pub room_id: String,
    pub version: RoomVersion,
    pub access: Access,
    pub timeline: Timeline,
    pub visible: Vec<Range>,
    /// Where the requester was joined: erased senders' events elsewhere are served redacted.
    pub joined: Vec<Range>,
}

impl RoomView {
    /// Opens a room for the requester: `M_NOT_FOUND` for an unknown room, `M_FORBIDDEN` when
    /// the requester may not read it (not joined, not departed, and not `world_readable`).
    pub async fn open(cx: &Ctx, room_id: &RoomId) -> Result<RoomView> {
        let user = cx.requester()?.user_id.as_str();
        let (version, rows) =
            futures::join!(room_version(cx, room_id), events::visibility_timeline(&cx.db, room_id.as_str(), user));
        let version = version?;
        let (timeline, forgotten) = timeline_from_rows(rows?);
        let access = timeline.access(forgotten).ok_or_else(|| {
            forbidden("You are not allowed to read this room: you are not in it and it is not world readable")
        })?;
        let visible = timeline.visible_ranges();
        let joined = timeline.joined_ranges();
        Ok(RoomView { room_id: room_id.to_string(), version, access, timeline, visible, joined })
    }

    /// The snapshot position: nothing after it is served.
    pub fn head(&self) -> u64 {
        self.timeline.head()
    }

    /// Whether the requester may see this event of this room.
    pub fn can_see(&self, e: &StoredEvent) -> bool {
        e.room_id == self.room_id && e.position() <= self.head() && in_ranges(&self.visible, e.position())
    }

    /// The position whose state the requester reads: `None` for the current state, or the
    /// moment a departed user left.
    pub fn state_position(&self) -> Option<u64> {
        match self.access {
            Access::Joined | Access::Peeking => None,
            Access::Departed { at } => Some(at),
        }
    }

    /// An event of this room the requester may see: `M_NOT_FOUND` otherwise, whether it does not
    /// exist, is in another room, or is hidden.
    pub async fn event(&self, cx: &Ctx, event_id: &str) -> Result<StoredEvent> {
        events::get(&cx.db, event_id).await?.filter(|e| self.can_see(e)).ok_or_else(|| not_found("Event not found"))
    }

    /// The client format of an event, for the requester.
    pub fn serve(&self, cx: &Ctx, e: &StoredEvent) -> Result<Value> {
        Ok(client_event(e, &self.version, self.reader(cx)?, now_ms()))
    }

    /// The requester as a reader of this room's events.
    pub fn reader<'a>(&'a self, cx: &'a Ctx) -> Result<Reader<'a>> {
        Ok(Reader { joined: Some(&self.joined), ..reader(cx)? })
    }

    pub fn serve_all(&self, cx: &Ctx, events: &[StoredEvent]) -> Result<Vec<Value>> {
        events.iter().map(|e| self.serve(cx, e)).collect()
    }

    /// Up to `limit` visible events from the token position `from` (the live end backward, the
    /// start of the room forward, when absent) toward the token position `to`, narrowed by
    /// `selection`.
    pub async fn page(
        &self,
        cx: &Ctx,
        dir: Direction,
        from: Option<u64>,
        to: Option<u64>,
        selection: &EventSelection,
        limit: u64,
    ) -> Result<Page> {
        let head = self.head();
        let from = from.map(|f| f.min(head));
        // `page` bounds are exclusive positions; a token is the point after its position.
        let (start, bound_from, bound_to) = match dir {
            Direction::Backward => {
                let start = from.unwrap_or(head);
                (start, Some(start + 1), to)
            }
            Direction::Forward => (from.unwrap_or(0), from, to.map(|t| t.min(head) + 1)),
        };
        let empty_range = match (dir, to) {
            (Direction::Backward, Some(to)) => to >= start,
            (Direction::Forward, Some(to)) => to <= start,
            _ => false,
        };
        if empty_range || self.visible.is_empty() {
            return Ok(Page { events: Vec::new(), next: None });
        }
        let mut selection = selection.clone();
        selection.visible = Some(self.visible.clone());
        // One more than asked tells whether more follow.
        let rows = events::page(&cx.db, &self.room_id, dir, bound_from, bound_to, &selection, limit + 1).await?;
        Ok(self.take_visible(dir, start, rows, limit))
    }

    /// The first `limit` visible rows of a page fetched with one row to spare, and where the
    /// next page starts.
    fn take_visible(&self, dir: Direction, start: u64, rows: Vec<StoredEvent>, limit: u64) -> Page {
        let fetched = rows.len() as u64;
        let mut events = Vec::new();
        // The token position after the last row looked at.
        let mut next = start;
        let mut rows = rows.into_iter();
        for e in rows.by_ref() {
            if events.len() as u64 == limit {
                // A visible row is left over: the page is full, and more follow.
                if self.can_see(&e) {
                    return Page { events, next: Some(next) };
                }
            }
            next = match dir {
                Direction::Backward => e.position().saturating_sub(1),
                Direction::Forward => e.position(),
            };
            if self.can_see(&e) && (events.len() as u64) < limit {
                events.push(e);
            }
        }
        // Every row was used. If the query hit its limit, rows the checks dropped may hide more.
        let more = fetched > limit;
        Page { events, next: more.then_some(next) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        assert_eq!(stream_token(42), "s42");
        assert_eq!(parse_stream_token("s42").unwrap(), 42);
        assert_eq!(parse_stream_token("s0").unwrap(), 0);
        assert_eq!(parse_stream_token("s42_7_9").unwrap(), 42, "other streams' positions are ignored");
        for bad in
            ["", "s", "42", "t42", "s-1", "s4x", "s 4", "s+4", "s_1", "s99999999999999999999", "s9007199254740992"]
        {
            let err = parse_stream_token(bad).unwrap_err();
            assert_eq!(err.matrix().unwrap().kind, crate::error::ErrorKind::InvalidParam, "{bad:?}");
        }
        assert_eq!(parse_stream_token("s9007199254740991").unwrap(), MAX_POSITION);
    }

    #[test]
    fn query_parameters() {
        assert_eq!(parse_dir(Some("b"), None).unwrap(), Direction::Backward);
        assert_eq!(parse_dir(None, Some(Direction::Forward)).unwrap(), Direction::Forward);
        assert_eq!(parse_dir(None, None).unwrap_err().matrix().unwrap().kind, crate::error::ErrorKind::MissingParam);
        assert_eq!(
            parse_dir(Some("x"), None).unwrap_err().matrix().unwrap().kind,
            crate::error::ErrorKind::InvalidParam
        );
        assert_eq!(parse_limit(None, 10, 1000).unwrap(), 10);
        assert_eq!(parse_limit(Some("5000"), 10, 1000).unwrap(), 1000);
        assert_eq!(parse_limit(Some("0"), 10, 1000).unwrap(), 0);
        assert!(parse_limit(Some("-1"), 10, 1000).is_err());
        assert!(parse_limit(Some("ten"), 10, 1000).is_err());
        assert_eq!(parse_bool("recurse", Some("true")).unwrap(), Some(true));
        assert!(parse_bool("recurse", Some("yes")).is_err());
    }

    fn row(position: u64, kind: &str, membership: Option<&str>, visibility: Option<&str>) -> TimelineRow {
        TimelineRow {
            stream_ordering: position as f64,
            kind: kind.into(),
            membership: membership.map(Into::into),
            visibility: visibility.map(Into::into),
            forgotten: None,
        }
    }

    #[test]
    fn timeline_rows_become_a_timeline() {
        let mut head = row(20, "head", None, None);
        head.forgotten = Some(1.0);
        let rows = vec![
            row(9, "m.room.member", Some("leave"), None),
            row(4, "m.room.history_visibility", None, Some("joined")),
            head,
            row(6, "m.room.member", Some("join"), None),
        ];
        let (timeline, forgotten) = timeline_from_rows(rows);
        assert!(forgotten);
        assert_eq!(timeline.head(), 20);
        assert_eq!(timeline.current_membership(), Some((Membership::Leave, 9)));
        assert_eq!(timeline.current_visibility(), HistoryVisibility::Joined);
        assert_eq!(timeline.visible_ranges(), vec![Range { first: 0, last: 4 }, Range { first: 6, last: 9 }]);
        assert_eq!(timeline.access(forgotten), None);
        assert_eq!(timeline.access(false), Some(Access::Departed { at: 9 }));
    }

    fn view(visible: Vec<Range>, head: u64) -> RoomView {
        RoomView {
            room_id: "!r:hs".into(),
            version: RoomVersion::parse("12").unwrap(),
            access: Access::Joined,
            timeline: Timeline::new(vec![], head),
            visible,
            joined: vec![],
        }
    }

    fn stored(position: u64) -> StoredEvent {
        StoredEvent {
            stream_ordering: position as f64,
            event_id: format!("$e{position}"),
            room_id: "!r:hs".into(),
            kind: "m.room.message".into(),
            state_key: None,
            sender: "@a:hs".into(),
            origin_server_ts: 0.0,
            membership: None,
            txn_device_id: None,
            txn_id: None,
            prev_state: None,
            json: "{}".into(),
            redaction_json: None,
            redaction_id: None,
            sender_erased: 0.0,
        }
    }

    fn positions(page: &Page) -> Vec<u64> {
        page.events.iter().map(StoredEvent::position).collect()
    }

    #[test]
    fn pages_end_exactly_where_history_does() {
        let v = view(vec![Range { first: 0, last: 100 }], 100);
        // Backward from s50 with limit 2: rows 50, 49 and the spare 48.
        let page = v.take_visible(Direction::Backward, 50, vec![stored(50), stored(49), stored(48)], 2);
        assert_eq!(positions(&page), vec![50, 49]);
        assert_eq!(page.next, Some(48), "continue at events <= 48");
        // Only two rows left: the end.
        let page = v.take_visible(Direction::Backward, 48, vec![stored(48), stored(47)], 2);
        assert_eq!(positions(&page), vec![48, 47]);
        assert_eq!(page.next, None);
        // Forward: continue after the last event returned.
        let page = v.take_visible(Direction::Forward, 10, vec![stored(11), stored(12), stored(13)], 2);
        assert_eq!(positions(&page), vec![11, 12]);
        assert_eq!(page.next, Some(12));
        // Limit 0: nothing returned, and more follow from where we started.
        let page = v.take_visible(Direction::Forward, 10, vec![stored(11)], 0);
        assert!(page.events.is_empty());
        assert_eq!(page.next, Some(10));
    }

    #[test]
    fn rows_the_ranges_hide_are_dropped_and_paging_goes_on_past_them() {
        // The hull of many ranges let rows 49 and 48 through; only 50 and 47.. are visible.
        let v = view(vec![Range { first: 0, last: 47 }, Range { first: 50, last: 60 }], 60);
        let page = v.take_visible(Direction::Backward, 50, vec![stored(50), stored(49), stored(48)], 2);
        assert_eq!(positions(&page), vec![50]);
        assert_eq!(page.next, Some(47), "the next page starts below the hidden rows");
        // Events of other rooms or past the head are never served.
        let mut other = stored(5);
        other.room_id = "!other:hs".into();
        assert!(!v.can_see(&other));
        assert!(!v.can_see(&stored(61)));
        assert!(!v.can_see(&stored(48)));
        assert!(v.can_see(&stored(47)));
    }
}
