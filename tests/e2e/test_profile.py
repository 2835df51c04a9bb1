"""Profiles: reading, setting and deleting displayname, avatar_url, m.tz and custom fields."""

import time

import pytest

from conftest import assert_error, assert_ok, profile_path, unique_name, user_id_of
from rooms import create_room, join, leave, room_path, state_event

AVATAR = "mxc://example.org/SEmcoOoiRaMhMaOJGkQzwQ"


def put_field(user, key, value, owner=None):
    return user.put(profile_path(owner or user.user_id, key), json={key: value})


def get_field(client, user_id, key):
    return client.get(profile_path(user_id, key))


def assert_unset(client, user_id, key):
    """An unset name or avatar reads as an empty object, as Synapse answers; an unset custom
    field is not found."""
    resp = get_field(client, user_id, key)
    if key in ("displayname", "avatar_url"):
        assert assert_ok(resp) == {}
    else:
        assert_error(resp, 404, "M_NOT_FOUND")


def test_new_profile_has_the_localpart_as_displayname(user):
    assert assert_ok(user.client.get(profile_path(user.user_id))) == {"displayname": user.localpart}


@pytest.mark.parametrize("key,value", [
    ("displayname", "Alice \U0001F469\u200d\U0001F680 \u05e9\u05dc\u05d5\u05dd"),
    ("avatar_url", AVATAR),
    ("m.tz", "Europe/London"),
    ("org.example.string", "custom"),
    ("org.example.object", {"nested": [1, 2.5, True, None, {"deep": "value"}]}),
    ("org.example.list", ["a", 1, False]),
    ("org.example.number", 42),
    ("org.example.bool", False),
    ("org.example.empty_string", ""),
])
def test_set_and_get_a_field(user, key, value):
    assert assert_ok(put_field(user, key, value)) == {}
    assert assert_ok(get_field(user.client, user.user_id, key)) == {key: value}
    assert assert_ok(user.client.get(profile_path(user.user_id)))[key] == value


def test_full_profile_holds_every_field(user):
    fields = {"displayname": "Bob", "avatar_url": AVATAR, "m.tz": "America/New_York", "com.example.pronouns": "they"}
    for key, value in fields.items():
        assert_ok(put_field(user, key, value))
    assert assert_ok(user.client.get(profile_path(user.user_id))) == fields


def test_profile_is_readable_without_a_token(user, client):
    assert_ok(put_field(user, "displayname", "Public name"))
    assert assert_ok(get_field(client, user.user_id, "displayname")) == {"displayname": "Public name"}


def test_null_custom_value_is_stored_or_refused(user):
    """The spec: servers may reject null; if they accept it they should store it, not delete."""
    resp = put_field(user, "org.example.nullable", None)
    if resp.status_code == 200:
        assert assert_ok(get_field(user.client, user.user_id, "org.example.nullable")) == {"org.example.nullable": None}
    else:
        assert_error(resp, 400)


def test_overwrite_a_field(user):
    assert_ok(put_field(user, "m.tz", "Europe/Paris"))
    assert_ok(put_field(user, "m.tz", "Asia/Tokyo"))
    assert assert_ok(get_field(user.client, user.user_id, "m.tz")) == {"m.tz": "Asia/Tokyo"}


@pytest.mark.parametrize("key", ["displayname", "avatar_url", "m.tz", "org.example.field"])
def test_delete_a_field(user, key):
    value = AVATAR if key == "avatar_url" else "something"
    assert_ok(put_field(user, key, value))
    assert assert_ok(user.delete(profile_path(user.user_id, key))) == {}
    assert_unset(user.client, user.user_id, key)
    assert key not in assert_ok(user.client.get(profile_path(user.user_id)))


def test_delete_a_missing_field_succeeds(user):
    assert assert_ok(user.delete(profile_path(user.user_id, "org.example.never_set"))) == {}


def test_empty_displayname_clears_it(user):
    assert_ok(put_field(user, "displayname", ""))
    assert assert_ok(get_field(user.client, user.user_id, "displayname")) == {}


def test_missing_field(user):
    assert_error(get_field(user.client, user.user_id, "m.tz"), 404, "M_NOT_FOUND")


def test_unknown_user(client):
    unknown = user_id_of(unique_name("ghost"))
    assert_error(client.get(profile_path(unknown)), 404, "M_NOT_FOUND")
    assert_error(get_field(client, unknown, "displayname"), 404, "M_NOT_FOUND")


def test_body_without_the_key(user):
    resp = user.put(profile_path(user.user_id, "displayname"), json={"avatar_url": AVATAR})
    assert_error(resp, 400, "M_MISSING_PARAM")
    assert assert_ok(get_field(user.client, user.user_id, "avatar_url")) == {}


@pytest.mark.parametrize("value", ["https://example.org/a.png", "mxc:/broken", "mxc://example.org/../etc",
                                   "mxc://example.org/", "mxc://bad server/x", 42, ["mxc://a/b"], {"url": AVATAR}])
def test_avatar_url_must_be_an_mxc_uri(user, value):
    assert_error(put_field(user, "avatar_url", value), 400, "M_BAD_JSON")


@pytest.mark.parametrize("key,value", [("displayname", 42), ("displayname", ["x"]), ("m.tz", 1), ("m.tz", {})])
def test_string_fields_refuse_other_types(user, key, value):
    assert_error(put_field(user, key, value), 400, "M_BAD_JSON")


@pytest.mark.parametrize("key", ["custom", "Org.example", "org..example", "org.1x", "org.example-x", "org.", ".org",
                                 "org.example.", "m.tz ", "\U0001F600.x"])
def test_invalid_key_names(user, key):
    assert_error(put_field(user, key, "x"), 400, "M_INVALID_PARAM")
    assert_error(user.delete(profile_path(user.user_id, key)), 400, "M_INVALID_PARAM")


def test_key_size_limit(user):
    longest = "org." + "k" * 251
    assert len(longest) == 255
    assert_ok(put_field(user, longest, 1))
    assert assert_ok(get_field(user.client, user.user_id, longest)) == {longest: 1}
    assert_error(put_field(user, longest + "k", 1), 400, "M_KEY_TOO_LARGE")


def test_profile_size_limit(user):
    chunk = "v" * 30_000
    assert_ok(put_field(user, "org.example.one", chunk))
    assert_ok(put_field(user, "org.example.two", chunk))
    assert_error(put_field(user, "org.example.three", chunk), 400, "M_PROFILE_TOO_LARGE")
    assert_error(get_field(user.client, user.user_id, "org.example.three"), 404, "M_NOT_FOUND")
    # Replacing a field counts its new size, not old and new together.
    assert_ok(put_field(user, "org.example.two", chunk + "w"))


def test_single_oversized_value(user):
    assert_error(put_field(user, "org.example.huge", "v" * 70_000), 400, "M_PROFILE_TOO_LARGE")


def test_other_users_profile_is_read_only(user, new_user):
    other = new_user()
    assert_ok(put_field(other, "org.example.mine", "original"))
    for key, value in [("displayname", "pwned"), ("avatar_url", AVATAR), ("org.example.mine", "pwned")]:
        assert_error(put_field(user, key, value, owner=other.user_id), 403, "M_FORBIDDEN")
        assert_error(user.delete(profile_path(other.user_id, key)), 403, "M_FORBIDDEN")
    assert assert_ok(user.client.get(profile_path(other.user_id))) == {
        "displayname": other.localpart, "org.example.mine": "original"}


def test_user_id_with_reserved_characters_in_the_path(new_user):
    user = new_user(unique_name("a/b=c+d"))
    assert_ok(put_field(user, "displayname", "Slashy"))
    assert assert_ok(get_field(user.client, user.user_id, "displayname")) == {"displayname": "Slashy"}


class TestGuests:
    def test_guest_may_set_and_delete_displayname(self, guest):
        assert_ok(put_field(guest, "displayname", "Guest name"))
        assert assert_ok(get_field(guest.client, guest.user_id, "displayname")) == {"displayname": "Guest name"}
        assert_ok(guest.delete(profile_path(guest.user_id, "displayname")))
        assert assert_ok(get_field(guest.client, guest.user_id, "displayname")) == {}

    @pytest.mark.parametrize("key,value", [("avatar_url", AVATAR), ("m.tz", "UTC"), ("org.example.x", 1)])
    def test_guest_may_not_touch_other_fields(self, guest, key, value):
        forbidden = {"M_FORBIDDEN", "M_GUEST_ACCESS_FORBIDDEN"}
        assert_error(put_field(guest, key, value), 403, forbidden)
        assert_error(guest.delete(profile_path(guest.user_id, key)), 403, forbidden)
        assert_unset(guest.client, guest.user_id, key)


# ---------------------------------------------------------------------------------------------
# Profile changes reach the user's rooms


def wait_for_member(user, room_id, predicate, timeout_s=20.0):
    """The user's member event in the room, once `predicate` holds for its content."""
    deadline = time.monotonic() + timeout_s
    while True:
        content = state_event(user, room_id, "m.room.member", user.user_id)
        if predicate(content) or time.monotonic() > deadline:
            return content
        time.sleep(0.2)


def test_a_new_displayname_and_avatar_reach_every_joined_room(user, new_user):
    other = new_user()
    rooms = [create_room(user) for _ in range(3)]
    left = create_room(other, preset="public_chat")
    join(user, left)
    leave(user, left)
    assert_ok(put_field(user, "displayname", "Renamed"))
    for room_id in rooms:
        content = wait_for_member(user, room_id, lambda c: c.get("displayname") == "Renamed")
        assert content == {"membership": "join", "displayname": "Renamed"}
    assert_ok(put_field(user, "avatar_url", AVATAR))
    content = wait_for_member(user, rooms[0], lambda c: c.get("avatar_url") == AVATAR)
    assert content == {"membership": "join", "displayname": "Renamed", "avatar_url": AVATAR}
    # A room the user left gets no new event: its membership stays a leave.
    left_event = assert_ok(user.get(room_path(left, "state", "m.room.member", user.user_id)))
    assert left_event == {"membership": "leave"}
    # Clearing the name reaches the rooms too.
    assert_ok(user.delete(profile_path(user.user_id, "displayname")))
    content = wait_for_member(user, rooms[1], lambda c: "displayname" not in c)
    assert content == {"membership": "join", "avatar_url": AVATAR}


def test_an_unchanged_profile_sends_no_member_event(user):
    room_id = create_room(user)
    assert_ok(put_field(user, "displayname", "Same"))
    wait_for_member(user, room_id, lambda c: c.get("displayname") == "Same")
    members_before = assert_ok(user.get(room_path(room_id, "messages"), params={"dir": "b", "limit": 50}))["chunk"]
    assert_ok(put_field(user, "displayname", "Same"))
    assert_ok(put_field(user, "org.example.unrelated", 1))
    time.sleep(2)
    members_after = assert_ok(user.get(room_path(room_id, "messages"), params={"dir": "b", "limit": 50}))["chunk"]
    assert [e["event_id"] for e in members_after] == [e["event_id"] for e in members_before]
