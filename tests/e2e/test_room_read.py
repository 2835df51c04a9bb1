"""Reading rooms: `GET /rooms/{roomId}/state`, `/state/{eventType}/{stateKey}`, `/event/{eventId}`,
`/members` and `/joined_members`, and who may read them."""

import pytest

from conftest import V3, assert_error, assert_ok, path_quote
from rooms import V1, create_room, invite, join, leave, room_path, send_message, send_state


def set_visibility(user, room_id, value) -> str:
    return send_state(user, room_id, "m.room.history_visibility", {"history_visibility": value})


def state_map(reader, room_id) -> dict[tuple[str, str], dict]:
    events = assert_ok_list(reader.get(room_path(room_id, "state")))
    return {(e["type"], e["state_key"]): e for e in events}


def assert_ok_list(resp) -> list:
    assert resp.status_code == 200, f"{resp.request.url} -> {resp.status_code} {resp.text[:400]}"
    body = resp.json()
    assert isinstance(body, list)
    return body


def members(reader, room_id, **params) -> dict[str, str]:
    chunk = assert_ok(reader.get(room_path(room_id, "members"), params=params))["chunk"]
    assert all(e["type"] == "m.room.member" for e in chunk)
    return {e["state_key"]: e["content"]["membership"] for e in chunk}


def joined_members(reader, room_id) -> dict:
    return assert_ok(reader.get(room_path(room_id, "joined_members")))["joined"]


def set_displayname(user, name):
    assert_ok(user.put(f"{V3}/profile/{path_quote(user.user_id)}/displayname", json={"displayname": name}))


# Every read endpoint of a room, as (name, path maker); `event_id` is an event of the room.
def read_paths(room_id, event_id):
    v1 = f"{V1}/rooms/{path_quote(room_id)}"
    return {
        "state": (room_path(room_id, "state"), {}),
        "state_key": (room_path(room_id, "state", "m.room.create", ""), {}),
        "event": (room_path(room_id, "event", event_id), {}),
        "members": (room_path(room_id, "members"), {}),
        "joined_members": (room_path(room_id, "joined_members"), {}),
        "messages": (room_path(room_id, "messages"), {"dir": "b"}),
        "context": (room_path(room_id, "context", event_id), {}),
        "timestamp_to_event": (f"{v1}/timestamp_to_event", {"ts": 0, "dir": "f"}),
        "relations": (f"{v1}/relations/{path_quote(event_id)}", {}),
        "threads": (f"{v1}/threads", {}),
    }


# ---------------------------------------------------------------------------------------------
# /state


def test_state_is_the_current_state(user):
    room_id = create_room(user, name="First", topic="About")
    send_state(user, room_id, "m.room.name", {"name": "Second"})
    state = state_map(user, room_id)
    assert state[("m.room.name", "")]["content"] == {"name": "Second"}
    assert state[("m.room.name", "")]["unsigned"]["prev_content"] == {"name": "First"}
    assert state[("m.room.create", "")]["sender"] == user.user_id
    assert state[("m.room.member", user.user_id)]["content"]["membership"] == "join"
    for e in state.values():
        assert e["room_id"] == room_id and e["event_id"].startswith("$")
        assert "signatures" not in e and "auth_events" not in e


def test_one_state_entry_as_content_or_event(user):
    room_id = create_room(user)
    send_state(user, room_id, "m.room.topic", {"topic": "About"})
    path = room_path(room_id, "state", "m.room.topic", "")
    assert assert_ok(user.get(path)) == {"topic": "About"}
    assert assert_ok(user.get(path, params={"format": "content"})) == {"topic": "About"}
    event = assert_ok(user.get(path, params={"format": "event"}))
    assert event["type"] == "m.room.topic" and event["state_key"] == "" and event["content"] == {"topic": "About"}
    assert event["sender"] == user.user_id and event["room_id"] == room_id and "origin_server_ts" in event
    # The empty state key may be left out, with or without the trailing slash.
    assert assert_ok(user.get(room_path(room_id, "state", "m.room.topic"))) == {"topic": "About"}
    member = assert_ok(user.get(room_path(room_id, "state", "m.room.member", user.user_id)))
    assert member["membership"] == "join"
    assert_error(user.get(path, params={"format": "xml"}), 400, "M_INVALID_PARAM")
    assert_error(user.get(room_path(room_id, "state", "m.room.name", "")), 404, "M_NOT_FOUND")
    assert_error(user.get(room_path(room_id, "state", "m.room.topic", "nokey")), 404, "M_NOT_FOUND")


def test_redacted_state_is_served_redacted(user):
    room_id = create_room(user, room_version="11", topic="Secret topic")
    topic_id = state_map(user, room_id)[("m.room.topic", "")]["event_id"]
    redaction = assert_ok(user.put(room_path(room_id, "redact", topic_id, "r"), json={}))["event_id"]
    topic = state_map(user, room_id)[("m.room.topic", "")]
    assert topic["content"] == {} and topic["unsigned"]["redacted_because"]["event_id"] == redaction
    assert assert_ok(user.get(room_path(room_id, "state", "m.room.topic"))) == {}
    event = assert_ok(user.get(room_path(room_id, "state", "m.room.topic"), params={"format": "event"}))
    assert event["content"] == {} and event["unsigned"]["redacted_because"]["event_id"] == redaction
    served = assert_ok(user.get(room_path(room_id, "event", topic_id)))
    assert served["content"] == {} and served["unsigned"]["redacted_because"]["event_id"] == redaction


@pytest.mark.parametrize("how", ["leave", "kick", "ban"])
def test_a_departed_user_reads_the_state_as_it_was_when_they_left(user, new_user, how):
    room_id = create_room(user, preset="public_chat", name="Before")
    bob = new_user()
    join(bob, room_id)
    if how == "leave":
        leave(bob, room_id)
    else:
        assert_ok(user.post(room_path(room_id, how), json={"user_id": bob.user_id}))
    send_state(user, room_id, "m.room.name", {"name": "After"})
    carol = new_user()
    join(carol, room_id)
    state = state_map(bob, room_id)
    assert state[("m.room.name", "")]["content"]["name"] == "Before"
    expected = "ban" if how == "ban" else "leave"
    assert state[("m.room.member", bob.user_id)]["content"]["membership"] == expected
    assert ("m.room.member", carol.user_id) not in state
    assert assert_ok(bob.get(room_path(room_id, "state", "m.room.name"))) == {"name": "Before"}
    assert_error(bob.get(room_path(room_id, "state", "m.room.member", carol.user_id)), 404, "M_NOT_FOUND")
    assert set(members(bob, room_id)) == {user.user_id, bob.user_id}
    assert_error(bob.get(room_path(room_id, "joined_members")), 403, "M_FORBIDDEN")
    # The joined see the current state.
    assert state_map(user, room_id)[("m.room.name", "")]["content"]["name"] == "After"


# ---------------------------------------------------------------------------------------------
# Who may read


def test_non_members_are_refused_everywhere(user, new_user):
    room_id = create_room(user, preset="public_chat")
    event_id = send_message(user, room_id, "members only")
    stranger = new_user()
    invitee = new_user()
    invite(user, room_id, invitee)
    for reader in [stranger, invitee]:
        for name, (path, params) in read_paths(room_id, event_id).items():
            assert_error(reader.get(path, params=params), 403, "M_FORBIDDEN")


def test_unknown_rooms_are_not_found_everywhere(user):
    room_id = "!doesnotexist:localhost"
    for name, (path, params) in read_paths(room_id, "$nothere").items():
        resp = user.get(path, params=params)
        assert_error(resp, 404, "M_NOT_FOUND")


def test_malformed_room_ids_are_invalid_everywhere(user):
    for name, (path, params) in read_paths("not-a-room", "$e").items():
        assert_error(user.get(path, params=params), 400, "M_INVALID_PARAM")


def test_a_world_readable_room_is_open_to_anyone(user, new_user, guest):
    room_id = create_room(user, preset="public_chat", name="Open")
    set_visibility(user, room_id, "world_readable")
    event_id = send_message(user, room_id, "hello world")
    for reader in [new_user(), guest]:
        for name, (path, params) in read_paths(room_id, event_id).items():
            resp = reader.get(path, params=params)
            assert resp.status_code == 200, (name, resp.text)
        assert state_map(reader, room_id)[("m.room.name", "")]["content"]["name"] == "Open"
        assert assert_ok(reader.get(room_path(room_id, "event", event_id)))["content"]["body"] == "hello world"
        assert members(reader, room_id) == {user.user_id: "join"}
        assert set(joined_members(reader, room_id)) == {user.user_id}


# ---------------------------------------------------------------------------------------------
# /event


def test_get_one_event(user, new_user):
    room_id = create_room(user)
    other_room = create_room(user)
    event_id = send_message(user, room_id, "hi", txn="t-one")
    event = assert_ok(user.get(room_path(room_id, "event", event_id)))
    assert event["event_id"] == event_id and event["room_id"] == room_id
    assert event["content"] == {"msgtype": "m.text", "body": "hi"}
    assert event["sender"] == user.user_id and event["type"] == "m.room.message"
    assert event["unsigned"]["transaction_id"] == "t-one" and event["unsigned"]["age"] >= 0
    assert_error(user.get(room_path(other_room, "event", event_id)), 404, "M_NOT_FOUND")
    assert_error(user.get(room_path(room_id, "event", "$unknown")), 404, "M_NOT_FOUND")
    assert_error(user.get(room_path(room_id, "event", "no-dollar")), 400, "M_INVALID_PARAM")


def test_event_visibility_for_a_late_joiner(user, new_user):
    room_id = create_room(user, preset="public_chat")
    shared = send_message(user, room_id, "shared era")
    set_visibility(user, room_id, "joined")
    hidden = send_message(user, room_id, "joined era, before bob")
    bob = new_user()
    join(bob, room_id)
    after = send_message(user, room_id, "after bob joined")
    assert assert_ok(bob.get(room_path(room_id, "event", shared)))["content"]["body"] == "shared era"
    assert assert_ok(bob.get(room_path(room_id, "event", after)))["content"]["body"] == "after bob joined"
    assert_error(bob.get(room_path(room_id, "event", hidden)), 404, "M_NOT_FOUND")


# ---------------------------------------------------------------------------------------------
# /members and /joined_members


def test_members_with_membership_filters(user, new_user):
    room_id = create_room(user, preset="public_chat")
    joined, invited, left, banned = new_user(), new_user(), new_user(), new_user()
    join(joined, room_id)
    invite(user, room_id, invited)
    join(left, room_id)
    leave(left, room_id)
    assert_ok(user.post(room_path(room_id, "ban"), json={"user_id": banned.user_id}))
    everyone = {user.user_id: "join", joined.user_id: "join", invited.user_id: "invite", left.user_id: "leave",
                banned.user_id: "ban"}
    assert members(user, room_id) == everyone
    assert members(user, room_id, membership="join") == {user.user_id: "join", joined.user_id: "join"}
    assert members(user, room_id, not_membership="join") == {
        k: v for k, v in everyone.items() if v != "join"}
    # Both: membership is `invite` OR is not `join`... `leave`: either passes.
    both = members(user, room_id, membership="invite", not_membership="join")
    assert both == {invited.user_id: "invite", left.user_id: "leave", banned.user_id: "ban"}
    both = members(user, room_id, membership="join", not_membership="leave")
    assert both == {k: v for k, v in everyone.items() if v != "leave"}
    assert_error(user.get(room_path(room_id, "members"), params={"membership": "joined"}), 400, "M_INVALID_PARAM")
    assert_error(user.get(room_path(room_id, "members"), params={"not_membership": "x"}), 400, "M_INVALID_PARAM")


def test_members_at_a_point_in_history(user, new_user):
    room_id = create_room(user, preset="public_chat")
    bob, carol = new_user(), new_user()
    join(bob, room_id)
    message = send_message(bob, room_id, "before carol")
    # A token just after `message`, from /messages.
    token = assert_ok(user.get(room_path(room_id, "messages"), params={"dir": "b", "limit": 1}))["start"]
    join(carol, room_id)
    leave(bob, room_id)
    assert members(user, room_id, at=token) == {user.user_id: "join", bob.user_id: "join"}
    assert members(user, room_id) == {user.user_id: "join", bob.user_id: "leave", carol.user_id: "join"}
    # Tokens from /context work too.
    ctx = assert_ok(user.get(room_path(room_id, "context", message), params={"limit": 0}))
    assert members(user, room_id, at=ctx["end"]) == {user.user_id: "join", bob.user_id: "join"}
    assert members(user, room_id, at=ctx["end"], membership="join") == {user.user_id: "join", bob.user_id: "join"}
    for bad in ["nonsense", "s", "t5", "s-1"]:
        assert_error(user.get(room_path(room_id, "members"), params={"at": bad}), 400, "M_INVALID_PARAM")


def test_members_at_a_point_the_user_may_not_see(user, new_user):
    room_id = create_room(user, preset="public_chat")
    set_visibility(user, room_id, "joined")
    send_message(user, room_id, "before carol")
    early = assert_ok(user.get(room_path(room_id, "messages"), params={"dir": "b", "limit": 1}))["start"]
    carol = new_user()
    join(carol, room_id)
    assert_error(carol.get(room_path(room_id, "members"), params={"at": early}), 403, "M_FORBIDDEN")
    assert carol.user_id in members(carol, room_id)


def test_joined_members_with_profiles(user, new_user):
    set_displayname(user, "Alice")
    assert_ok(user.put(f"{V3}/profile/{path_quote(user.user_id)}/avatar_url", json={"avatar_url": "mxc://localhost/a"}))
    room_id = create_room(user, preset="public_chat")
    bob, carol = new_user(), new_user()
    join(bob, room_id)
    invite(user, room_id, carol)
    joined = joined_members(user, room_id)
    assert joined == {
        user.user_id: {"display_name": "Alice", "avatar_url": "mxc://localhost/a"},
        # Registration sets the localpart; an unset avatar is null, as Synapse answers.
        bob.user_id: {"display_name": bob.localpart, "avatar_url": None},
    }
    assert joined_members(bob, room_id) == joined


def test_forgotten_rooms_are_closed(user, new_user):
    room_id = create_room(user, preset="public_chat")
    bob = new_user()
    join(bob, room_id)
    leave(bob, room_id)
    assert state_map(bob, room_id)
    assert_ok(bob.post(room_path(room_id, "forget"), json={}))
    assert_error(bob.get(room_path(room_id, "state")), 403, "M_FORBIDDEN")
    assert_error(bob.get(room_path(room_id, "members")), 403, "M_FORBIDDEN")


def test_redacted_member_events_are_served_redacted(user, new_user):
    room_id = create_room(user, preset="public_chat")
    bob = new_user()
    set_displayname(bob, "Bob the builder")
    join(bob, room_id)
    join_id = state_map(user, room_id)[("m.room.member", bob.user_id)]["event_id"]
    redaction = assert_ok(user.put(room_path(room_id, "redact", join_id, "r"), json={}))["event_id"]
    chunk = assert_ok(user.get(room_path(room_id, "members")))["chunk"]
    served = next(e for e in chunk if e["state_key"] == bob.user_id)
    assert served["content"] == {"membership": "join"}
    assert served["unsigned"]["redacted_because"]["event_id"] == redaction
    assert joined_members(user, room_id)[bob.user_id] == {"display_name": None, "avatar_url": None}, \
        "the display name went with the redaction"
    assert assert_ok(user.get(room_path(room_id, "state", "m.room.member", bob.user_id))) == {"membership": "join"}
