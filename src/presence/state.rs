//! One user's presence as its owner (the user's `UserSync` object) keeps it: the state, the
//! devices that sync, and the timers, after Synapse's `handlers/presence.py`. Pure: every step
//! takes the time, and says whether the state others see changed.
//!
//! - A device counts while it syncs and for `sync_ms` after its last sync ended. The user is in
//!   the most available state its counting devices ask for, taken when that set or a device's
//!   wish changes; a state set with `PUT` stays until then.
//! - Nothing for `sync_ms` (no sync, no `PUT`, no activity): `offline` (`SYNC_ONLINE_TIMEOUT`).
//! - Online with no activity for `idle_ms`: `unavailable` (`IDLE_TIMER`). Activity (an event
//!   sent, a sync with `set_presence=online`, going online) brings an unavailable user back
//!   online; a sync that only polls keeps the user from going offline, not from going idle.
//! - `currently_active` is true while online within [`LAST_ACTIVE_GRANULARITY_MS`] of activity.
//!
//! Every step ends in [`UserPresence::settle`], which applies the timers as of `now`: a late or
//! repeated timer changes nothing that an earlier one did not.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How long after activity a user is `currently_active` (Synapse's `LAST_ACTIVE_GRANULARITY`).
pub const LAST_ACTIVE_GRANULARITY_MS: u64 = 60_000;

/// The spec's three states, least available first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Offline,
    Unavailable,
    Online,
}

impl State {
    pub fn parse(raw: &str) -> Option<State> {
        match raw {
            "online" => Some(State::Online),
            "unavailable" => Some(State::Unavailable),
            "offline" => Some(State::Offline),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Online => "online",
            State::Unavailable => "unavailable",
            State::Offline => "offline",
        }
    }
}

/// The timers' lengths: Synapse's 5 minutes and 30 seconds unless configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub idle_ms: u64,
    pub sync_ms: u64,
}

/// What others see of a user: a row of the `presence` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub state: State,
    pub status_msg: Option<String>,
    pub last_active_ts: u64,
    pub currently_active: bool,
}

#[derive(Debug, Clone)]
struct Device {
    wants: State,
    /// When its last sync started or ended.
    last_sync_ms: u64,
    /// Its syncs waiting right now: a waiting device counts whatever the time.
    waiting: u32,
}

/// One user's presence and what drives it.
#[derive(Debug, Clone)]
pub struct UserPresence {
    timeouts: Timeouts,
    /// As last written, and seen by others.
    shown: Shown,
    state: State,
    status_msg: Option<String>,
    last_active_ts: u64,
    /// Unavailable because the idle timer ran out, not by choice: activity undoes it.
    idle: bool,
    /// The last sync, `PUT` or activity: the offline timer runs from it.
    last_touch_ms: u64,
    devices: BTreeMap<String, Device>,
}

impl UserPresence {
    /// The owner's view after a (re)start, from the stored row: no device is known to sync, so
    /// unless one does, the user goes offline at the next timer.
    pub fn load(shown: Option<Shown>, timeouts: Timeouts) -> Self {
        let shown = shown.unwrap_or(Shown {
            state: State::Offline,
            status_msg: None,
            last_active_ts: 0,
            currently_active: false,
        });
        UserPresence {
            timeouts,
            state: shown.state,
            status_msg: shown.status_msg.clone(),
            last_active_ts: shown.last_active_ts,
            shown,
            idle: false,
            last_touch_ms: 0,
            devices: BTreeMap::new(),
        }
    }

    pub fn shown(&self) -> &Shown {
        &self.shown
    }

    /// A sync of `device` starts, asking for `wants` (`online` or `unavailable`; a sync that
    /// asks for `offline` does not affect presence and never comes here). `active`: it asked
    /// for `online` explicitly, which counts as activity; a sync that only polls does not.
    pub fn sync_started(&mut self, device: &str, wants: State, active: bool, now: u64) -> bool {
        let counting = self.counting(now);
        let dropped = self.devices.len() > counting.len();
        self.devices.retain(|d, _| counting.contains(d));
        let changed = dropped || self.devices.get(device).is_none_or(|d| d.wants != wants);
        let entry = self.devices.entry(device.to_owned()).or_insert(Device { wants, last_sync_ms: now, waiting: 0 });
        entry.wants = wants;
        entry.last_sync_ms = entry.last_sync_ms.max(now);
        self.last_touch_ms = self.last_touch_ms.max(now);
        if active {
            self.last_active_ts = now;
        }
        if changed || self.state == State::Offline {
            self.follow_devices(now);
        } else if active && self.state == State::Unavailable && self.idle {
            self.state = State::Online;
            self.idle = false;
        }
        self.settle(now)
    }

    /// A sync of `device` that affects presence starts waiting.
    pub fn wait_started(&mut self, device: &str) {
        if let Some(d) = self.devices.get_mut(device) {
            d.waiting += 1;
        }
    }

    /// A wait of `device` ended: its sync answers now.
    pub fn wait_ended(&mut self, device: &str, now: u64) -> bool {
        if let Some(d) = self.devices.get_mut(device) {
            d.waiting = d.waiting.saturating_sub(1);
            d.last_sync_ms = d.last_sync_ms.max(now);
        }
        self.last_touch_ms = self.last_touch_ms.max(now);
        self.settle(now)
    }

    /// The user did something (sent an event): an unavailable user comes back online.
    pub fn active(&mut self, now: u64) -> bool {
        self.last_active_ts = now;
        self.last_touch_ms = self.last_touch_ms.max(now);
        if self.state == State::Unavailable {
            self.state = State::Online;
            self.idle = false;
        }
        self.settle(now)
    }

    /// `PUT /presence/{userId}/status`: the state and message, as given.
    pub fn set(&mut self, state: State, status_msg: Option<String>, now: u64) -> bool {
        self.state = state;
        self.status_msg = status_msg;
        self.idle = false;
        self.last_touch_ms = self.last_touch_ms.max(now);
        if state == State::Online {
            self.last_active_ts = now;
        }
        self.settle(now)
    }

    /// Applies the timers as of `now` and records what others should see; true when that
    /// changed and must be written at a new position (Synapse's `should_notify`).
    pub fn settle(&mut self, now: u64) -> bool {
        let counting = self.counting(now);
        let dropped = self.devices.keys().any(|d| !counting.contains(d));
        if dropped {
            // Devices that stopped syncing no longer count; the rest decide, if any are left.
            self.devices.retain(|d, _| counting.contains(d));
            if !self.devices.is_empty() {
                self.follow_devices(now);
            }
        }
        if self.state != State::Offline && self.devices.is_empty() && now >= self.offline_at() {
            self.state = State::Offline;
            self.idle = false;
        }
        if self.state == State::Online && now >= self.last_active_ts.saturating_add(self.timeouts.idle_ms) {
            self.state = State::Unavailable;
            self.idle = true;
        }
        let next = Shown {
            state: self.state,
            status_msg: self.status_msg.clone(),
            last_active_ts: self.last_active_ts,
            currently_active: self.state == State::Online
                && now < self.last_active_ts.saturating_add(LAST_ACTIVE_GRANULARITY_MS),
        };
        if !should_notify(&self.shown, &next) {
            return false;
        }
        self.shown = next;
        true
    }

    /// When [`UserPresence::settle`] next has something to do, if ever.
    pub fn next_deadline(&self) -> Option<u64> {
        let mut deadlines = Vec::new();
        if self.state != State::Offline && self.devices.is_empty() {
            deadlines.push(self.offline_at());
        }
        deadlines
            .extend(self.devices.values().filter(|d| d.waiting == 0).map(|d| d.last_sync_ms + self.timeouts.sync_ms));
        if self.state == State::Online {
            deadlines.push(self.last_active_ts.saturating_add(self.timeouts.idle_ms));
        }
        if self.shown.currently_active {
            deadlines.push(self.last_active_ts.saturating_add(LAST_ACTIVE_GRANULARITY_MS));
        }
        deadlines.into_iter().min()
    }

    fn offline_at(&self) -> u64 {
        self.last_touch_ms.max(self.last_active_ts).saturating_add(self.timeouts.sync_ms)
    }

    /// The devices that count as syncing at `now`.
    fn counting(&self, now: u64) -> Vec<String> {
        self.devices
            .iter()
            .filter(|(_, d)| d.waiting > 0 || now < d.last_sync_ms.saturating_add(self.timeouts.sync_ms))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Takes the most available state the known devices ask for.
    fn follow_devices(&mut self, now: u64) {
        let Some(best) = self.devices.values().map(|d| d.wants).max() else { return };
        if best != self.state {
            self.state = best;
            self.idle = false;
            if best == State::Online {
                self.last_active_ts = self.last_active_ts.max(now);
            }
        }
    }
}

/// Synapse's `should_notify`: whether a change is worth a new position.
fn should_notify(old: &Shown, new: &Shown) -> bool {
    if old.state != new.state || old.status_msg != new.status_msg {
        return true;
    }
    let bumped = new.last_active_ts.saturating_sub(old.last_active_ts) > LAST_ACTIVE_GRANULARITY_MS;
    match old.state {
        State::Online => old.currently_active != new.currently_active || (bumped && !new.currently_active),
        _ => bumped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts { idle_ms: 300_000, sync_ms: 30_000 };

    fn fresh() -> UserPresence {
        UserPresence::load(None, T)
    }

    #[test]
    fn a_sync_brings_a_user_online_and_the_offline_timer_runs_from_its_end() {
        let mut p = fresh();
        assert!(p.sync_started("D", State::Online, true, 1_000));
        assert_eq!(p.shown().state, State::Online);
        assert!(p.shown().currently_active);
        p.wait_started("D");
        assert!(!p.settle(50_000), "a waiting device counts whatever the time");
        assert!(p.settle(100_000), "no longer currently active");
        assert_eq!(p.shown().state, State::Online);
        assert!(!p.wait_ended("D", 100_000));
        assert_eq!(p.next_deadline(), Some(130_000));
        assert!(!p.settle(129_999));
        assert!(p.settle(130_000));
        assert_eq!(p.shown().state, State::Offline);
        assert!(!p.settle(130_000), "a repeated timer changes nothing");
    }

    #[test]
    fn idle_after_five_minutes_and_activity_brings_the_user_back() {
        let mut p = fresh();
        p.sync_started("D", State::Online, true, 0);
        p.wait_started("D");
        assert!(p.settle(60_000), "currently_active ends after a minute");
        assert!(!p.shown().currently_active);
        assert_eq!(p.shown().state, State::Online);
        assert!(p.settle(300_000));
        assert_eq!(p.shown().state, State::Unavailable);
        assert!(p.active(310_000));
        assert_eq!(p.shown().state, State::Online);
        assert!(p.shown().currently_active);
        assert_eq!(p.shown().last_active_ts, 310_000);
    }

    #[test]
    fn an_online_sync_brings_an_idle_user_back_but_not_a_chosen_unavailable() {
        let mut p = fresh();
        p.sync_started("D", State::Online, true, 0);
        p.wait_started("D");
        p.settle(300_000);
        assert_eq!(p.shown().state, State::Unavailable);
        p.wait_ended("D", 300_001);
        assert!(p.sync_started("D", State::Online, true, 300_002));
        assert_eq!(p.shown().state, State::Online);
        assert!(p.set(State::Unavailable, Some("away".into()), 300_003));
        assert!(!p.sync_started("D", State::Online, true, 300_004));
        assert_eq!(p.shown().state, State::Unavailable);
    }

    #[test]
    fn a_device_that_stops_syncing_no_longer_counts() {
        let mut p = fresh();
        p.sync_started("PHONE", State::Unavailable, false, 0);
        p.sync_started("LAPTOP", State::Online, true, 0);
        assert_eq!(p.shown().state, State::Online);
        p.wait_started("PHONE");
        // The laptop's last sync ended at 0: after the sync timeout only the phone counts.
        assert!(p.settle(30_000));
        assert_eq!(p.shown().state, State::Unavailable);
        p.wait_ended("PHONE", 40_000);
        assert!(p.settle(70_000));
        assert_eq!(p.shown().state, State::Offline);
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn a_polling_sync_keeps_an_idle_user_idle() {
        let mut p = fresh();
        p.sync_started("D", State::Online, false, 0);
        assert_eq!(p.shown().state, State::Online);
        for t in 1..=10 {
            p.sync_started("D", State::Online, false, t * 30_000);
        }
        assert_eq!(p.shown().state, State::Unavailable, "idle after five minutes of polling");
        assert!(!p.sync_started("D", State::Online, false, 301_000));
        assert_eq!(p.shown().state, State::Unavailable);
        assert!(p.sync_started("D", State::Online, true, 302_000));
        assert_eq!(p.shown().state, State::Online);
    }

    #[test]
    fn repeated_syncs_change_nothing() {
        let mut p = fresh();
        p.sync_started("A", State::Online, true, 0);
        p.sync_started("B", State::Unavailable, false, 0);
        for t in 1..10 {
            assert!(!p.sync_started("A", State::Online, true, t * 100));
            assert!(!p.sync_started("B", State::Unavailable, false, t * 100));
        }
        assert_eq!(p.shown().state, State::Online);
    }

    #[test]
    fn a_put_without_syncs_lasts_the_sync_timeout() {
        let mut p = fresh();
        assert!(p.set(State::Unavailable, None, 5_000));
        assert_eq!(p.next_deadline(), Some(35_000));
        assert!(!p.settle(34_000));
        assert!(p.settle(35_000));
        assert_eq!(p.shown().state, State::Offline);
    }

    #[test]
    fn a_restarted_owner_knows_no_device_and_lets_the_user_go_offline() {
        let shown =
            Shown { state: State::Online, status_msg: Some("hi".into()), last_active_ts: 0, currently_active: false };
        let mut p = UserPresence::load(Some(shown), T);
        assert_eq!(p.next_deadline(), Some(30_000));
        assert!(p.settle(30_000));
        assert_eq!(p.shown().state, State::Offline);
        assert_eq!(p.shown().status_msg.as_deref(), Some("hi"));
    }

    #[test]
    fn last_active_bumps_notify_only_when_not_currently_active() {
        let online =
            |ts, active| Shown { state: State::Online, status_msg: None, last_active_ts: ts, currently_active: active };
        assert!(!should_notify(&online(0, true), &online(50_000, true)));
        assert!(!should_notify(&online(0, true), &online(70_000, true)));
        assert!(should_notify(&online(0, true), &online(0, false)));
        let away =
            |ts| Shown { state: State::Unavailable, status_msg: None, last_active_ts: ts, currently_active: false };
        assert!(should_notify(&away(0), &away(70_000)));
        assert!(!should_notify(&away(0), &away(50_000)));
    }
}
