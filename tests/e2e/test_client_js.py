"""What a real matrix-js-sdk client (the SDK of Element Web) observes against Stratus: it starts,
syncs, and sees each feature arrive the way it renders it. Each test runs one scenario of
`tests/js/client.mjs` in Node 22 (see js.py); "alice" is the observed client, "bob" acts."""

import pytest

from conftest import SERVER_NAME, User, unique_name
from js import run_js
from rooms import create_room, join, send_message


@pytest.fixture
def pair(new_user) -> tuple[User, User, str]:
    """Alice and bob, both joined to bob's private room."""
    alice, bob = new_user(), new_user()
    room_id = create_room(bob, preset="private_chat", name="JS room", invite=[alice.user_id])
    join(alice, room_id)
    return alice, bob, room_id


def scenario(name: str, base_url: str, alice: User, bob: User, **params):
    return run_js("client.mjs", base_url, {"alice": alice, "bob": bob}, name, **params)


def test_start_client_reaches_prepared(base_url, pair):
    alice, bob, room_id = pair
    before = send_message(bob, room_id, "sent before alice's client started")
    seen = scenario("prepared", base_url, alice, bob, room_id=room_id)
    # The SDK fetches the push rules before its first sync; it has the default ruleset.
    assert {"override", "content", "room", "sender", "underride"} <= set(seen["push_rule_kinds"])
    assert ".m.rule.master" in seen["override_rule_ids"]
    room = seen["room"]
    assert room["name"] == "JS room"
    assert room["my_membership"] == "join"
    assert room["joined_member_count"] == 2
    assert room["joined"] == sorted([alice.user_id, bob.user_id])
    by_id = {ev["event_id"]: ev for ev in room["timeline"]}
    assert by_id[before]["content"]["body"] == "sent before alice's client started"
    assert by_id[before]["sender"] == bob.user_id


def test_scrollback_to_the_room_creation(base_url, pair):
    alice, bob, room_id = pair
    bodies = [f"history {i}" for i in range(15)]
    for body in bodies:
        send_message(bob, room_id, body)
    seen = scenario("history", base_url, alice, bob, room_id=room_id, initial_sync_limit=5)
    assert seen["initial"] == 5
    assert seen["pages"] >= 1
    events = seen["events"]
    assert events[0]["type"] == "m.room.create"
    assert [e["body"] for e in events if e["type"] == "m.room.message"] == bodies
    assert len({(e["type"], e["body"]) for e in events if e["type"] == "m.room.message"}) == len(bodies)


def test_live_message(base_url, pair):
    alice, bob, room_id = pair
    seen = scenario("live_message", base_url, alice, bob, room_id=room_id, body="hello from bob, live")
    assert seen["seen"]["event_id"] == seen["sent_event_id"]
    assert seen["seen"]["sender"] == bob.user_id
    assert seen["seen"]["content"] == {"msgtype": "m.text", "body": "hello from bob, live"}
    assert seen["last_in_live_timeline"] == seen["sent_event_id"]


def test_push_actions_of_live_messages(base_url, pair):
    alice, bob, room_id = pair
    seen = scenario("notifications", base_url, alice, bob, room_id=room_id)
    # The default rules: a message in a room of two notifies; a mention also highlights.
    plain, mention = seen["plain"] or {}, seen["mention"] or {}
    assert plain.get("notify") is True and not plain["tweaks"].get("highlight"), seen
    assert mention.get("notify") is True and mention["tweaks"].get("highlight") is True, seen


def test_muting_a_room(base_url, pair):
    alice, bob, room_id = pair
    seen = scenario("mute_room", base_url, alice, bob, room_id=room_id)
    assert {"rule_id": room_id, "actions": []} in seen["room_rules"]
    assert seen["actions"]["notify"] is False


def test_room_name_change(base_url, pair):
    alice, bob, room_id = pair
    seen = scenario("room_name", base_url, alice, bob, room_id=room_id, room_name="Renamed")
    assert seen["room_name"] == "Renamed"


def test_display_name_change_reaches_rooms(base_url, pair):
    alice, bob, room_id = pair
    seen = scenario("display_name", base_url, alice, bob, room_id=room_id, display_name="Bobby")
    assert seen["member_name"] == "Bobby"
    assert seen["member_event"]["type"] == "m.room.member"
    assert seen["member_event"]["sender"] == bob.user_id
    assert seen["member_event"]["content"]["displayname"] == "Bobby"
    assert seen["member_event"]["content"]["membership"] == "join"


def test_typing(base_url, pair):
    alice, bob, room_id = pair
    seen = scenario("typing", base_url, alice, bob, room_id=room_id)
    assert seen["started"] == [bob.user_id]
    assert seen["stopped"] == []


def test_read_receipt_and_marker(base_url, pair):
    alice, bob, room_id = pair
    seen = scenario("receipts", base_url, alice, bob, room_id=room_id, body="please read me")
    event_id = seen["event_id"]
    receipt = seen["receipt_content"][event_id]["m.read"][bob.user_id]
    assert isinstance(receipt["ts"], int)
    assert seen["read_up_to"] == event_id
    assert seen["fully_read"] == {"event_id": event_id}


def test_redaction(base_url, pair):
    alice, bob, room_id = pair
    seen = scenario("redaction", base_url, alice, bob, room_id=room_id, body="oops", reason="typo")
    assert seen["redaction"]["event_id"] == seen["redaction_id"]
    assert seen["redaction"]["sender"] == bob.user_id
    assert seen["redaction"]["content"].get("reason") == "typo"
    assert seen["original_is_redacted"] is True
    assert seen["original_content"] == {}
    assert seen["redacted_because"] == seen["redaction_id"]


def test_edit(base_url, pair):
    alice, bob, room_id = pair
    seen = scenario("edit", base_url, alice, bob, room_id=room_id, body="helo", new_body="hello")
    assert seen["replacing_event_id"] == seen["edit_id"]
    assert seen["shown_body"] == "hello"


def test_thread_reply(base_url, pair):
    alice, bob, room_id = pair
    seen = scenario("thread", base_url, alice, bob, room_id=room_id, body="thread root", reply_body="in the thread")
    root, reply = seen["root_id"], seen["reply_id"]
    assert seen["thread_id"] == root
    assert seen["reply"]["event_id"] == reply
    assert seen["reply"]["thread_root_id"] == root
    assert seen["reply"]["content"]["m.relates_to"]["rel_type"] == "m.thread"
    assert reply in seen["thread_reply_ids"]
    assert seen["root_is_thread_root"] is True
    # The reply lives in the thread, not in the room's main timeline.
    assert root in seen["main_timeline_ids"] and reply not in seen["main_timeline_ids"]


def test_account_data_and_tags(base_url, pair):
    alice, bob, room_id = pair
    seen = scenario("account_data", base_url, alice, bob, room_id=room_id)
    assert seen["global"] == {"theme": "dark", "n": 1}
    assert seen["room"] == {"pinned": True}
    assert seen["tags"] == {"m.favourite": {"order": 0.25}}


def test_to_device(base_url, pair):
    alice, bob, room_id = pair
    seen = scenario("to_device", base_url, alice, bob)
    assert seen == [
        {"type": "org.stratus.ping", "sender": bob.user_id, "content": {"device": alice.device_id}},
        {"type": "org.stratus.ping", "sender": bob.user_id, "content": {"device": "*"}},
    ]


def test_presence(base_url, pair):
    alice, bob, room_id = pair
    seen = scenario("presence", base_url, alice, bob, status_msg="in a meeting")
    assert seen["presence"] == "unavailable"
    assert seen["status_msg"] == "in a meeting"
    assert seen["content"]["presence"] == "unavailable"
    assert seen["content"]["status_msg"] == "in a meeting"


def test_invite_and_join(base_url, new_user):
    alice, bob = new_user(), new_user()
    room_id = create_room(bob, preset="private_chat", name="Invitation")
    seen = scenario("invite", base_url, alice, bob, room_id=room_id)
    assert seen["invite"] == {"name": "Invitation", "inviter": bob.user_id}
    assert seen["my_membership"] == "join"
    assert seen["joined"] == sorted([alice.user_id, bob.user_id])


def test_leave(base_url, pair):
    alice, bob, room_id = pair
    seen = scenario("leave", base_url, alice, bob, room_id=room_id)
    assert seen["joined_after_bob_left"] == [alice.user_id]
    assert seen["my_membership"] == "leave"
    assert room_id not in seen["joined_rooms"]


def test_public_room_directory(base_url, new_user):
    alice, bob = new_user(), new_user()
    name = unique_name("Lobby")
    localpart = unique_name("lobby")
    room_id = create_room(bob, preset="public_chat", visibility="public", name=name, topic="all welcome",
                          room_alias_name=localpart)
    alias = f"#{localpart}:{SERVER_NAME}"
    seen = scenario("directory", base_url, alice, bob, search=name, alias=alias)
    entries = [e for e in seen["chunk"] if e["room_id"] == room_id]
    assert len(entries) == 1, seen["chunk"]
    entry = entries[0]
    assert entry["name"] == name
    assert entry["topic"] == "all welcome"
    assert entry["canonical_alias"] == alias
    assert entry["num_joined_members"] == 1
    assert entry["world_readable"] is False and entry["guest_can_join"] is False
    assert entry["join_rule"] == "public"
    assert seen["join_room_id"] == room_id and seen["synced_room_id"] == room_id
    assert seen["name"] == name
    assert seen["my_membership"] == "join"
    assert seen["joined"] == sorted([alice.user_id, bob.user_id])
