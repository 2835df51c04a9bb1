"""Erasure (`erase: true` on deactivation), as Synapse does it: the account is marked erased, its
profile goes, and its events are served redacted to whoever was not in the room when they were
sent; those who were there keep seeing them."""

from __future__ import annotations

import time

import pytest

from admin import ADMIN, create_user, user_path
from conftest import V3, assert_ok, profile_path, unique_name
from rooms import create_room, join, room_path, send_message

SETTLE_S = 60


@pytest.fixture
def admin(base_url):
    return create_user(base_url, unique_name("admin"), admin=True)


def messages(user, room_id: str) -> list[dict]:
    return assert_ok(user.get(room_path(room_id, "messages"), params={"dir": "b", "limit": "50"}))["chunk"]


def event_of(events: list[dict], event_id: str) -> dict:
    return next(e for e in events if e["event_id"] == event_id)


def wait_until_left(user, room_id: str, member: str) -> None:
    """Deactivation leaves rooms in the background."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        state = assert_ok(user.get(room_path(room_id, "state", "m.room.member", member)))
        if state["membership"] == "leave":
            return
        assert time.monotonic() < deadline, f"{member} never left {room_id}"
        time.sleep(0.5)


def initial_sync_timeline(user, room_id: str) -> list[dict]:
    body = assert_ok(user.get(f"{V3}/sync", params={"timeout": "0"}))
    return body["rooms"]["join"][room_id]["timeline"]["events"]


@pytest.mark.parametrize("erase", [True, False])
def test_erased_users_events_are_redacted_for_later_readers(admin, new_user, erase):
    alice, bob, carol = new_user(), new_user(), new_user()
    assert_ok(alice.put(profile_path(alice.user_id, "displayname"), json={"displayname": "Alice A"}))
    room_id = create_room(bob, preset="public_chat")
    join(alice, room_id)
    said = send_message(alice, room_id, "something alice regrets")
    assert_ok(admin.post(f"{ADMIN}/v1/deactivate/{alice.user_id}", json={"erase": erase}))
    wait_until_left(bob, room_id, alice.user_id)
    join(carol, room_id)

    shown = assert_ok(admin.get(user_path(alice.user_id)))
    assert shown["erased"] is erase and shown["deactivated"] is True and shown["displayname"] is None
    # Bob was there: he keeps the message.
    assert event_of(messages(bob, room_id), said)["content"]["body"] == "something alice regrets"
    # Carol came later: for her the message is redacted if Alice was erased, through every read.
    later = [event_of(messages(carol, room_id), said),
             assert_ok(carol.get(room_path(room_id, "event", said))),
             event_of(initial_sync_timeline(carol, room_id) + messages(carol, room_id), said)]
    context = assert_ok(carol.get(room_path(room_id, "context", said)))
    later.append(context["event"])
    for event in later:
        assert event["sender"] == alice.user_id and event["type"] == "m.room.message"
        if erase:
            assert event["content"] == {}, event
        else:
            assert event["content"]["body"] == "something alice regrets", event
    # Alice's join, with her display name, is redacted for Carol too: only the membership stays.
    joins = [e for e in messages(carol, room_id)
             if e["type"] == "m.room.member" and e["state_key"] == alice.user_id
             and e["content"]["membership"] == "join"]
    assert joins
    for event in joins:
        assert ("displayname" in event["content"]) is not erase, event
    # Bob sees Alice's join as it was.
    bob_joins = [e for e in messages(bob, room_id) if e["event_id"] in {j["event_id"] for j in joins}]
    assert all(e["content"].get("displayname") == "Alice A" for e in bob_joins), bob_joins


def test_erasing_ones_own_account(admin, new_user):
    user = new_user()
    assert_ok(user.with_password("POST", f"{V3}/account/deactivate", {"erase": True}))
    assert assert_ok(admin.get(user_path(user.user_id)))["erased"] is True


def test_an_already_deactivated_account_can_be_erased(admin, new_user):
    user = new_user()
    assert_ok(admin.post(f"{ADMIN}/v1/deactivate/{user.user_id}", json={}))
    assert assert_ok(admin.get(user_path(user.user_id)))["erased"] is False
    assert_ok(admin.post(f"{ADMIN}/v1/deactivate/{user.user_id}", json={"erase": True}))
    assert assert_ok(admin.get(user_path(user.user_id)))["erased"] is True
