"""Presence timers, on a server with short ones (idle after 8 s, offline 2 s after the last sync):
idle becomes `unavailable`, a user whose syncs stopped becomes `offline`, activity brings the user
back, and a device that stops syncing no longer counts. The timers are alarms of the user's
UserSync object; the margins are generous, the machine is loaded."""

from __future__ import annotations

import threading
import time

import pytest

from conftest import NAMED_SERVERS, V3, User, assert_ok, auth_header, make_client, register
from rooms import create_room, join, send_message
from test_presence import presence_of, status_path, sync

IDLE_S = int(NAMED_SERVERS["presence_timers_url"]["PRESENCE_IDLE_TIMEOUT_MS"]) / 1000
SYNC_S = int(NAMED_SERVERS["presence_timers_url"]["PRESENCE_SYNC_TIMEOUT_MS"]) / 1000


@pytest.fixture
def account(new_client, presence_timers_url):
    def make() -> User:
        client = new_client(presence_timers_url)
        body = register(client)
        return User(client, body["user_id"], body["access_token"], body["device_id"])

    return make


@pytest.fixture
def pair(account):
    """Alice, and Bob who shares a room with her and watches her presence."""
    alice, bob = account(), account()
    join(bob, create_room(alice, preset="public_chat"))
    return alice, bob


class Syncing:
    """Keeps one device syncing, long poll after long poll, until stopped."""

    def __init__(self, user: User, token: str, set_presence: str | None = None, poll_ms: int = 1000):
        self.client = make_client(str(user.client.base_url))
        self.token, self.set_presence, self.poll_ms = token, set_presence, poll_ms
        self.stopped = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        since = None
        while not self.stopped.is_set():
            params = {"timeout": self.poll_ms if since else 0}
            if since:
                params["since"] = since
            if self.set_presence:
                params["set_presence"] = self.set_presence
            resp = self.client.get(f"{V3}/sync", params=params, headers=auth_header(self.token))
            if resp.status_code != 200:
                self.errors.append(resp.text)
                return
            since = resp.json()["next_batch"]

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=30)
        self.client.close()
        assert not self.errors, self.errors


def status(reader: User, user: User) -> dict:
    return assert_ok(reader.get(status_path(user.user_id)))


def wait_for(reader: User, user: User, presence: str, timeout: float = 30) -> tuple[float, dict]:
    """Polls until `user` is in `presence`; returns the seconds it took and the status."""
    started = time.monotonic()
    while True:
        seen = status(reader, user)
        if seen["presence"] == presence:
            return time.monotonic() - started, seen
        assert time.monotonic() - started < timeout, f"still {seen} after {timeout} s, waiting for {presence}"
        time.sleep(0.2)


def test_a_user_whose_syncs_stop_goes_offline_and_wakes_the_watchers(pair):
    alice, bob = pair
    token = sync(bob, set_presence="offline")["next_batch"]
    sync(alice)
    ended = time.monotonic()
    assert status(bob, alice)["presence"] == "online"
    out = {}

    def watch():
        started = time.monotonic()
        # Alice's going online may already be past the token: wait for the change to offline.
        since = token
        while time.monotonic() - started < 40:
            response = sync(bob, since, timeout=20_000, set_presence="offline")
            since = response["next_batch"]
            seen = presence_of(response).get(alice.user_id)
            if seen and seen["presence"] == "offline":
                out["seconds"] = time.monotonic() - started
                return

    watcher = threading.Thread(target=watch)
    started = time.monotonic()
    watcher.start()
    _, seen = wait_for(bob, alice, "offline")
    took = time.monotonic() - ended
    # The timer runs from the sync, which took a moment itself.
    assert took >= SYNC_S - 1, f"offline after {took:.1f} s, before the sync timeout"
    assert "currently_active" not in seen
    watcher.join(timeout=45)
    assert "seconds" in out, "the waiting sync saw the change to offline"
    assert time.monotonic() - started < 30


def test_a_polling_user_goes_idle_and_activity_brings_it_back(pair):
    alice, bob = pair
    room_id = create_room(alice, preset="public_chat")
    join(bob, room_id)
    device = Syncing(alice, alice.access_token)
    try:
        _, seen = wait_for(bob, alice, "online")
        assert seen["currently_active"] is True
        took, seen = wait_for(bob, alice, "unavailable", timeout=IDLE_S + 30)
        assert took >= IDLE_S - 2.5, f"idle after {took:.1f} s"
        assert "currently_active" not in seen
        assert seen["last_active_ago"] >= (IDLE_S - 1) * 1000
        # Polling keeps Alice from going offline, not from staying idle.
        time.sleep(SYNC_S * 2)
        assert status(bob, alice)["presence"] == "unavailable"
        # An explicit set_presence=online is activity.
        sync(alice, set_presence="online")
        _, seen = wait_for(bob, alice, "online", timeout=10)
        assert seen["currently_active"] is True and seen["last_active_ago"] < 10_000
        wait_for(bob, alice, "unavailable", timeout=IDLE_S + 30)
        # So is sending an event.
        send_message(alice, room_id, "back")
        _, seen = wait_for(bob, alice, "online", timeout=10)
        assert seen["currently_active"] is True and seen["last_active_ago"] < 10_000
    finally:
        device.stop()
    wait_for(bob, alice, "offline")


def test_a_device_that_stops_syncing_no_longer_counts(pair):
    alice, bob = pair
    phone = alice.login()["access_token"]
    device = Syncing(alice, phone, set_presence="unavailable")
    try:
        wait_for(bob, alice, "unavailable")
        # The laptop syncs once, online: the most available device wins.
        assert_ok(alice.get(f"{V3}/sync", params={"set_presence": "online"}))
        ended = time.monotonic()
        assert status(bob, alice)["presence"] == "online"
        # It stops: after the sync timeout only the phone counts, long before the idle timer.
        wait_for(bob, alice, "unavailable")
        took = time.monotonic() - ended
        assert SYNC_S - 1 <= took < IDLE_S - 1, f"the laptop stopped counting after {took:.1f} s"
        time.sleep(SYNC_S * 2)
        assert status(bob, alice)["presence"] == "unavailable", "the phone still syncs"
    finally:
        device.stop()
    wait_for(bob, alice, "offline")


def test_a_status_set_without_syncing_lasts_the_sync_timeout(pair):
    alice, bob = pair
    assert_ok(alice.put(status_path(alice.user_id), json={"presence": "unavailable", "status_msg": "brb"}))
    seen = status(bob, alice)
    assert seen["presence"] == "unavailable" and seen["status_msg"] == "brb"
    took, seen = wait_for(bob, alice, "offline")
    assert seen["status_msg"] == "brb", "going offline keeps the message"
    # A sync brings Alice back.
    sync(alice)
    assert status(bob, alice)["presence"] == "online"
    assert took < 30
