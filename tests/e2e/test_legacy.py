"""The deprecated event stream and initial syncs: `GET /events`, `GET /initialSync` and
`GET /rooms/{roomId}/initialSync`, which Sytest still uses to set up its tests."""

from conftest import V3, assert_error, assert_ok
from rooms import create_room, join, leave, room_path, send_message, send_state

R0 = "/_matrix/client/r0"


def events(user, **params):
    return assert_ok(user.get(f"{R0}/events", params=params))


def test_event_stream_starts_now_and_carries_what_follows(user, new_user):
    room_id = create_room(user, preset="public_chat")
    send_message(user, room_id, "before the stream")
    first = events(user, timeout=0)
    assert first["chunk"] == [] and first["start"] == first["end"]
    bob = new_user()
    join(bob, room_id)
    sent = [send_message(bob, room_id, f"message {i}") for i in range(12)]
    assert_ok(user.put(f"{V3}/user/{user.user_id}/rooms/{room_id}/tags/u.work", json={"order": 0.5}))
    got, token = [], first["end"]
    for _ in range(10):
        body = events(user, **{"from": token, "timeout": 2000})
        got.extend(body["chunk"])
        token = body["end"]
        if any(e["type"] == "m.tag" for e in got) and sent[-1] in [e.get("event_id") for e in got]:
            break
    messages = [e for e in got if e["type"] == "m.room.message"]
    # Everything after the token, in order, nothing from before it, each with its room.
    assert [e["event_id"] for e in messages] == sent
    assert all(e["room_id"] == room_id and e["user_id"] == bob.user_id for e in messages)
    join_event = next(e for e in got if e["type"] == "m.room.member")
    assert join_event["state_key"] == bob.user_id
    tag = next(e for e in got if e["type"] == "m.tag")
    assert tag["room_id"] == room_id and tag["content"]["tags"] == {"u.work": {"order": 0.5}}
    # Nothing new: an empty chunk, after the timeout.
    assert events(user, **{"from": token, "timeout": 0})["chunk"] == []
    assert_error(user.get(f"{V3}/events", params={"from": "nonsense"}), 400, "M_INVALID_PARAM")


def test_event_stream_wakes_on_a_new_event(user):
    room_id = create_room(user)
    token = events(user, timeout=0)["end"]
    send_message(user, room_id, "wake up")
    body = events(user, **{"from": token, "timeout": 10000, "room_id": room_id})
    assert [e["content"]["body"] for e in body["chunk"] if e["type"] == "m.room.message"] == ["wake up"]


def test_initial_sync_lists_rooms_with_state_messages_and_receipts(user, new_user):
    room_id = create_room(user, preset="public_chat", name="The room")
    event_id = send_message(user, room_id, "latest")
    assert_ok(user.post(room_path(room_id, "receipt", "m.read", event_id), json={}))
    body = assert_ok(user.get(f"{V3}/initialSync", params={"limit": 1}))
    assert isinstance(body["end"], str)
    room = next(r for r in body["rooms"] if r["room_id"] == room_id)
    assert room["membership"] == "join"
    assert [e["event_id"] for e in room["messages"]["chunk"]] == [event_id]
    assert {"start", "end"} <= room["messages"].keys()
    state = {(e["type"], e["state_key"]): e for e in room["state"]}
    assert state[("m.room.name", "")]["content"]["name"] == "The room"
    assert state[("m.room.member", user.user_id)]["content"]["membership"] == "join"
    receipt = next(r for r in body["receipts"] if r["room_id"] == room_id)
    assert user.user_id in receipt["content"][event_id]["m.read"]
    # limit=0: no messages, the state all the same.
    body = assert_ok(user.get(f"{V3}/initialSync", params={"limit": 0}))
    room = next(r for r in body["rooms"] if r["room_id"] == room_id)
    assert room["messages"]["chunk"] == []
    assert any(e["type"] == "m.room.name" for e in room["state"])


def test_initial_sync_of_left_rooms_and_of_one_room(user, new_user):
    bob = new_user()
    room_id = create_room(user, preset="public_chat")
    join(bob, room_id)
    send_message(user, room_id, "before bob left")
    leave(bob, room_id)
    send_state(user, room_id, "m.room.topic", {"topic": "after bob left"})
    rooms = assert_ok(bob.get(f"{V3}/initialSync"))["rooms"]
    assert room_id not in [r["room_id"] for r in rooms]
    rooms = assert_ok(bob.get(f"{V3}/initialSync", params={"archived": "true"}))["rooms"]
    left = next(r for r in rooms if r["room_id"] == room_id)
    assert left["membership"] == "leave"
    assert not any(e["type"] == "m.room.topic" for e in left["state"]), "nothing after the leave"
    one = assert_ok(bob.get(room_path(room_id, "initialSync")))
    assert one["room_id"] == room_id and one["membership"] == "leave"
    assert isinstance(one["presence"], list) and isinstance(one["messages"]["chunk"], list)
    mine = assert_ok(user.get(room_path(room_id, "initialSync")))
    assert mine["membership"] == "join"
    assert any(e["type"] == "m.room.topic" for e in mine["state"])
    # A room one was never in is not shown.
    stranger = new_user()
    assert_error(stranger.get(room_path(room_id, "initialSync")), 403, "M_FORBIDDEN")
