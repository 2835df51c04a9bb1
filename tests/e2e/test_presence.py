"""Presence: `GET` and `PUT /presence/{userId}/status`, `set_presence` on `/sync`, and the
`presence` section of `/sync`, seen by the users who share a room."""

from __future__ import annotations

import json
import threading
import time

from conftest import V3, User, assert_error, assert_ok, register
from rooms import create_room, join


def status_path(user_id: str) -> str:
    return f"{V3}/presence/{user_id}/status"


def set_status(user, presence: str, **extra) -> None:
    assert assert_ok(user.put(status_path(user.user_id), json={"presence": presence, **extra})) == {}


def get_status(reader, user) -> dict:
    return assert_ok(reader.get(status_path(user.user_id)))


def sync(user, since: str | None = None, timeout: int = 0, **params) -> dict:
    query = {"timeout": timeout, **params}
    if since:
        query["since"] = since
    return assert_ok(user.get(f"{V3}/sync", params=query))


def presence_of(response: dict) -> dict[str, dict]:
    """The presence events of a sync by sender; each sender at most once."""
    events = response["presence"]["events"]
    assert all(e["type"] == "m.presence" for e in events)
    senders = [e["sender"] for e in events]
    assert len(senders) == len(set(senders)), senders
    return {e["sender"]: e["content"] for e in events}


def sharing(user, new_user):
    """Another user who shares a room with `user`."""
    other = new_user()
    room_id = create_room(user, preset="public_chat")
    join(other, room_id)
    return other


def test_own_presence_round_trips(user):
    set_status(user, "online", status_msg="Working")
    status = get_status(user, user)
    assert status["presence"] == "online" and status["status_msg"] == "Working"
    assert status["currently_active"] is True
    assert 0 <= status["last_active_ago"] < 60_000
    time.sleep(0.3)
    # A new state without a message clears the message; only going online is activity.
    set_status(user, "unavailable")
    status = get_status(user, user)
    assert status["presence"] == "unavailable"
    assert "status_msg" not in status and "currently_active" not in status
    assert status["last_active_ago"] >= 300
    set_status(user, "offline", status_msg=None)
    assert get_status(user, user)["presence"] == "offline"


def test_a_user_without_presence_is_offline(user, new_user):
    other = sharing(user, new_user)
    assert get_status(user, other) == {"presence": "offline"}


def test_presence_is_visible_only_to_users_who_share_a_room(user, new_user):
    stranger = new_user()
    set_status(stranger, "online")
    assert_error(user.get(status_path(stranger.user_id)), 403, "M_FORBIDDEN")
    room_id = create_room(user, preset="public_chat")
    join(stranger, room_id)
    assert get_status(user, stranger)["presence"] == "online"


def test_bad_requests(user, new_user):
    other = new_user()
    assert_error(user.put(status_path(other.user_id), json={"presence": "online"}), 403, "M_FORBIDDEN")
    assert_error(user.put(status_path(user.user_id), json={"presence": "busy"}), 400, "M_INVALID_PARAM")
    assert_error(user.put(status_path(user.user_id), json={"status_msg": "no state"}), 400, "M_MISSING_PARAM")
    assert_error(user.put(status_path(user.user_id), json={"presence": "online", "status_msg": 5}), 400,
                 "M_BAD_JSON")
    assert_error(user.put(status_path(user.user_id), json=["online"]), 400, "M_BAD_JSON")
    assert_error(user.put(status_path(user.user_id), content=b"{nope"), 400, "M_NOT_JSON")
    assert_error(user.get(status_path("not-a-user")), 400, "M_INVALID_PARAM")
    assert_error(user.put(status_path("not-a-user"), json={"presence": "online"}), 400, "M_INVALID_PARAM")
    assert_error(user.client.get(status_path(user.user_id)), 401, "M_MISSING_TOKEN")
    # Nothing was changed by any of them.
    assert get_status(user, user) == {"presence": "offline"}


def test_set_presence_on_sync(user, new_user):
    other = sharing(user, new_user)
    sync(other, set_presence="unavailable")
    assert get_status(user, other)["presence"] == "unavailable"
    # offline leaves the presence alone.
    sync(other, set_presence="offline")
    assert get_status(user, other)["presence"] == "unavailable"
    # A sync without set_presence marks the user online, and keeps a status message.
    set_status(other, "unavailable", status_msg="At lunch")
    sync(other)
    status = get_status(user, other)
    assert status["presence"] == "online" and status["status_msg"] == "At lunch"
    assert_error(other.get(f"{V3}/sync", params={"set_presence": "away"}), 400, "M_INVALID_PARAM")


def test_two_devices_that_ask_for_different_states_settle(user, new_user):
    """The most available device wins, and syncs that ask for the same again change nothing: no
    device's sync undoes the other's, which would wake both for ever."""
    other = sharing(user, new_user)
    phone = other.login()["access_token"]

    def other_sync(token: str, state: str) -> None:
        assert_ok(other.get(f"{V3}/sync", params={"set_presence": state}, token=token))

    other_sync(phone, "unavailable")
    assert get_status(user, other)["presence"] == "unavailable"
    other_sync(other.access_token, "online")
    assert get_status(user, other)["presence"] == "online"
    token = sync(user, set_presence="offline")["next_batch"]
    for _ in range(2):
        other_sync(phone, "unavailable")
        other_sync(other.access_token, "online")
    assert presence_of(sync(user, token, set_presence="offline")) == {}, "no change, no presence event"
    assert get_status(user, other)["presence"] == "online"
    # A state set explicitly stays until a device asks for something new.
    set_status(other, "unavailable", status_msg="away")
    other_sync(other.access_token, "online")
    assert get_status(user, other)["presence"] == "unavailable"
    # A device that stops syncing stops counting: test_presence_timers.py.


def test_sync_serves_presence_of_those_who_share_a_room(user, new_user):
    other, stranger = sharing(user, new_user), new_user()
    set_status(other, "unavailable", status_msg="brb")
    set_status(stranger, "online")
    initial = sync(user, set_presence="offline")
    seen = presence_of(initial)
    assert seen[other.user_id]["presence"] == "unavailable"
    assert seen[other.user_id]["status_msg"] == "brb"
    assert stranger.user_id not in seen
    # Incrementally: only what changed.
    again = sync(user, initial["next_batch"], set_presence="offline")
    assert presence_of(again) == {}
    set_status(other, "online")
    changed = presence_of(sync(user, initial["next_batch"], set_presence="offline"))
    assert list(changed) == [other.user_id]
    assert changed[other.user_id]["presence"] == "online" and changed[other.user_id]["currently_active"] is True
    assert "status_msg" not in changed[other.user_id]


def test_a_newly_joined_room_brings_its_members_presence(user, new_user):
    """An incremental sync gives the presence of whoever newly shares a room, changed in its
    window or not (as Synapse's): the members of a room the reader joined, and a new member."""
    owner, newcomer = new_user(), new_user()
    set_status(owner, "unavailable", status_msg="away")
    set_status(newcomer, "online", status_msg="new")
    room_id = create_room(owner, preset="public_chat")
    token = sync(user, set_presence="offline")["next_batch"]
    join(user, room_id)
    first = sync(user, token, set_presence="offline")
    seen = presence_of(first)
    assert seen[owner.user_id]["presence"] == "unavailable" and seen[owner.user_id]["status_msg"] == "away"
    assert newcomer.user_id not in seen
    # Once only: the next sync has nothing new.
    assert owner.user_id not in presence_of(sync(user, first["next_batch"], set_presence="offline"))
    # A new member of a room the reader is in.
    join(newcomer, room_id)
    later = presence_of(sync(user, first["next_batch"], set_presence="offline"))
    assert later[newcomer.user_id]["status_msg"] == "new"
    assert owner.user_id not in later
    # A display name change is no new join.
    token = sync(user, first["next_batch"], set_presence="offline")["next_batch"]
    assert_ok(newcomer.put(f"{V3}/profile/{newcomer.user_id}/displayname", json={"displayname": "Newcomer"}))
    assert newcomer.user_id not in presence_of(sync(user, token, set_presence="offline"))


def test_own_presence_comes_in_sync(user):
    set_status(user, "unavailable", status_msg="me")
    assert presence_of(sync(user, set_presence="offline"))[user.user_id]["status_msg"] == "me"


def test_a_presence_change_wakes_a_waiting_sync(user, new_user):
    other = sharing(user, new_user)
    token = sync(user, set_presence="offline")["next_batch"]
    out = {}

    def wait():
        started = time.monotonic()
        out["response"] = sync(user, token, timeout=20_000, set_presence="offline")
        out["seconds"] = time.monotonic() - started

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)
    set_status(other, "unavailable", status_msg="wake")
    waiter.join(timeout=25)
    assert out["seconds"] < 5, "woken by the change, not by the timeout"
    assert presence_of(out["response"])[other.user_id]["status_msg"] == "wake"


def test_a_stranger_does_not_wake_a_waiting_sync(user, new_user):
    stranger = new_user()
    token = sync(user, set_presence="offline")["next_batch"]
    set_status(stranger, "online")
    started = time.monotonic()
    response = sync(user, token, timeout=1500, set_presence="offline")
    assert time.monotonic() - started >= 1.4
    assert presence_of(response) == {}


def test_presence_filter(user, new_user):
    first, second = sharing(user, new_user), sharing(user, new_user)
    set_status(first, "online")
    set_status(second, "unavailable")
    set_status(user, "online")

    def seen(presence_filter: dict) -> set[str]:
        return set(presence_of(sync(user, set_presence="offline", filter=json.dumps({"presence": presence_filter}))))

    assert seen({}) == {first.user_id, second.user_id, user.user_id}
    assert seen({"not_senders": [first.user_id]}) == {second.user_id, user.user_id}
    assert seen({"senders": [second.user_id]}) == {second.user_id}
    assert seen({"types": ["m.room.message"]}) == set()
    assert seen({"not_types": ["m.*"]}) == set()
    # The limit keeps the newest changes.
    assert seen({"limit": 1}) == {user.user_id}


def test_ignored_users_presence_is_hidden(user, new_user):
    pest = sharing(user, new_user)
    set_status(pest, "online")
    assert pest.user_id in presence_of(sync(user, set_presence="offline"))
    ignore = {"ignored_users": {pest.user_id: {}}}
    assert_ok(user.put(f"{V3}/user/{user.user_id}/account_data/m.ignored_user_list", json=ignore))
    assert pest.user_id not in presence_of(sync(user, set_presence="offline"))


def test_with_presence_disabled_requests_are_checked_and_everyone_is_offline(new_client, presence_disabled_url):
    def account() -> User:
        client = new_client(presence_disabled_url)
        body = register(client)
        return User(client, body["user_id"], body["access_token"], body["device_id"])

    alice, bob = account(), account()
    room_id = create_room(alice, preset="public_chat")
    join(bob, room_id)
    set_status(bob, "online", status_msg="here")
    sync(bob)
    assert get_status(alice, bob) == {"presence": "offline"}
    assert presence_of(sync(alice)) == {}
    assert_error(bob.put(status_path(bob.user_id), json={"presence": "busy"}), 400, "M_INVALID_PARAM")
