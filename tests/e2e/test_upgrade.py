"""Room upgrades: `POST /rooms/{roomId}/upgrade`."""

import pytest

from conftest import V3, assert_error, assert_ok, path_quote, unique_name
from rooms import create_room, join, room_path, send_message, send_state, state_event

ENCRYPTION = {"algorithm": "m.megolm.v1.aes-sha2"}
ACL = {"allow": ["*"], "deny": ["evil.example"], "allow_ip_literals": False}


def upgrade(user, room_id, version, **body):
    return user.post(room_path(room_id, "upgrade"), json={"new_version": version, **body})


def alias_path(alias: str) -> str:
    return f"{V3}/directory/room/{path_quote(alias)}"


def visibility(client, room_id) -> str:
    return assert_ok(client.get(f"{V3}/directory/list/room/{path_quote(room_id)}"))["visibility"]


def membership(user, room_id, target_id) -> str:
    return state_event(user, room_id, "m.room.member", target_id)["membership"]


def furnished_room(user, version, alias_name):
    """A published room with every kind of transferable state, a second alias, a banned user and
    a member at level 50."""
    room_id = create_room(
        user, room_version=version, visibility="public", preset="public_chat", name="Old name",
        topic="Old topic", room_alias_name=alias_name,
        initial_state=[{"type": "m.room.encryption", "content": ENCRYPTION},
                       {"type": "m.room.server_acl", "content": ACL},
                       {"type": "m.room.avatar", "content": {"url": "mxc://localhost/old"}},
                       {"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}},
                       {"type": "m.room.guest_access", "content": {"guest_access": "can_join"}}],
    )
    return room_id


@pytest.mark.parametrize("old_version,new_version", [("10", "12"), ("11", "12"), ("12", "12"), ("10", "11")])
def test_upgrade(user, new_user, client, old_version, new_version):
    alias_name = unique_name("up")
    alias = f"#{alias_name}:localhost"
    old = furnished_room(user, old_version, alias_name)
    second_alias = f"#{unique_name('second')}:localhost"
    assert_ok(user.put(alias_path(second_alias), json={"room_id": old}))
    send_state(user, old, "m.room.canonical_alias", {"alias": alias, "alt_aliases": [second_alias]})
    mod, member, villain = new_user(), new_user(), new_user()
    for u in (mod, member):
        join(u, old)
    power = state_event(user, old, "m.room.power_levels")
    power["users"][mod.user_id] = 50
    send_state(user, old, "m.room.power_levels", power)
    assert_ok(user.post(room_path(old, "ban"), json={"user_id": villain.user_id, "reason": "trouble"}))
    last_event = send_message(user, old, "last words")

    new = assert_ok(upgrade(user, old, new_version))["replacement_room"]
    assert new != old
    if new_version == "12":
        assert ":" not in new, "v12 room IDs are the create event's hash"

    # The new room: its create event points back, without an event ID from v12 on.
    create = state_event(user, new, "m.room.create")
    assert create["room_version"] == new_version
    if new_version == "12":
        assert create["predecessor"] == {"room_id": old}
    else:
        assert create["predecessor"] == {"room_id": old, "event_id": last_event}
    # The transferable state is copied.
    assert state_event(user, new, "m.room.name") == {"name": "Old name"}
    assert state_event(user, new, "m.room.topic")["topic"] == "Old topic"
    assert state_event(user, new, "m.room.join_rules") == {"join_rule": "public"}
    assert state_event(user, new, "m.room.history_visibility") == {"history_visibility": "world_readable"}
    assert state_event(user, new, "m.room.guest_access") == {"guest_access": "can_join"}
    assert state_event(user, new, "m.room.avatar") == {"url": "mxc://localhost/old"}
    assert state_event(user, new, "m.room.encryption") == ENCRYPTION
    assert state_event(user, new, "m.room.server_acl") == ACL
    # Power levels carry over, adapted to the new version's creators.
    new_power = state_event(user, new, "m.room.power_levels")
    assert new_power["users"][mod.user_id] == 50
    if new_version == "12":
        assert user.user_id not in new_power["users"], "v12 creators are not listed in users"
    else:
        assert new_power["users"][user.user_id] == 100
    for key in ("events_default", "invite", "state_default", "ban", "kick", "redact"):
        assert new_power.get(key) == power.get(key), key
    assert new_power["events"]["m.room.name"] == power["events"]["m.room.name"]
    # The upgrader is in the new room; others are not, and bans carry over.
    assert membership(user, new, user.user_id) == "join"
    assert membership(user, new, villain.user_id) == "ban"
    assert_error(user.get(room_path(new, "state", "m.room.member", member.user_id)), 404, "M_NOT_FOUND")
    join(member, new)

    # The old room: tombstoned, and quiet.
    tombstone = state_event(user, old, "m.room.tombstone")
    assert tombstone["replacement_room"] == new
    assert isinstance(tombstone["body"], str) and tombstone["body"]
    old_power = state_event(user, old, "m.room.power_levels")
    assert old_power["events_default"] >= 50 and old_power["invite"] >= 50
    assert_error(member.put(room_path(old, "send", "m.room.message", "t1"), json={"body": "hi", "msgtype": "m.text"}),
                 403, "M_FORBIDDEN")
    outsider = new_user()
    assert_error(member.post(room_path(old, "invite"), json={"user_id": outsider.user_id}), 403, "M_FORBIDDEN")
    # The moderator (50) still may speak in the old room.
    send_message(mod, old, "still here")

    # Aliases and the directory listing moved.
    assert assert_ok(client.get(alias_path(alias)))["room_id"] == new
    assert assert_ok(client.get(alias_path(second_alias)))["room_id"] == new
    assert sorted(assert_ok(user.get(room_path(new, "aliases")))["aliases"]) == sorted([alias, second_alias])
    assert assert_ok(user.get(room_path(old, "aliases")))["aliases"] == []
    assert state_event(user, new, "m.room.canonical_alias") == {"alias": alias, "alt_aliases": [second_alias]}
    assert state_event(user, old, "m.room.canonical_alias") == {}
    assert visibility(client, new) == "public"
    assert visibility(client, old) == "private"


@pytest.mark.parametrize("new_version", ["11", "12"])
def test_an_upgrader_below_the_copied_levels(user, new_user, new_version):
    """Bob may send the tombstone (60) but not the server ACL (100) the new room must copy: he is
    raised for the copy and put back at his own level after it (v11), or is the creator (v12)."""
    old = create_room(user, room_version="10", preset="public_chat",
                      initial_state=[{"type": "m.room.server_acl", "content": ACL}])
    bob = new_user()
    join(bob, old)
    power = state_event(user, old, "m.room.power_levels")
    power["users"][bob.user_id] = 60
    power["events"]["m.room.tombstone"] = 60
    send_state(user, old, "m.room.power_levels", power)
    new = assert_ok(upgrade(bob, old, new_version))["replacement_room"]
    assert state_event(bob, new, "m.room.server_acl") == ACL
    new_power = state_event(bob, new, "m.room.power_levels")
    assert new_power["users"][user.user_id] == 100
    if new_version == "12":
        assert bob.user_id not in new_power["users"]
    else:
        assert new_power["users"][bob.user_id] == 60
        assert new_power["events"] == power["events"]
    # The old room is tombstoned, but Bob lacks the level of m.room.power_levels (100) there, so
    # its levels stay as they were (Synapse too only logs this).
    assert state_event(user, old, "m.room.tombstone")["replacement_room"] == new
    assert state_event(user, old, "m.room.power_levels") == power


def test_room_type_and_space_children_carry_over(user):
    child = create_room(user)
    space = create_room(user, room_version="11", creation_content={"type": "m.space"})
    send_state(user, space, "m.space.child", {"via": ["localhost"]}, state_key=child)
    new = assert_ok(upgrade(user, space, "12"))["replacement_room"]
    assert state_event(user, new, "m.room.create")["type"] == "m.space"
    assert state_event(user, new, "m.space.child", child) == {"via": ["localhost"]}


def test_a_room_without_a_type_gets_none(user):
    old = create_room(user, room_version="11")
    new = assert_ok(upgrade(user, old, "12"))["replacement_room"]
    assert "type" not in state_event(user, new, "m.room.create")


def test_additional_creators_in_v12(user, new_user):
    bob, carol = new_user(), new_user()
    old = create_room(user, room_version="10", preset="public_chat")
    join(bob, old)
    power = state_event(user, old, "m.room.power_levels")
    power["users"][bob.user_id] = 100
    send_state(user, old, "m.room.power_levels", power)
    body = {"additional_creators": [bob.user_id, carol.user_id, bob.user_id, user.user_id]}
    new = assert_ok(upgrade(user, old, "12", **body))["replacement_room"]
    create = state_event(user, new, "m.room.create")
    assert create["additional_creators"] == [bob.user_id, carol.user_id]
    users = state_event(user, new, "m.room.power_levels")["users"]
    assert bob.user_id not in users and user.user_id not in users
    # Bob, a creator, outranks everyone in the new room once he joins.
    join(bob, new)
    send_state(bob, new, "m.room.name", {"name": "Bob was here"})


def test_additional_creators_are_not_copied_from_the_old_room(user, new_user):
    bob = new_user()
    old = create_room(user, room_version="12", preset="trusted_private_chat", invite=[bob.user_id])
    assert state_event(user, old, "m.room.create")["additional_creators"] == [bob.user_id]
    new = assert_ok(upgrade(user, old, "12"))["replacement_room"]
    assert "additional_creators" not in state_event(user, new, "m.room.create")


def test_additional_creators_ignored_before_v12(user):
    old = create_room(user, room_version="10")
    new = assert_ok(upgrade(user, old, "11", additional_creators=["not even a user"]))["replacement_room"]
    assert "additional_creators" not in state_event(user, new, "m.room.create")


# ---------------------------------------------------------------------------------------------
# Refusals


def test_only_who_may_send_the_tombstone_upgrades(user, new_user):
    old = create_room(user, room_version="11", preset="public_chat")
    member, stranger = new_user(), new_user()
    join(member, old)
    assert_error(upgrade(member, old, "12"), 403, "M_FORBIDDEN")
    assert_error(upgrade(stranger, old, "12"), 403, "M_FORBIDDEN")
    # Level 100 is what m.room.tombstone needs by default before v12.
    power = state_event(user, old, "m.room.power_levels")
    power["users"][member.user_id] = 100
    send_state(user, old, "m.room.power_levels", power)
    new = assert_ok(upgrade(member, old, "12"))["replacement_room"]
    assert state_event(member, new, "m.room.create")["predecessor"] == {"room_id": old}
    assert membership(member, new, member.user_id) == "join"
    assert_error(member.get(room_path(new, "state", "m.room.member", user.user_id)), 404, "M_NOT_FOUND")


def test_in_v12_only_creators_upgrade_by_default(user, new_user):
    old = create_room(user, room_version="12", preset="public_chat")
    admin = new_user()
    join(admin, old)
    power = state_event(user, old, "m.room.power_levels")
    power["users"][admin.user_id] = 100
    send_state(user, old, "m.room.power_levels", power)
    # m.room.tombstone needs 150, above any level a non-creator can be given by default.
    assert_error(upgrade(admin, old, "12"), 403, "M_FORBIDDEN")
    assert_ok(upgrade(user, old, "12"))


def test_former_members_cannot_upgrade(user):
    old = create_room(user, room_version="11")
    assert_ok(user.post(room_path(old, "leave"), json={}))
    assert_error(upgrade(user, old, "12"), 403, "M_FORBIDDEN")


@pytest.mark.parametrize("version", ["0", "13", "", "12 ", "org.example.custom"])
def test_unsupported_versions(user, version):
    old = create_room(user)
    assert_error(upgrade(user, old, version), 400, "M_UNSUPPORTED_ROOM_VERSION")


@pytest.mark.parametrize("version", ["1", "2", "3", "9"])
def test_upgrade_to_an_older_version(user, version):
    old = create_room(user, name="going back")
    new = assert_ok(upgrade(user, old, version))["replacement_room"]
    assert state_event(user, new, "m.room.create")["room_version"] == version
    assert state_event(user, new, "m.room.name")["name"] == "going back"
    assert state_event(user, old, "m.room.tombstone")["replacement_room"] == new


def test_bad_requests(user, client):
    old = create_room(user)
    assert_error(user.post(room_path(old, "upgrade"), json={}), 400, "M_MISSING_PARAM")
    assert_error(user.post(room_path(old, "upgrade"), json={"new_version": 12}), 400, "M_BAD_JSON")
    assert_error(user.post(room_path(old, "upgrade"), content=b"not json"), 400, "M_NOT_JSON")
    assert_error(upgrade(user, old, "12", additional_creators="@a:localhost"), 400, "M_BAD_JSON")
    assert_error(upgrade(user, old, "12", additional_creators=["not a user"]), 400, "M_INVALID_PARAM")
    assert_error(upgrade(user, "!unknown:localhost", "12"), 404, "M_NOT_FOUND")
    assert_error(upgrade(user, "not-a-room", "12"), 400, "M_INVALID_PARAM")
    assert_error(client.post(room_path(old, "upgrade"), json={"new_version": "12"}), 401, "M_MISSING_TOKEN")
    # None of that touched the room.
    assert_error(user.get(room_path(old, "state", "m.room.tombstone")), 404, "M_NOT_FOUND")


def test_guests_cannot_upgrade(user, guest):
    old = create_room(user, preset="public_chat")
    assert_error(upgrade(guest, old, "12"), 403, "M_GUEST_ACCESS_FORBIDDEN")


def test_upgrading_twice_follows_the_chain(user):
    first = create_room(user, room_version="10", room_alias_name=unique_name("chain"))
    second = assert_ok(upgrade(user, first, "11"))["replacement_room"]
    third = assert_ok(upgrade(user, second, "12"))["replacement_room"]
    assert state_event(user, third, "m.room.create")["predecessor"] == {"room_id": second}
    assert state_event(user, second, "m.room.tombstone")["replacement_room"] == third
    assert state_event(user, first, "m.room.tombstone")["replacement_room"] == second
    aliases = assert_ok(user.get(room_path(third, "aliases")))["aliases"]
    assert len(aliases) == 1 and state_event(user, third, "m.room.canonical_alias") == {"alias": aliases[0]}
