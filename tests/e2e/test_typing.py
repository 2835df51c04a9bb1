"""Typing notifications: `PUT /rooms/{roomId}/typing/{userId}`. Who may say they type, and what
the body may hold. Delivery of `m.typing` through /sync is tested with /sync."""

from __future__ import annotations

import pytest

from conftest import assert_error, assert_ok
from rooms import create_room, invite, join, leave, room_path, send_state


def typing_path(room_id, user_id):
    return room_path(room_id, "typing", user_id)


def set_typing(user, room_id, body, user_id=None, **kwargs):
    return user.put(typing_path(room_id, user_id or user.user_id), json=body, **kwargs)


@pytest.fixture
def room_id(user):
    return create_room(user, preset="public_chat")


@pytest.mark.parametrize("body", [
    {"typing": True, "timeout": 30000},
    {"typing": True},
    {"typing": True, "timeout": 0},
    {"typing": True, "timeout": 1},
    {"typing": True, "timeout": 2500.5},
    {"typing": True, "timeout": 10**15},
    {"typing": True, "timeout": 10**30},
    {"typing": False},
    {"typing": False, "timeout": 30000},
    {"typing": False, "timeout": -5},
])
def test_accepted_bodies(user, room_id, body):
    assert assert_ok(set_typing(user, room_id, body)) == {}


def test_start_keep_typing_and_stop(user, room_id):
    for body in [{"typing": True, "timeout": 20000}, {"typing": True, "timeout": 20000}, {"typing": False},
                 {"typing": False}, {"typing": True}]:
        assert_ok(set_typing(user, room_id, body))


def test_a_joined_member_types(user, new_user, room_id):
    bob = new_user()
    join(bob, room_id)
    assert_ok(set_typing(bob, room_id, {"typing": True, "timeout": 5000}))
    assert_ok(set_typing(bob, room_id, {"typing": False}))


def test_only_for_yourself(user, new_user, room_id):
    bob = new_user()
    join(bob, room_id)
    resp = set_typing(user, room_id, {"typing": True, "timeout": 5000}, user_id=bob.user_id)
    assert_error(resp, 403, "M_FORBIDDEN")
    for other in ["@nobody:localhost", "@bad user:localhost", user.user_id.upper()]:
        assert_error(set_typing(user, room_id, {"typing": True}, user_id=other), 403, "M_FORBIDDEN")


@pytest.mark.parametrize("user_id", ["nobody", "@", "!room:localhost", "localhost"])
def test_malformed_user_ids(user, room_id, user_id):
    assert_error(set_typing(user, room_id, {"typing": True}, user_id=user_id), 400, "M_INVALID_PARAM")


def test_only_joined_members(user, new_user, room_id):
    send_state(user, room_id, "m.room.history_visibility", {"history_visibility": "world_readable"})
    stranger = new_user()
    invited = new_user()
    invite(user, room_id, invited)
    departed = new_user()
    join(departed, room_id)
    leave(departed, room_id)
    for who in [stranger, invited, departed]:
        for typing in [True, False]:
            assert_error(set_typing(who, room_id, {"typing": typing}), 403, "M_FORBIDDEN")


def test_bad_and_unknown_rooms(user):
    assert_error(set_typing(user, "not-a-room", {"typing": True}), 400, "M_INVALID_PARAM")
    assert_error(set_typing(user, "!unknown:localhost", {"typing": True}), 403, "M_FORBIDDEN")


@pytest.mark.parametrize("body,errcode", [
    ({}, "M_MISSING_PARAM"),
    ({"timeout": 30000}, "M_MISSING_PARAM"),
    ({"typing": "yes"}, "M_BAD_JSON"),
    ({"typing": 1}, "M_BAD_JSON"),
    ({"typing": None}, "M_BAD_JSON"),
    ({"typing": True, "timeout": "30000"}, "M_BAD_JSON"),
    ({"typing": True, "timeout": [1]}, "M_BAD_JSON"),
    ({"typing": True, "timeout": -1}, "M_INVALID_PARAM"),
    ({"typing": True, "timeout": -0.5}, "M_INVALID_PARAM"),
])
def test_bad_bodies(user, room_id, body, errcode):
    assert_error(set_typing(user, room_id, body), 400, errcode)


def test_malformed_json(user, room_id):
    path = typing_path(room_id, user.user_id)
    assert_error(user.put(path, content=b""), 400, "M_NOT_JSON")
    assert_error(user.put(path, content=b"{typing: true}"), 400, "M_NOT_JSON")
    assert_error(user.put(path, json=[True]), 400, "M_BAD_JSON")


def test_guests_and_anonymous_callers_are_refused(user, room_id, new_guest, client):
    guest = new_guest()
    assert_error(set_typing(guest, room_id, {"typing": True}), 403, "M_GUEST_ACCESS_FORBIDDEN")
    resp = client.put(typing_path(room_id, user.user_id), json={"typing": True})
    assert_error(resp, 401, "M_MISSING_TOKEN")


def test_wrong_method(user, room_id):
    assert_error(user.post(typing_path(room_id, user.user_id), json={"typing": True}), 405, "M_UNRECOGNIZED")
    assert_error(user.get(typing_path(room_id, user.user_id)), 405, "M_UNRECOGNIZED")

