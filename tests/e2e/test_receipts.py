"""Receipts and read markers: `POST /rooms/{roomId}/receipt/{receiptType}/{eventId}` and
`POST /rooms/{roomId}/read_markers`. Who may send them, what they validate, and where the fully
read marker ends up (room account data). Delivery of `m.receipt` through /sync is tested with
/sync."""

from __future__ import annotations

import pytest

from conftest import V3, assert_error, assert_ok, path_quote
from rooms import create_room, invite, join, leave, room_path, send_message, send_state

RECEIPT_TYPES = ["m.read", "m.read.private", "m.fully_read"]


def receipt(user, room_id, receipt_type, event_id, **kwargs):
    kwargs.setdefault("json", {})
    return user.post(room_path(room_id, "receipt", receipt_type, event_id), **kwargs)


def read_markers(user, room_id, body, **kwargs):
    return user.post(room_path(room_id, "read_markers"), json=body, **kwargs)


def fully_read(user, room_id):
    """The requester's `m.fully_read` room account data: its event ID, or None."""
    resp = user.get(f"{V3}/user/{path_quote(user.user_id)}/rooms/{path_quote(room_id)}/account_data/m.fully_read")
    if resp.status_code == 404:
        return None
    return assert_ok(resp)["event_id"]


def thread_reply(user, room_id, root, body="in thread"):
    return send_message(user, room_id, body, **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}})


@pytest.fixture
def room(user):
    room_id = create_room(user, preset="public_chat")
    return room_id, send_message(user, room_id, "first")


# ---------------------------------------------------------------------------------------------
# /receipt: what is accepted


@pytest.mark.parametrize("receipt_type", RECEIPT_TYPES)
def test_each_receipt_type_is_accepted(user, room, receipt_type):
    room_id, event_id = room
    assert assert_ok(receipt(user, room_id, receipt_type, event_id)) == {}


def test_a_receipt_without_a_body_is_unthreaded(user, room):
    room_id, event_id = room
    resp = user.post(room_path(room_id, "receipt", "m.read", event_id))
    assert assert_ok(resp) == {}


def test_a_joined_member_sends_receipts_for_others_events(user, new_user, room):
    room_id, event_id = room
    bob = new_user()
    join(bob, room_id)
    later = send_message(user, room_id, "after bob joined")
    for receipt_type in RECEIPT_TYPES:
        assert_ok(receipt(bob, room_id, receipt_type, later))


def test_an_older_receipt_is_accepted_and_a_repeat_too(user, room):
    room_id, first = room
    second = send_message(user, room_id, "second")
    assert_ok(receipt(user, room_id, "m.read", second))
    assert_ok(receipt(user, room_id, "m.read", first))
    assert_ok(receipt(user, room_id, "m.read", second))


@pytest.mark.parametrize("receipt_type", ["m.read", "m.read.private"])
def test_threaded_receipts(user, room, receipt_type):
    room_id, root = room
    reply = thread_reply(user, room_id, root)
    assert_ok(receipt(user, room_id, receipt_type, root, json={"thread_id": "main"}))
    assert_ok(receipt(user, room_id, receipt_type, reply, json={"thread_id": root}))
    # The root itself may be acknowledged in its thread.
    assert_ok(receipt(user, room_id, receipt_type, root, json={"thread_id": root}))
    # Unthreaded receipts go anywhere.
    assert_ok(receipt(user, room_id, receipt_type, reply, json={}))


def test_a_thread_reply_is_not_in_main_nor_in_another_thread(user, room):
    room_id, root = room
    other_root = send_message(user, room_id, "another root")
    reply = thread_reply(user, room_id, root)
    for thread_id in ["main", other_root]:
        assert_error(receipt(user, room_id, "m.read", reply, json={"thread_id": thread_id}), 400, "M_INVALID_PARAM")


@pytest.mark.parametrize("thread_id", ["", "MAIN", "root", "!room:localhost", None, 1, True, [], {}, ["main"]])
def test_bad_thread_ids(user, room, thread_id):
    room_id, event_id = room
    resp = receipt(user, room_id, "m.read", event_id, json={"thread_id": thread_id})
    assert_error(resp, 400, "M_INVALID_PARAM")


def test_fully_read_takes_no_thread(user, room):
    room_id, event_id = room
    for thread_id in ["main", event_id]:
        resp = receipt(user, room_id, "m.fully_read", event_id, json={"thread_id": thread_id})
        assert_error(resp, 400, "M_INVALID_PARAM")
    assert fully_read(user, room_id) is None, "a refused marker is not stored"


# ---------------------------------------------------------------------------------------------
# /receipt: what is refused


@pytest.mark.parametrize("receipt_type", ["m.receipt", "m.READ", "m.read.public", "m.marked_unread", "x"])
def test_unknown_receipt_types(user, room, receipt_type):
    room_id, event_id = room
    assert_error(receipt(user, room_id, receipt_type, event_id), 400, "M_INVALID_PARAM")


@pytest.mark.parametrize("event_id", ["not-an-event", "!room:localhost", "@user:localhost", "event$id"])
def test_malformed_event_ids(user, room, event_id):
    room_id, _ = room
    assert_error(receipt(user, room_id, "m.read", event_id), 400, "M_INVALID_PARAM")


def test_unknown_events_and_events_of_other_rooms(user, room):
    room_id, _ = room
    other_room = create_room(user)
    elsewhere = send_message(user, other_room)
    for receipt_type in RECEIPT_TYPES:
        assert_error(receipt(user, room_id, receipt_type, "$doesnotexist"), 404, "M_NOT_FOUND")
        assert_error(receipt(user, room_id, receipt_type, elsewhere), 404, "M_NOT_FOUND")


def test_events_hidden_by_history_visibility(user, new_user):
    room_id = create_room(user, preset="public_chat")
    send_state(user, room_id, "m.room.history_visibility", {"history_visibility": "joined"})
    before = send_message(user, room_id, "before bob")
    bob = new_user()
    join(bob, room_id)
    after = send_message(user, room_id, "after bob")
    for receipt_type in RECEIPT_TYPES:
        assert_error(receipt(bob, room_id, receipt_type, before), 404, "M_NOT_FOUND")
        assert_ok(receipt(bob, room_id, receipt_type, after))


def test_bad_and_unknown_rooms(user, room):
    _, event_id = room
    assert_error(receipt(user, "not-a-room", "m.read", event_id), 400, "M_INVALID_PARAM")
    assert_error(receipt(user, "!unknown:localhost", "m.read", event_id), 404, "M_NOT_FOUND")


def test_only_joined_members(user, new_user, room):
    room_id, event_id = room
    # A stranger to a world-readable room can read it but not send receipts in it.
    send_state(user, room_id, "m.room.history_visibility", {"history_visibility": "world_readable"})
    stranger = new_user()
    invited = new_user()
    invite(user, room_id, invited)
    departed = new_user()
    join(departed, room_id)
    leave(departed, room_id)
    for who in [stranger, invited, departed]:
        for receipt_type in RECEIPT_TYPES:
            assert_error(receipt(who, room_id, receipt_type, event_id), 403, "M_FORBIDDEN")
        assert_error(read_markers(who, room_id, {"m.fully_read": event_id}), 403, "M_FORBIDDEN")


def test_bad_bodies(user, room):
    room_id, event_id = room
    path = room_path(room_id, "receipt", "m.read", event_id)
    assert_error(user.post(path, content=b"{not json"), 400, "M_NOT_JSON")
    assert_error(user.post(path, json=["main"]), 400, "M_BAD_JSON")
    assert_error(user.post(path, json="main"), 400, "M_BAD_JSON")


def test_guests_and_anonymous_callers_are_refused(user, room, new_guest, client):
    room_id, event_id = room
    guest = new_guest()
    assert_error(receipt(guest, room_id, "m.read", event_id), 403, "M_GUEST_ACCESS_FORBIDDEN")
    assert_error(read_markers(guest, room_id, {"m.read": event_id}), 403, "M_GUEST_ACCESS_FORBIDDEN")
    assert_error(client.post(room_path(room_id, "receipt", "m.read", event_id), json={}), 401, "M_MISSING_TOKEN")
    assert_error(client.post(room_path(room_id, "read_markers"), json={}), 401, "M_MISSING_TOKEN")


def test_wrong_method(user, room):
    room_id, event_id = room
    assert_error(user.put(room_path(room_id, "receipt", "m.read", event_id), json={}), 405, "M_UNRECOGNIZED")
    assert_error(user.get(room_path(room_id, "read_markers")), 405, "M_UNRECOGNIZED")


# ---------------------------------------------------------------------------------------------
# The fully read marker: room account data, moved only forward


def test_fully_read_receipt_sets_the_marker(user, room):
    room_id, event_id = room
    assert fully_read(user, room_id) is None
    assert_ok(receipt(user, room_id, "m.fully_read", event_id))
    assert fully_read(user, room_id) == event_id


def test_read_receipts_do_not_set_the_marker(user, room):
    room_id, event_id = room
    assert_ok(receipt(user, room_id, "m.read", event_id))
    assert_ok(receipt(user, room_id, "m.read.private", event_id))
    assert fully_read(user, room_id) is None


def test_the_marker_only_moves_forward(user, room):
    room_id, first = room
    second = send_message(user, room_id, "second")
    third = send_message(user, room_id, "third")
    assert_ok(receipt(user, room_id, "m.fully_read", second))
    assert fully_read(user, room_id) == second
    assert_ok(receipt(user, room_id, "m.fully_read", first))
    assert fully_read(user, room_id) == second, "an older marker is ignored"
    assert_ok(read_markers(user, room_id, {"m.fully_read": first}))
    assert fully_read(user, room_id) == second
    assert_ok(read_markers(user, room_id, {"m.fully_read": third}))
    assert fully_read(user, room_id) == third


def test_markers_are_per_user_and_per_room(user, new_user, room):
    room_id, event_id = room
    bob = new_user()
    join(bob, room_id)
    later = send_message(user, room_id, "later")
    other_room = create_room(user)
    other_event = send_message(user, other_room)
    assert_ok(receipt(user, room_id, "m.fully_read", event_id))
    assert_ok(receipt(bob, room_id, "m.fully_read", later))
    assert_ok(receipt(user, other_room, "m.fully_read", other_event))
    assert fully_read(user, room_id) == event_id
    assert fully_read(bob, room_id) == later
    assert fully_read(user, other_room) == other_event


def test_the_marker_cannot_be_set_as_account_data(user, room):
    room_id, event_id = room
    path = f"{V3}/user/{path_quote(user.user_id)}/rooms/{path_quote(room_id)}/account_data/m.fully_read"
    resp = user.put(path, json={"event_id": event_id})
    assert resp.status_code == 405, resp.text
    assert fully_read(user, room_id) is None


# ---------------------------------------------------------------------------------------------
# /read_markers


def test_read_markers_with_every_field(user, room):
    room_id, event_id = room
    body = {"m.fully_read": event_id, "m.read": event_id, "m.read.private": event_id}
    assert assert_ok(read_markers(user, room_id, body)) == {}
    assert fully_read(user, room_id) == event_id


@pytest.mark.parametrize("field", ["m.read", "m.read.private"])
def test_read_markers_with_a_receipt_only(user, room, field):
    room_id, event_id = room
    assert_ok(read_markers(user, room_id, {field: event_id}))
    assert fully_read(user, room_id) is None


def test_read_markers_with_nothing(user, room):
    room_id, _ = room
    assert assert_ok(read_markers(user, room_id, {})) == {}


@pytest.mark.parametrize("field", ["m.fully_read", "m.read", "m.read.private"])
def test_read_markers_validate_each_field(user, room, field):
    room_id, event_id = room
    other_room = create_room(user)
    elsewhere = send_message(user, other_room)
    base = {"m.fully_read": event_id}
    assert_error(read_markers(user, room_id, {**base, field: "not-an-event"}), 400, "M_INVALID_PARAM")
    for bad in [1, ["$x"], {"event_id": event_id}, True]:
        assert_error(read_markers(user, room_id, {**base, field: bad}), 400, "M_BAD_JSON")
    assert_error(read_markers(user, room_id, {**base, field: "$doesnotexist"}), 404, "M_NOT_FOUND")
    assert_error(read_markers(user, room_id, {**base, field: elsewhere}), 404, "M_NOT_FOUND")
    # Nothing of a refused request is written.
    assert fully_read(user, room_id) is None


def test_read_markers_bad_bodies_and_rooms(user, room):
    room_id, event_id = room
    path = room_path(room_id, "read_markers")
    assert_error(user.post(path, content=b""), 400, "M_NOT_JSON")
    assert_error(user.post(path, content=b"{nope"), 400, "M_NOT_JSON")
    assert_error(user.post(path, json=[event_id]), 400, "M_BAD_JSON")
    assert_error(read_markers(user, "not-a-room", {"m.fully_read": event_id}), 400, "M_INVALID_PARAM")
    assert_error(read_markers(user, "!unknown:localhost", {"m.fully_read": event_id}), 404, "M_NOT_FOUND")
