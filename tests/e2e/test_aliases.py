"""Room aliases: `GET`, `PUT` and `DELETE /directory/room/{roomAlias}`, `GET /rooms/{roomId}/aliases`,
and the alias `createRoom` claims with `room_alias_name`."""

import pytest

from conftest import V3, assert_error, assert_ok, path_quote, unique_name
from rooms import create_room, join, leave, room_path, send_state, state_event


def alias_path(alias: str) -> str:
    return f"{V3}/directory/room/{path_quote(alias)}"


def new_alias(prefix: str = "alias") -> str:
    return f"#{unique_name(prefix)}:localhost"


def room_aliases(user, room_id) -> list[str]:
    return assert_ok(user.get(room_path(room_id, "aliases")))["aliases"]


# ---------------------------------------------------------------------------------------------
# createRoom and resolving


def test_create_room_alias_name_resolves_without_a_token(user, client):
    name = unique_name("made")
    room_id = create_room(user, room_alias_name=name)
    body = assert_ok(client.get(alias_path(f"#{name}:localhost")))
    assert body == {"room_id": room_id, "servers": ["localhost"]}
    assert room_aliases(user, room_id) == [f"#{name}:localhost"]


def test_create_room_alias_name_taken_is_room_in_use(user, new_user):
    name = unique_name("taken")
    room_id = create_room(user, room_alias_name=name)
    resp = new_user().post(f"{V3}/createRoom", json={"room_alias_name": name})
    assert_error(resp, 400, "M_ROOM_IN_USE")
    # An alias set through the directory is just as taken.
    other = unique_name("set")
    assert_ok(user.put(alias_path(f"#{other}:localhost"), json={"room_id": room_id}))
    assert_error(user.post(f"{V3}/createRoom", json={"room_alias_name": other}), 400, "M_ROOM_IN_USE")
    # The failed attempts changed nothing.
    assert assert_ok(user.get(alias_path(f"#{name}:localhost")))["room_id"] == room_id


def test_resolving_unknown_malformed_and_foreign_aliases(client):
    assert_error(client.get(alias_path(new_alias("nothing"))), 404, "M_NOT_FOUND")
    assert_error(client.get(alias_path("#someroom:elsewhere.example")), 404, "M_NOT_FOUND")
    for bad in ["no-hash:localhost", "#no-server", "#bad:server name", "!room:localhost", "@user:localhost"]:
        assert_error(client.get(alias_path(bad)), 400, "M_INVALID_PARAM")


# ---------------------------------------------------------------------------------------------
# PUT


def test_set_resolve_list_and_delete(user, new_user, client):
    room_id = create_room(user)
    alias = new_alias()
    assert assert_ok(user.put(alias_path(alias), json={"room_id": room_id})) == {}
    assert assert_ok(client.get(alias_path(alias))) == {"room_id": room_id, "servers": ["localhost"]}
    second = new_alias("second")
    assert_ok(user.put(alias_path(second), json={"room_id": room_id}))
    assert room_aliases(user, room_id) == sorted([alias, second])
    # Joining by the alias reaches the room.
    room2 = create_room(user, preset="public_chat")
    public_alias = new_alias("pub")
    assert_ok(user.put(alias_path(public_alias), json={"room_id": room2}))
    bob = new_user()
    assert assert_ok(bob.post(f"{V3}/join/{path_quote(public_alias)}", json={}))["room_id"] == room2
    assert assert_ok(user.delete(alias_path(alias))) == {}
    assert_error(client.get(alias_path(alias)), 404, "M_NOT_FOUND")
    assert room_aliases(user, room_id) == [second]


def test_aliases_with_unusual_characters(user, client):
    room_id = create_room(user)
    alias = f"#{unique_name('ünï')}/slash?q=1&x#hash:localhost"
    assert_ok(user.put(alias_path(alias), json={"room_id": room_id}))
    assert assert_ok(client.get(alias_path(alias)))["room_id"] == room_id
    assert alias in room_aliases(user, room_id)


def test_set_alias_taken_is_m_unknown(user, new_user):
    room_id = create_room(user)
    alias = new_alias()
    assert_ok(user.put(alias_path(alias), json={"room_id": room_id}))
    other_room = create_room(user)
    assert_error(user.put(alias_path(alias), json={"room_id": other_room}), 409, "M_UNKNOWN")
    assert assert_ok(user.get(alias_path(alias)))["room_id"] == room_id


def test_set_alias_taken_again_for_the_same_room_is_409(user):
    room_id = create_room(user)
    alias = new_alias()
    assert_ok(user.put(alias_path(alias), json={"room_id": room_id}))
    assert_error(user.put(alias_path(alias), json={"room_id": room_id}), 409, "M_UNKNOWN")


@pytest.mark.parametrize("alias", [
    "no-hash:localhost", "#no-server", "#bad:server name", "#:localhost", "#has space:localhost",
    "#tab\there:localhost", "#" + "x" * 260 + ":localhost",
])
def test_set_malformed_alias_is_invalid_param(user, alias):
    room_id = create_room(user)
    assert_error(user.put(alias_path(alias), json={"room_id": room_id}), 400, "M_INVALID_PARAM")


def test_set_alias_on_another_server_is_invalid_param(user):
    room_id = create_room(user)
    resp = user.put(alias_path(f"#{unique_name()}:elsewhere.example"), json={"room_id": room_id})
    assert_error(resp, 400, "M_INVALID_PARAM")


def test_set_alias_bad_bodies(user, client):
    alias = new_alias()
    assert_error(user.put(alias_path(alias), json={}), 400, "M_MISSING_PARAM")
    assert_error(user.put(alias_path(alias), json={"room_id": 5}), 400, "M_BAD_JSON")
    assert_error(user.put(alias_path(alias), json={"room_id": "not a room"}), 400, "M_INVALID_PARAM")
    assert_error(user.put(alias_path(alias), content=b"{"), 400, "M_NOT_JSON")
    assert_error(user.put(alias_path(alias), json={"room_id": "!nowhere:localhost"}), 404, "M_NOT_FOUND")
    assert_error(client.put(alias_path(alias), json={"room_id": "!nowhere:localhost"}), 401, "M_MISSING_TOKEN")
    assert_error(client.get(alias_path(alias)), 404, "M_NOT_FOUND")


def test_only_members_set_aliases(user, new_user):
    room_id = create_room(user, preset="public_chat")
    outsider = new_user()
    alias = new_alias()
    assert_error(outsider.put(alias_path(alias), json={"room_id": room_id}), 403, "M_FORBIDDEN")
    # A member at level 0 may (Synapse requires membership, not power).
    join(outsider, room_id)
    assert_ok(outsider.put(alias_path(alias), json={"room_id": room_id}))
    # A former member may not.
    leave(outsider, room_id)
    assert_error(outsider.put(alias_path(new_alias()), json={"room_id": room_id}), 403, "M_FORBIDDEN")


# ---------------------------------------------------------------------------------------------
# DELETE


def test_who_may_delete_an_alias(user, new_user):
    room_id = create_room(user, preset="public_chat")
    bob, carol, dave = new_user(), new_user(), new_user()
    join(bob, room_id)
    join(carol, room_id)
    by_bob = new_alias("bob")
    assert_ok(bob.put(alias_path(by_bob), json={"room_id": room_id}))
    # Neither a member without power nor a stranger may delete someone else's alias.
    assert_error(carol.delete(alias_path(by_bob)), 403, "M_FORBIDDEN")
    assert_error(dave.delete(alias_path(by_bob)), 403, "M_FORBIDDEN")
    # Its creator may, even at level 0 and after leaving.
    leave(bob, room_id)
    assert_ok(bob.delete(alias_path(by_bob)))
    assert_error(user.get(alias_path(by_bob)), 404, "M_NOT_FOUND")
    # A member who may send m.room.canonical_alias (50 by default) may delete any alias.
    by_user = new_alias("owner")
    assert_ok(user.put(alias_path(by_user), json={"room_id": room_id}))
    assert_error(carol.delete(alias_path(by_user)), 403, "M_FORBIDDEN")
    power = state_event(user, room_id, "m.room.power_levels")
    power["users"][carol.user_id] = 50
    send_state(user, room_id, "m.room.power_levels", power)
    assert_ok(carol.delete(alias_path(by_user)))
    assert_error(user.get(alias_path(by_user)), 404, "M_NOT_FOUND")


def test_delete_unknown_malformed_and_foreign(user, client):
    assert_error(user.delete(alias_path(new_alias())), 404, "M_NOT_FOUND")
    assert_error(user.delete(alias_path("#x:elsewhere.example")), 404, "M_NOT_FOUND")
    assert_error(user.delete(alias_path("not-an-alias")), 400, "M_INVALID_PARAM")
    assert_error(client.delete(alias_path(new_alias())), 401, "M_MISSING_TOKEN")


def test_deleting_the_canonical_alias_updates_the_event(user):
    name = unique_name("canon")
    alias = f"#{name}:localhost"
    room_id = create_room(user, room_alias_name=name)
    alt = new_alias("alt")
    assert_ok(user.put(alias_path(alt), json={"room_id": room_id}))
    send_state(user, room_id, "m.room.canonical_alias", {"alias": alias, "alt_aliases": [alt]})
    assert_ok(user.delete(alias_path(alias)))
    assert state_event(user, room_id, "m.room.canonical_alias") == {"alt_aliases": [alt]}
    assert_ok(user.delete(alias_path(alt)))
    assert state_event(user, room_id, "m.room.canonical_alias") == {}


def test_deleting_an_alias_leaves_a_redacted_canonical_alias_alone(user):
    name = unique_name("redacted")
    room_id = create_room(user, room_alias_name=name)
    alt = new_alias("alt")
    assert_ok(user.put(alias_path(alt), json={"room_id": room_id}))
    content = {"alias": f"#{name}:localhost", "alt_aliases": [alt]}
    event_id = send_state(user, room_id, "m.room.canonical_alias", content)
    assert_ok(user.put(room_path(room_id, "redact", event_id, "r1"), json={}))
    assert state_event(user, room_id, "m.room.canonical_alias") == {}
    assert_ok(user.delete(alias_path(alt)))
    # Nothing brings the redacted aliases back.
    assert state_event(user, room_id, "m.room.canonical_alias") == {}


# ---------------------------------------------------------------------------------------------
# GET /rooms/{roomId}/aliases


def test_room_aliases_are_for_members_or_world_readable_rooms(user, new_user):
    room_id = create_room(user, preset="public_chat")
    alias = new_alias()
    assert_ok(user.put(alias_path(alias), json={"room_id": room_id}))
    outsider = new_user()
    assert_error(outsider.get(room_path(room_id, "aliases")), 403, "M_FORBIDDEN")
    join(outsider, room_id)
    assert room_aliases(outsider, room_id) == [alias]
    leave(outsider, room_id)
    assert_error(outsider.get(room_path(room_id, "aliases")), 403, "M_FORBIDDEN")
    send_state(user, room_id, "m.room.history_visibility", {"history_visibility": "world_readable"})
    assert room_aliases(outsider, room_id) == [alias]
    assert room_aliases(new_user(), room_id) == [alias]


def test_room_aliases_empty_unknown_and_malformed(user, client):
    room_id = create_room(user)
    assert room_aliases(user, room_id) == []
    assert_error(user.get(room_path("!unknown:localhost", "aliases")), 403, "M_FORBIDDEN")
    assert_error(user.get(room_path("not-a-room", "aliases")), 400, "M_INVALID_PARAM")
    assert_error(client.get(room_path(room_id, "aliases")), 401, "M_MISSING_TOKEN")


def test_guests_see_the_aliases_of_rooms_they_are_in(user, guest):
    room_id = create_room(user, preset="public_chat")
    send_state(user, room_id, "m.room.guest_access", {"guest_access": "can_join"})
    alias = new_alias()
    assert_ok(user.put(alias_path(alias), json={"room_id": room_id}))
    assert_error(guest.get(room_path(room_id, "aliases")), 403, "M_FORBIDDEN")
    join(guest, room_id)
    assert room_aliases(guest, room_id) == [alias]


def test_canonical_alias_must_point_to_the_room(user):
    name = unique_name("canon")
    alias = f"#{name}:localhost"
    room_id = create_room(user, room_alias_name=name)
    other_name = unique_name("other")
    create_room(user, room_alias_name=other_name)
    send_state(user, room_id, "m.room.canonical_alias", {"alias": alias, "alt_aliases": [alias]})
    bad = [
        ({"alias": f"#NOT-{name}:localhost"}, "M_BAD_ALIAS"),
        ({"alias": alias, "alt_aliases": [f"#NOT-{name}:localhost"]}, "M_BAD_ALIAS"),
        ({"alias": alias, "alt_aliases": [f"#{other_name}:localhost"]}, "M_BAD_ALIAS"),
        ({"alias": f"#{name}:elsewhere.example"}, "M_BAD_ALIAS"),
        ({"alias": f"%{name}:localhost"}, "M_INVALID_PARAM"),
        ({"alias": alias, "alt_aliases": [f"%{name}:localhost"]}, "M_INVALID_PARAM"),
        ({"alias": alias, "alt_aliases": alias}, "M_INVALID_PARAM"),
        ({"alias": 5}, "M_INVALID_PARAM"),
    ]
    for content, errcode in bad:
        assert_error(user.put(room_path(room_id, "state", "m.room.canonical_alias", ""), json=content), 400, errcode)
    assert state_event(user, room_id, "m.room.canonical_alias") == {"alias": alias, "alt_aliases": [alias]}
    # Removing the canonical alias needs no alias to exist.
    send_state(user, room_id, "m.room.canonical_alias", {})
