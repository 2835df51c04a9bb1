"""Push-rule evaluation as clients see it: `unread_notifications` and
`unread_thread_notifications` in /sync, read receipts that clear them, and
`GET /notifications`. Delivery to push gateways is tested with the pushers."""

from __future__ import annotations

import json
import time

import pytest

from conftest import V3, assert_error, assert_ok
from rooms import create_room, invite, join, room_path, send_message

THREADS = json.dumps({"room": {"timeline": {"unread_thread_notifications": True}}})


def sync(user, since=None, timeout=0, **params) -> dict:
    if since:
        params["since"] = since
    return assert_ok(user.get(f"{V3}/sync", params={"timeout": timeout, **params}))


def counts(body: dict, room_id: str) -> tuple[int, int] | None:
    """(notification_count, highlight_count) of a joined room in a sync, None if absent."""
    room = body["rooms"]["join"].get(room_id)
    if room is None:
        return None
    unread = room["unread_notifications"]
    return unread["notification_count"], unread["highlight_count"]


def eventually(check, timeout=10.0):
    """Polls `check` until it returns a truthy value: notifications are recorded after the send
    returns, outside the sender's request."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def receipt(user, room_id, event_id, receipt_type="m.read", **body):
    assert_ok(user.post(room_path(room_id, "receipt", receipt_type, event_id), json=body))


def notifications(user, **params) -> dict:
    return assert_ok(user.get(f"{V3}/notifications", params=params))


@pytest.fixture
def pair(new_user):
    """alice's private group room with bob joined (three members, so not one to one)."""
    alice, bob, carol = new_user(), new_user(), new_user()
    room_id = create_room(alice, preset="private_chat")
    for member in (bob, carol):
        invite(alice, room_id, member)
        join(member, room_id)
    return alice, bob, room_id


def unread(user, room_id, **params):
    """The room's counts in an initial sync."""
    return counts(sync(user, **params), room_id)


def test_messages_count_mentions_highlight_and_a_receipt_clears_them(pair):
    alice, bob, room_id = pair
    assert unread(bob, room_id) == (0, 0)
    send_message(alice, room_id, "one")
    send_message(alice, room_id, "two")
    last = send_message(alice, room_id, "hey bob", **{"m.mentions": {"user_ids": [bob.user_id]}})
    assert eventually(lambda: unread(bob, room_id) == (3, 1)), unread(bob, room_id)
    # The sender is never notified by their own messages.
    assert unread(alice, room_id) == (0, 0)
    # A notice is suppressed by the default rules.
    send_message(alice, room_id, "beep", msgtype="m.notice")
    time.sleep(0.5)
    assert unread(bob, room_id) == (3, 1)
    receipt(bob, room_id, last)
    assert unread(bob, room_id) == (0, 0)


def test_a_private_receipt_clears_too_and_only_up_to_its_event(pair):
    alice, bob, room_id = pair
    first = send_message(alice, room_id, "one")
    send_message(alice, room_id, "two")
    assert eventually(lambda: unread(bob, room_id) == (2, 0))
    receipt(bob, room_id, first, "m.read.private")
    assert unread(bob, room_id) == (1, 0)


def test_an_incremental_sync_carries_new_counts_and_the_cleared_ones(pair):
    alice, bob, room_id = pair
    token = sync(bob)["next_batch"]
    event_id = send_message(alice, room_id, "hello")
    body = sync(bob, token, timeout=10000)
    # The sync that wakes for the message already has its count: evaluation runs before the wake.
    assert counts(body, room_id) == (1, 0)
    receipt(bob, room_id, event_id)
    body = sync(bob, body["next_batch"], timeout=10000)
    assert counts(body, room_id) == (0, 0)


def test_thread_counts_when_asked_for(pair):
    alice, bob, room_id = pair
    root = send_message(alice, room_id, "root")
    relation = {"m.relates_to": {"rel_type": "m.thread", "event_id": root}}
    send_message(alice, room_id, "reply 1", **relation)
    reply = send_message(alice, room_id, "reply 2", **relation)
    assert eventually(lambda: unread(bob, room_id) == (3, 0))
    body = sync(bob, filter=THREADS)
    room = body["rooms"]["join"][room_id]
    assert room["unread_notifications"] == {"notification_count": 1, "highlight_count": 0}
    assert room["unread_thread_notifications"] == {root: {"notification_count": 2, "highlight_count": 0}}
    # A threaded receipt clears its thread only; an unthreaded one clears everything.
    receipt(bob, room_id, reply, thread_id=root)
    room = sync(bob, filter=THREADS)["rooms"]["join"][room_id]
    assert room["unread_notifications"]["notification_count"] == 1
    assert room["unread_thread_notifications"] == {}
    assert unread(bob, room_id) == (1, 0)
    receipt(bob, room_id, root, thread_id="main")
    assert unread(bob, room_id) == (0, 0)


def test_an_invite_notifies_the_invitee(new_user):
    alice, bob = new_user(), new_user()
    room_id = create_room(alice, preset="private_chat")
    invite(alice, room_id, bob)
    got = eventually(lambda: notifications(bob)["notifications"])
    assert [n["event"]["type"] for n in got] == ["m.room.member"]
    assert got[0]["event"]["state_key"] == bob.user_id
    assert got[0]["room_id"] == room_id
    assert {"set_tweak": "sound", "value": "default"} in got[0]["actions"]


def test_notifications_list_read_flags_highlights_and_paginates(pair):
    alice, bob, room_id = pair
    ids = [send_message(alice, room_id, f"m{i}") for i in range(5)]
    mention = send_message(alice, room_id, "bob!", **{"m.mentions": {"user_ids": [bob.user_id]}})
    # The invite that brought bob in notified him too, and his join made it read.
    assert eventually(lambda: len(notifications(bob)["notifications"]) == 7)
    receipt(bob, room_id, ids[2])
    body = notifications(bob)
    listed = [n["event"]["event_id"] for n in body["notifications"]]
    assert listed[:6] == [mention, *reversed(ids)], "newest first"
    assert body["notifications"][6]["event"]["type"] == "m.room.member"
    assert [n["read"] for n in body["notifications"]] == [False, False, False, True, True, True, True]
    first = body["notifications"][0]
    assert first["event"]["content"]["body"] == "bob!" and first["event"]["sender"] == alice.user_id
    assert "notify" in first["actions"] and {"set_tweak": "highlight"} in first["actions"]
    assert isinstance(first["ts"], int) and "next_token" not in body
    # Every notification names the matching rule's profile tag, null as in Synapse (Sytest checks).
    assert all("profile_tag" in n and n["profile_tag"] is None for n in body["notifications"])
    # Pages of two.
    seen, token = [], None
    while True:
        page = notifications(bob, limit=2, **({"from": token} if token else {}))
        seen += [n["event"]["event_id"] for n in page["notifications"]]
        token = page.get("next_token")
        if not token:
            break
    assert seen == listed
    only = notifications(bob, only="highlight")["notifications"]
    assert [n["event"]["event_id"] for n in only] == [mention]
    # Nothing for the sender.
    assert notifications(alice)["notifications"] == []


def test_notifications_errors(user):
    assert_error(user.get(f"{V3}/notifications", params={"from": "nonsense"}), 400, "M_INVALID_PARAM")
    assert_error(user.get(f"{V3}/notifications", params={"limit": "-1"}), 400, "M_INVALID_PARAM")
    assert_error(user.client.get(f"{V3}/notifications"), 401, "M_MISSING_TOKEN")


def test_a_redacted_notification_is_served_redacted(pair):
    alice, bob, room_id = pair
    event_id = send_message(alice, room_id, "secret")
    assert eventually(lambda: notifications(bob)["notifications"])
    assert_ok(alice.put(room_path(room_id, "redact", event_id, "r1"), json={}))
    event = notifications(bob)["notifications"][0]["event"]
    assert event["event_id"] == event_id and event["content"] == {}


def test_a_member_who_ignores_the_sender_gets_no_notification(pair):
    alice, bob, room_id = pair
    path = f"{V3}/user/{bob.user_id}/account_data/m.ignored_user_list"
    assert_ok(bob.put(path, json={"ignored_users": {alice.user_id: {}}}))
    send_message(alice, room_id, "you can't hear me")
    time.sleep(0.5)
    assert unread(bob, room_id) == (0, 0)
    assert [n["event"]["type"] for n in notifications(bob)["notifications"]] == ["m.room.member"]
