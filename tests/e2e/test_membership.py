"""Membership: join, knock, invite, leave, forget, kick, ban, unban, and `GET /joined_rooms`,
under each join rule."""

import pytest

from conftest import V3, assert_error, assert_ok, path_quote, unique_name
from rooms import create_room, invite, join, leave, room_path, send_message, send_state, state_event


def membership(user, room_id, target) -> str:
    return state_event(user, room_id, "m.room.member", target.user_id)["membership"]


def joined_rooms(user) -> set[str]:
    return set(assert_ok(user.get(f"{V3}/joined_rooms"))["joined_rooms"])


def set_join_rule(user, room_id, rule, allow=None):
    content = {"join_rule": rule}
    if allow is not None:
        content["allow"] = [{"type": "m.room_membership", "room_id": r} for r in allow]
    send_state(user, room_id, "m.room.join_rules", content)


def test_public_room_join_by_id_and_alias_then_leave(user, new_user):
    name = unique_name("pub")
    room_id = create_room(user, preset="public_chat", room_alias_name=name)
    bob, carol = new_user(), new_user()
    join(bob, room_id)
    resp = carol.post(f"{V3}/join/{path_quote(f'#{name}:localhost')}", json={})
    assert assert_ok(resp)["room_id"] == room_id
    assert room_id in joined_rooms(bob) and room_id in joined_rooms(carol)
    assert membership(user, room_id, bob) == "join"
    leave(bob, room_id)
    assert membership(user, room_id, bob) == "leave"
    assert room_id not in joined_rooms(bob)
    assert_error(bob.post(f"{V3}/join/{path_quote('#nothing-here:localhost')}", json={}), 404, "M_NOT_FOUND")
    assert_error(bob.post(f"{V3}/join/{path_quote('#bad alias')}", json={}), 400, "M_INVALID_PARAM")


def test_join_carries_the_profile(user, new_user):
    room_id = create_room(user, preset="public_chat")
    bob = new_user()
    assert_ok(bob.put(f"{V3}/profile/{path_quote(bob.user_id)}/displayname", json={"displayname": "Bobby"}))
    join(bob, room_id)
    assert state_event(user, room_id, "m.room.member", bob.user_id)["displayname"] == "Bobby"


def test_join_body_keys_reach_the_member_event(user, new_user):
    name = unique_name("custom")
    room_id = create_room(user, preset="public_chat", room_alias_name=name)
    bob, carol = new_user(), new_user()
    body = {"foo": "bar", "reason": "hello", "membership": "leave", "third_party_signed": {"x": 1}}
    assert assert_ok(bob.post(f"{V3}/join/{path_quote(room_id)}", json=body))["room_id"] == room_id
    content = state_event(user, room_id, "m.room.member", bob.user_id)
    # The server decides the membership and the profile; a request parameter is not content.
    assert content == {"foo": "bar", "reason": "hello", "membership": "join", "displayname": bob.localpart}
    resp = carol.post(f"{V3}/join/{path_quote(f'#{name}:localhost')}", json={"foo": 7, "displayname": "Own name"})
    assert_ok(resp)
    content = state_event(user, room_id, "m.room.member", carol.user_id)
    assert content == {"foo": 7, "membership": "join", "displayname": "Own name"}


def test_joining_twice_sends_no_second_event(user, new_user):
    room_id = create_room(user, preset="public_chat")
    bob = new_user()
    join(bob, room_id)
    first = user.get(room_path(room_id, "state")).json()
    join(bob, room_id)
    assert_ok(bob.post(f"{V3}/join/{path_quote(room_id)}", json={}))
    again = user.get(room_path(room_id, "state")).json()
    member_id = [e["event_id"] for e in again if e["type"] == "m.room.member" and e["state_key"] == bob.user_id]
    assert member_id == [e["event_id"] for e in first if e["type"] == "m.room.member" and e["state_key"] == bob.user_id]
    # A join that changes the content is a new event.
    assert_ok(bob.post(f"{V3}/join/{path_quote(room_id)}", json={"reason": "again"}))
    assert state_event(user, room_id, "m.room.member", bob.user_id)["reason"] == "again"


def test_invite_only_room(user, new_user):
    room_id = create_room(user, preset="private_chat")
    bob, carol = new_user(), new_user()
    assert_error(bob.post(room_path(room_id, "join"), json={}), 403, "M_FORBIDDEN")
    invite(user, room_id, bob)
    assert membership(user, room_id, bob) == "invite"
    join(bob, room_id)
    # Members at level 0 may invite (the default invite level is 0) ...
    invite(bob, room_id, carol)
    # ... but a non-member may not.
    dave = new_user()
    resp = dave.post(room_path(room_id, "invite"), json={"user_id": carol.user_id})
    assert_error(resp, 403, "M_FORBIDDEN")
    # Rejecting an invite is leaving.
    leave(carol, room_id)
    assert membership(user, room_id, carol) == "leave"


def test_invite_bad_targets(user):
    room_id = create_room(user)
    assert_error(user.post(room_path(room_id, "invite"), json={"user_id": "nobody"}), 400, "M_INVALID_PARAM")
    assert_error(user.post(room_path(room_id, "invite"), json={}), 400, {"M_BAD_JSON", "M_MISSING_PARAM"})
    resp = user.post(room_path(room_id, "invite"), json={"user_id": "@ghost-x:localhost"})
    assert_error(resp, 404, "M_NOT_FOUND")
    resp = user.post(room_path(room_id, "invite"), json={"user_id": "@someone:elsewhere.example"})
    assert_error(resp, 403, "M_FORBIDDEN")


@pytest.mark.parametrize("rule", ["knock", "knock_restricted"])
def test_knock_then_invite(user, new_user, rule):
    room_id = create_room(user, room_version="12")
    set_join_rule(user, room_id, rule, allow=[] if rule == "knock_restricted" else None)
    bob = new_user()
    assert_ok(bob.post(f"{V3}/knock/{path_quote(room_id)}", json={"reason": "let me in"}))
    assert membership(user, room_id, bob) == "knock"
    assert state_event(user, room_id, "m.room.member", bob.user_id)["reason"] == "let me in"
    invite(user, room_id, bob)
    join(bob, room_id)
    assert membership(user, room_id, bob) == "join"


def test_knocking_where_the_rules_forbid_it(user, new_user):
    for preset in ["public_chat", "private_chat"]:
        room_id = create_room(user, preset=preset)
        assert_error(new_user().post(f"{V3}/knock/{path_quote(room_id)}", json={}), 403, "M_FORBIDDEN")


@pytest.mark.parametrize("rule", ["restricted", "knock_restricted"])
def test_restricted_rooms_admit_members_of_the_allowed_room(user, new_user, rule):
    space = create_room(user, preset="private_chat")
    room_id = create_room(user, preset="private_chat", room_version="11")
    set_join_rule(user, room_id, rule, allow=[space])
    insider, outsider = new_user(), new_user()
    invite(user, space, insider)
    join(insider, space)
    join(insider, room_id)
    member = state_event(user, room_id, "m.room.member", insider.user_id)
    assert member["membership"] == "join"
    assert member["join_authorised_via_users_server"] == user.user_id
    assert_error(outsider.post(room_path(room_id, "join"), json={}), 403, "M_FORBIDDEN")


@pytest.mark.parametrize("rule", ["restricted", "knock_restricted"])
def test_a_restricted_join_cannot_name_its_own_authoriser(user, new_user, rule):
    space = create_room(user, preset="private_chat")
    room_id = create_room(user, preset="private_chat", room_version="11")
    set_join_rule(user, room_id, rule, allow=[space])
    outsider, insider = new_user(), new_user()
    # Someone in no allowed room names a member who may invite: the server vouches for no one.
    forged = {"membership": "join", "join_authorised_via_users_server": user.user_id}
    resp = outsider.put(room_path(room_id, "state", "m.room.member", outsider.user_id), json=forged)
    assert_error(resp, 403, "M_FORBIDDEN")
    assert room_id not in joined_rooms(outsider)
    # A member of the allowed room may join this way too, but the server picks the authoriser.
    invite(user, space, insider)
    join(insider, space)
    named = {"membership": "join", "join_authorised_via_users_server": insider.user_id}
    assert_ok(insider.put(room_path(room_id, "state", "m.room.member", insider.user_id), json=named))
    member = state_event(user, room_id, "m.room.member", insider.user_id)
    assert member["membership"] == "join"
    assert member["join_authorised_via_users_server"] == user.user_id


def test_kick_ban_unban(user, new_user):
    room_id = create_room(user, preset="public_chat")
    bob, carol = new_user(), new_user()
    join(bob, room_id)
    join(carol, room_id)
    # A member without the kick level may not kick, nor ban.
    assert_error(bob.post(room_path(room_id, "kick"), json={"user_id": carol.user_id}), 403, "M_FORBIDDEN")
    assert_error(bob.post(room_path(room_id, "ban"), json={"user_id": carol.user_id}), 403, "M_FORBIDDEN")
    assert_ok(user.post(room_path(room_id, "kick"), json={"user_id": bob.user_id, "reason": "spam"}))
    kicked = state_event(user, room_id, "m.room.member", bob.user_id)
    assert kicked["membership"] == "leave" and kicked["reason"] == "spam"
    join(bob, room_id)  # a kick is not a ban
    assert_ok(user.post(room_path(room_id, "ban"), json={"user_id": bob.user_id}))
    assert membership(user, room_id, bob) == "ban"
    assert_error(bob.post(room_path(room_id, "join"), json={}), 403, "M_FORBIDDEN")
    assert_error(user.post(room_path(room_id, "kick"), json={"user_id": bob.user_id}), 403, "M_FORBIDDEN")
    assert_error(carol.post(room_path(room_id, "unban"), json={"user_id": bob.user_id}), 403, "M_FORBIDDEN")
    assert_ok(user.post(room_path(room_id, "unban"), json={"user_id": bob.user_id}))
    assert membership(user, room_id, bob) == "leave"
    assert_error(user.post(room_path(room_id, "unban"), json={"user_id": bob.user_id}), 403, "M_FORBIDDEN")
    join(bob, room_id)
    # Nobody can kick the creator of a v12 room: creators outrank every level.
    send_state(user, room_id, "m.room.power_levels",
               {**state_event(user, room_id, "m.room.power_levels"), "users": {bob.user_id: 100}})
    assert_error(bob.post(room_path(room_id, "kick"), json={"user_id": user.user_id}), 403, "M_FORBIDDEN")
    assert_ok(bob.post(room_path(room_id, "kick"), json={"user_id": carol.user_id}))


def test_ban_someone_not_in_the_room_keeps_them_out(user, new_user):
    room_id = create_room(user, preset="public_chat")
    bob = new_user()
    assert_ok(user.post(room_path(room_id, "ban"), json={"user_id": bob.user_id}))
    assert_error(bob.post(room_path(room_id, "join"), json={}), 403, "M_FORBIDDEN")


def test_forget_only_after_leaving(user, new_user):
    room_id = create_room(user, preset="public_chat")
    bob = new_user()
    join(bob, room_id)
    assert_error(bob.post(room_path(room_id, "forget"), json={}), 400, "M_UNKNOWN")
    leave(bob, room_id)
    assert_ok(bob.post(room_path(room_id, "forget"), json={}))
    assert_error(new_user().post(room_path(room_id, "forget"), json={}), 404, "M_NOT_FOUND")
    join(bob, room_id)  # coming back is allowed and un-forgets
    assert room_id in joined_rooms(bob)


def test_leaving_a_room_one_is_not_in(user, new_user):
    room_id = create_room(user)
    assert_error(new_user().post(room_path(room_id, "leave"), json={}), 403, "M_FORBIDDEN")
    assert_error(user.post(room_path("!nope:localhost", "leave"), json={}), 404, "M_NOT_FOUND")


def test_guests_join_only_where_guest_access_allows(user, guest):
    open_room = create_room(user, preset="public_chat")
    send_state(user, open_room, "m.room.guest_access", {"guest_access": "can_join"})
    join(guest, open_room)
    closed = create_room(user, preset="public_chat")  # public_chat forbids guests
    assert_error(guest.post(room_path(closed, "join"), json={}), 403, "M_GUEST_ACCESS_FORBIDDEN")
    assert_error(guest.post(f"{V3}/createRoom", json={}), 403, "M_GUEST_ACCESS_FORBIDDEN")


def test_messages_after_leaving_are_refused(user, new_user):
    room_id = create_room(user, preset="public_chat")
    bob = new_user()
    join(bob, room_id)
    send_message(bob, room_id, "here")
    leave(bob, room_id)
    resp = bob.put(room_path(room_id, "send", "m.room.message", "late"), json={"msgtype": "m.text", "body": "x"})
    assert_error(resp, 403, "M_FORBIDDEN")


def test_revoking_guest_access_removes_the_joined_guests(user, new_guest, new_user):
    room_id = create_room(user, preset="public_chat")
    send_state(user, room_id, "m.room.guest_access", {"guest_access": "can_join"})
    guests = [new_guest(), new_guest()]
    member = new_user()
    for who in [*guests, member]:
        join(who, room_id)
    send_state(user, room_id, "m.room.guest_access", {"guest_access": "forbidden"})
    for guest in guests:
        assert state_event(user, room_id, "m.room.member", guest.user_id)["membership"] == "leave"
        assert_error(guest.post(room_path(room_id, "join"), json={}), 403, "M_GUEST_ACCESS_FORBIDDEN")
    assert state_event(user, room_id, "m.room.member", member.user_id)["membership"] == "join"
