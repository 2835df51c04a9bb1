"""Creating rooms and sending events: `POST /createRoom`, `PUT /send`, `PUT /state`, `PUT /redact`."""

import re

import pytest

from conftest import V3, assert_error, assert_ok, describe, path_quote, unique_name
from rooms import create_room, invite, join, room_path, send_message, send_state, state_event

VERSIONS = [str(v) for v in range(1, 13)]


def current_state(user, room_id) -> dict[tuple[str, str], dict]:
    resp = user.get(room_path(room_id, "state"))
    assert resp.status_code == 200, describe(resp)
    events = resp.json()
    return {(e["type"], e["state_key"]): e for e in events}


# ---------------------------------------------------------------------------------------------
# createRoom


@pytest.mark.parametrize("version", VERSIONS)
def test_create_room_in_each_version_orders_the_initial_events(user, new_user, version):
    guest = new_user()
    room_id = create_room(
        user, room_version=version, name="Room", topic="About", invite=[guest.user_id],
        initial_state=[{"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
    )
    if version == "12":
        assert ":" not in room_id, "v12 room IDs are the create event's hash"
    else:
        assert room_id.endswith(":localhost")
    state = current_state(user, room_id)
    create = state[("m.room.create", "")]
    assert create["content"]["room_version"] == version
    assert create["sender"] == user.user_id
    assert ("creator" in create["content"]) == (int(version) < 11)
    assert state[("m.room.member", user.user_id)]["content"]["membership"] == "join"
    assert state[("m.room.member", guest.user_id)]["content"]["membership"] == "invite"
    assert state[("m.room.name", "")]["content"]["name"] == "Room"
    assert state[("m.room.topic", "")]["content"]["topic"] == "About"
    assert state[("m.room.join_rules", "")]["content"]["join_rule"] == "invite"
    assert state[("m.room.history_visibility", "")]["content"]["history_visibility"] == "shared"
    assert state[("m.room.guest_access", "")]["content"]["guest_access"] == "can_join"
    assert state[("m.room.encryption", "")]["content"]["algorithm"] == "m.megolm.v1.aes-sha2"
    power = state[("m.room.power_levels", "")]["content"]
    if version == "12":
        assert user.user_id not in power["users"], "v12 creators are not listed in users"
        assert power["events"]["m.room.tombstone"] > power["state_default"]
    else:
        assert power["users"][user.user_id] == 100
    # The spec's order: create, creator's join, power levels, preset, initial_state, name, topic, invites.
    order = ["m.room.create", "m.room.member", "m.room.power_levels", "m.room.join_rules",
             "m.room.history_visibility", "m.room.guest_access", "m.room.encryption", "m.room.name",
             "m.room.topic"]
    messages = assert_ok(user.get(room_path(room_id, "messages"), params={"dir": "f", "limit": 50}))["chunk"]
    types = [e["type"] for e in messages]
    assert types[: len(order)] == order
    assert types[len(order):] == ["m.room.member"]


def test_default_version_is_12_and_unsupported_versions_are_refused(user):
    room_id = create_room(user)
    assert state_event(user, room_id, "m.room.create")["room_version"] == "12"
    for version in ["0", "13", "bogus"]:
        assert_error(user.post(f"{V3}/createRoom", json={"room_version": version}), 400, "M_UNSUPPORTED_ROOM_VERSION")
    assert_error(user.post(f"{V3}/createRoom", json={"room_version": 1}), 400, "M_BAD_JSON")


@pytest.mark.parametrize("version", VERSIONS)
def test_event_ids_take_the_format_of_the_room_version(user, new_user, version):
    room_id = create_room(user, room_version=version, preset="public_chat")
    bob = new_user()
    join(bob, room_id)
    event_id = send_message(bob, room_id, "hello")
    event = assert_ok(bob.get(room_path(room_id, "event", event_id)))
    assert event["event_id"] == event_id and event["content"]["body"] == "hello"
    if version in ("1", "2"):
        # Versions 1 and 2 name events `$random:server`.
        assert re.fullmatch(r"\$[A-Za-z]+:localhost", event_id), event_id
    elif version == "3":
        assert re.fullmatch(r"\$[A-Za-z0-9+/]{43}", event_id), event_id
    else:
        assert re.fullmatch(r"\$[A-Za-z0-9_-]{43}", event_id), event_id
    # The event can be found, redacted and paginated past, whatever its ID looks like.
    assert_ok(user.put(room_path(room_id, "redact", event_id, "r1"), json={}))
    assert assert_ok(bob.get(room_path(room_id, "event", event_id)))["content"] == {}
    chunk = assert_ok(bob.get(room_path(room_id, "messages"), params={"dir": "b", "limit": 3}))["chunk"]
    assert event_id in [e["event_id"] for e in chunk]


@pytest.mark.parametrize("preset,join_rule,guest_access", [
    ("public_chat", "public", "forbidden"),
    ("private_chat", "invite", "can_join"),
    ("trusted_private_chat", "invite", "can_join"),
])
def test_presets(user, new_user, preset, join_rule, guest_access):
    friend = new_user()
    room_id = create_room(user, preset=preset, invite=[friend.user_id], is_direct=True)
    assert state_event(user, room_id, "m.room.join_rules")["join_rule"] == join_rule
    assert state_event(user, room_id, "m.room.guest_access")["guest_access"] == guest_access
    assert state_event(user, room_id, "m.room.member", friend.user_id)["is_direct"] is True
    create = state_event(user, room_id, "m.room.create")
    if preset == "trusted_private_chat":
        # v12 makes trusted invitees creators instead of listing them at 100.
        assert create["additional_creators"] == [friend.user_id]
    else:
        assert "additional_creators" not in create


def test_visibility_public_defaults_to_the_public_preset(user, new_user):
    room_id = create_room(user, visibility="public")
    assert state_event(user, room_id, "m.room.join_rules")["join_rule"] == "public"
    join(new_user(), room_id)


def test_power_level_override_and_creation_content(user, new_user):
    room_id = create_room(
        user, room_version="11", creation_content={"m.federate": False, "type": "m.space"},
        power_level_content_override={"events_default": 20, "users": {user.user_id: 100}},
    )
    create = state_event(user, room_id, "m.room.create")
    assert create["m.federate"] is False and create["type"] == "m.space"
    assert state_event(user, room_id, "m.room.power_levels")["events_default"] == 20
    # A member at level 0 can no longer talk.
    other = new_user()
    invite(user, room_id, other)
    join(other, room_id)
    resp = other.put(room_path(room_id, "send", "m.room.message", "t"), json={"body": "hi", "msgtype": "m.text"})
    assert_error(resp, 403, "M_FORBIDDEN")


def test_initial_state_that_breaks_the_rules_is_invalid_room_state(user):
    # The creator drops its own level below what the name needs.
    body = {"room_version": "11", "name": "x", "power_level_content_override": {"users": {user.user_id: 0}}}
    assert_error(user.post(f"{V3}/createRoom", json=body), 400, "M_INVALID_ROOM_STATE")
    body = {"initial_state": [{"type": "m.room.member", "state_key": user.user_id, "content": {"membership": "join"}}]}
    assert_error(user.post(f"{V3}/createRoom", json=body), 400, "M_INVALID_ROOM_STATE")


def test_room_alias_name_is_claimed_once(user, new_user):
    name = unique_name("alias")
    room_id = create_room(user, room_alias_name=name)
    alias = f"#{name}:localhost"
    assert state_event(user, room_id, "m.room.canonical_alias")["alias"] == alias
    assert_error(new_user().post(f"{V3}/createRoom", json={"room_alias_name": name}), 400, "M_ROOM_IN_USE")
    for bad in ["has space", "with:colon", ""]:
        assert_error(user.post(f"{V3}/createRoom", json={"room_alias_name": bad}), 400, "M_INVALID_PARAM")


@pytest.mark.parametrize("body,errcode", [
    ({"invite": ["not-a-user"]}, "M_INVALID_PARAM"),
    ({"invite": "@a:b"}, "M_BAD_JSON"),
    ({"preset": "party"}, "M_BAD_JSON"),
    ({"visibility": "secret"}, "M_BAD_JSON"),
    ({"power_level_content_override": {"users_default": "high"}}, "M_BAD_JSON"),
    ({"power_level_content_override": {"users": {"nobody": 5}}}, "M_BAD_JSON"),
    ({"power_level_content_override": {"ban": 1.5}}, "M_BAD_JSON"),
    ({"initial_state": [{"type": "x"}]}, {"M_BAD_JSON", "M_MISSING_PARAM"}),
    ({"creation_content": [1]}, "M_BAD_JSON"),
    ({"name": 5}, "M_BAD_JSON"),
])
def test_create_room_bad_input(user, body, errcode):
    assert_error(user.post(f"{V3}/createRoom", json=body), 400, errcode)


# ---------------------------------------------------------------------------------------------
# Sending


def test_send_is_idempotent_per_device_and_transaction(user):
    room_id = create_room(user)
    first = send_message(user, room_id, "once", txn="txn-1")
    again = send_message(user, room_id, "once", txn="txn-1")
    assert first == again
    other_device = user.login()["access_token"]
    resp = user.put(room_path(room_id, "send", "m.room.message", "txn-1"), token=other_device,
                    json={"msgtype": "m.text", "body": "once"})
    assert assert_ok(resp)["event_id"] != first, "another device's txn-1 is another transaction"
    event = assert_ok(user.get(room_path(room_id, "event", first)))
    assert event["unsigned"]["transaction_id"] == "txn-1"
    assert event["content"]["body"] == "once" and event["sender"] == user.user_id


def test_state_events_with_and_without_a_state_key(user):
    room_id = create_room(user)
    topic_id = send_state(user, room_id, "m.room.topic", {"topic": "new"})
    assert state_event(user, room_id, "m.room.topic") == {"topic": "new"}
    # A trailing slash is the empty state key too.
    resp = user.put(f"{room_path(room_id, 'state', 'm.room.topic')}/", json={"topic": "slash"})
    assert assert_ok(resp)["event_id"] != topic_id
    assert state_event(user, room_id, "m.room.topic") == {"topic": "slash"}
    send_state(user, room_id, "org.example.custom", {"k": 1}, state_key="key/with/slash")
    assert state_event(user, room_id, "org.example.custom", "key/with/slash") == {"k": 1}


def test_the_same_state_again_is_the_same_event(user, new_user):
    """As Synapse: the sender's identical state event changes nothing and makes no new event."""
    other = new_user()
    room_id = create_room(user, preset="public_chat", power_level_content_override={"state_default": 0})
    join(other, room_id)
    first = send_state(user, room_id, "m.room.topic", {"topic": "same", "n": 1})
    assert send_state(user, room_id, "m.room.topic", {"n": 1, "topic": "same"}) == first
    changed = send_state(user, room_id, "m.room.topic", {"topic": "same", "n": 2})
    assert changed != first
    assert send_state(other, room_id, "m.room.topic", {"topic": "same", "n": 2}) != changed, "another sender"
    chunk = assert_ok(user.get(room_path(room_id, "messages"), params={"dir": "b", "limit": 10}))["chunk"]
    topics = [e["event_id"] for e in chunk if e["type"] == "m.room.topic"]
    assert first in topics and len(topics) == len(set(topics)) == 3


def test_others_state_keys_and_power_levels_are_enforced(user, new_user):
    room_id = create_room(user, preset="public_chat")
    member = new_user()
    join(member, room_id)
    forbidden = [
        ("m.room.name", "", {"name": "mine"}),
        ("m.room.power_levels", "", {"users": {member.user_id: 100}}),
        ("org.example.profile", user.user_id, {"x": 1}),
    ]
    for event_type, key, content in forbidden:
        resp = member.put(room_path(room_id, "state", event_type, key), json=content)
        body = assert_error(resp, 403, "M_FORBIDDEN")
        assert body["error"], "the refusal says why"
    # With the state level, a member may set state keyed by its own user ID, and still not another's.
    levels = state_event(user, room_id, "m.room.power_levels")
    send_state(user, room_id, "m.room.power_levels", {**levels, "users": {member.user_id: 50}})
    send_state(member, room_id, "org.example.profile", {"x": 1}, state_key=member.user_id)
    resp = member.put(room_path(room_id, "state", "org.example.profile", user.user_id), json={"x": 2})
    assert_error(resp, 403, "M_FORBIDDEN")


def test_sending_needs_membership_and_a_known_room(user, new_user):
    room_id = create_room(user)
    stranger = new_user()
    resp = stranger.put(room_path(room_id, "send", "m.room.message", "t"), json={"body": "x", "msgtype": "m.text"})
    assert_error(resp, 403, "M_FORBIDDEN")
    missing = "!doesnotexist:localhost"
    resp = user.put(room_path(missing, "send", "m.room.message", "t"), json={"body": "x", "msgtype": "m.text"})
    assert_error(resp, 404, "M_NOT_FOUND")
    resp = user.put(room_path("!" + "A" * 43, "send", "m.room.message", "t"), json={"body": "x"})
    assert_error(resp, 404, "M_NOT_FOUND")


@pytest.mark.parametrize("room_id", ["not-a-room", "@user:localhost", "!", "#alias:localhost"])
def test_malformed_room_ids(user, room_id):
    resp = user.put(room_path(room_id, "send", "m.room.message", "t"), json={"body": "x"})
    assert_error(resp, 400, "M_INVALID_PARAM")


def test_oversized_events_and_keys(user):
    room_id = create_room(user)
    resp = user.put(room_path(room_id, "send", "m.room.message", "big"), json={"body": "x" * 70_000})
    assert_error(resp, 413, "M_TOO_LARGE")
    resp = user.put(room_path(room_id, "state", "m.example", "k" * 256), json={})
    assert_error(resp, 400, "M_INVALID_PARAM")
    resp = user.put(room_path(room_id, "send", "t" * 256, "t2"), json={})
    assert_error(resp, 400, "M_INVALID_PARAM")
    for content in [{"n": 1.5}, {"n": 2**53}, [1, 2], "text"]:
        resp = user.put(room_path(room_id, "send", "m.room.message", f"bad-{content!r}"), json=content)
        assert_error(resp, 400, {"M_BAD_JSON", "M_NOT_JSON"})
    # Nothing stored was harmed: the room still works.
    send_message(user, room_id, "still fine")


@pytest.mark.parametrize("content", [
    {"users_default": "50"},
    {"users": {"@a:localhost": "100"}},
    {"events": {"m.room.name": None}},
    {"users": []},
    {"kick": 10**16},
])
def test_invalid_power_level_content(user, content):
    room_id = create_room(user)
    resp = user.put(room_path(room_id, "state", "m.room.power_levels", ""), json=content)
    assert_error(resp, 400, "M_BAD_JSON")
    assert state_event(user, room_id, "m.room.power_levels")["users_default"] == 0


# ---------------------------------------------------------------------------------------------
# Redaction


@pytest.mark.parametrize("version", VERSIONS)
def test_redaction_rules(user, new_user, version):
    room_id = create_room(user, preset="public_chat", room_version=version)
    member = new_user()
    join(member, room_id)
    mine = send_message(member, room_id, "my own")
    theirs = send_message(user, room_id, "the creator's")
    # Anyone may redact their own event, but not another's without the redact level.
    resp = member.put(room_path(room_id, "redact", theirs, "r1"), json={"reason": "no"})
    assert_error(resp, 403, "M_FORBIDDEN")
    redaction = assert_ok(member.put(room_path(room_id, "redact", mine, "r2"), json={"reason": "oops"}))["event_id"]
    again = assert_ok(member.put(room_path(room_id, "redact", mine, "r2"), json={"reason": "oops"}))["event_id"]
    assert again == redaction
    # The moderator may redact anyone's.
    assert_ok(user.put(room_path(room_id, "redact", theirs, "r3"), json={}))
    event = assert_ok(user.get(room_path(room_id, "event", mine)))
    assert event["content"] == {}
    assert event["unsigned"]["redacted_because"]["event_id"] == redaction
    assert event["unsigned"]["redacted_because"]["content"]["reason"] == "oops"
    # Unknown targets and malformed IDs.
    assert_error(user.put(room_path(room_id, "redact", "$nothere", "r4"), json={}), 404, "M_NOT_FOUND")
    assert_error(user.put(room_path(room_id, "redact", "nothing", "r5"), json={}), 400, "M_INVALID_PARAM")
    # An event of another room, as Synapse answers.
    other_room = create_room(user, room_version=version)
    elsewhere = send_message(user, other_room, "elsewhere")
    assert_error(user.put(room_path(room_id, "redact", elsewhere, "r6"), json={}), 400, "M_INVALID_PARAM")


def test_redacting_state_keeps_what_the_version_keeps(user):
    room_id = create_room(user, room_version="11")
    event_id = send_state(user, room_id, "m.room.join_rules", {"join_rule": "public", "extra": "gone"})
    assert_ok(user.put(room_path(room_id, "redact", event_id, "r"), json={}))
    event = assert_ok(user.get(room_path(room_id, "event", event_id)))
    assert event["content"] == {"join_rule": "public"}


def test_path_parameters_are_percent_decoded(user):
    room_id = create_room(user)
    resp = user.put(f"{V3}/rooms/{path_quote(room_id)}/send/{path_quote('org.example/slash')}/t1", json={"a": 1})
    event_id = assert_ok(resp)["event_id"]
    assert assert_ok(user.get(room_path(room_id, "event", event_id)))["type"] == "org.example/slash"


@pytest.mark.parametrize("redact_first", [True, False])
def test_prev_content_of_a_redacted_state_event_is_redacted(user, redact_first):
    room_id = create_room(user)
    secret = send_state(user, room_id, "m.room.topic", {"topic": "secret"})
    if redact_first:
        assert_ok(user.put(room_path(room_id, "redact", secret, "r"), json={}))
    replacement = send_state(user, room_id, "m.room.topic", {"topic": "public"})
    if not redact_first:
        assert_ok(user.put(room_path(room_id, "redact", secret, "r"), json={}))
    event = assert_ok(user.get(room_path(room_id, "event", replacement)))
    assert event["unsigned"]["replaces_state"] == secret
    assert event["unsigned"]["prev_content"] == {}, "the redacted topic does not leak"


def test_the_deprecated_post_send_sends_each_time(user):
    room_id = create_room(user)
    body = {"msgtype": "m.text", "body": "posted"}
    first = assert_ok(user.post(room_path(room_id, "send", "m.room.message"), json=body))["event_id"]
    second = assert_ok(user.post(room_path(room_id, "send", "m.room.message"), json=body))["event_id"]
    assert first != second
    assert assert_ok(user.get(room_path(room_id, "event", second)))["content"] == body


def test_guests_send_only_messages(user, guest):
    room_id = create_room(user, preset="public_chat")
    send_state(user, room_id, "m.room.guest_access", {"guest_access": "can_join"})
    join(guest, room_id)
    send_message(guest, room_id, "a guest's message")
    for kind in ["m.reaction", "org.example.custom"]:
        resp = guest.put(room_path(room_id, "send", kind, "t1"), json={"a": 1})
        assert_error(resp, 403, "M_GUEST_ACCESS_FORBIDDEN")
    assert_error(guest.post(room_path(room_id, "send", "m.sticker"), json={}), 403, "M_GUEST_ACCESS_FORBIDDEN")
