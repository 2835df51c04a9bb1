"""The user directory: `POST /user_directory/search`, with Synapse's default rules (users who
share a room with the searcher, and members of public rooms)."""

from conftest import V3, assert_error, assert_ok, path_quote, unique_name
from rooms import create_room, join, leave, send_state

SEARCH = f"{V3}/user_directory/search"


def search(user, term, **extra):
    return assert_ok(user.post(SEARCH, json={"search_term": term, **extra}))


def set_name(user, name):
    assert_ok(user.put(f"{V3}/profile/{path_quote(user.user_id)}/displayname", json={"displayname": name}))


def found(user, term):
    return [r["user_id"] for r in search(user, term)["results"]]


def test_shared_and_public_rooms_decide_who_is_found(new_user):
    alice, bob, carol, searcher = new_user(), new_user(), new_user(), new_user()
    tag = unique_name("dir")
    for who in (alice, bob, carol):
        set_name(who, f"{tag} {who.localpart}")
    private = create_room(bob, preset="private_chat")
    assert found(searcher, tag) == [], "no room in common, no public room"
    public = create_room(alice, preset="public_chat")
    assert found(searcher, tag) == [alice.user_id], "a public room's member"
    join(searcher, public)
    assert found(searcher, tag) == [alice.user_id]
    # Bob shares a private room with the searcher: found; Carol shares nothing: not found.
    assert_ok(bob.post(f"{V3}/rooms/{path_quote(private)}/invite", json={"user_id": searcher.user_id}))
    join(searcher, private)
    assert sorted(found(searcher, tag)) == sorted([alice.user_id, bob.user_id])
    entry = next(r for r in search(searcher, tag)["results"] if r["user_id"] == bob.user_id)
    assert entry == {"user_id": bob.user_id, "display_name": f"{tag} {bob.localpart}"}
    # By user ID too, case-insensitively; and the directory follows memberships.
    assert found(searcher, bob.localpart.upper()) == [bob.user_id]
    leave(searcher, private)
    assert found(searcher, tag) == [alice.user_id]
    send_state(alice, public, "m.room.join_rules", {"join_rule": "invite"})
    assert found(searcher, tag) == [alice.user_id], "still a shared room"
    leave(searcher, public)
    assert found(searcher, tag) == []


def test_limit_and_bad_requests(new_user):
    searcher = new_user()
    tag = unique_name("lim")
    room_id = create_room(searcher, preset="public_chat")
    for _ in range(3):
        member = new_user()
        set_name(member, f"{tag} member")
        join(member, room_id)
    body = search(searcher, tag, limit=2)
    assert len(body["results"]) == 2 and body["limited"] is True
    body = search(searcher, tag)
    assert len(body["results"]) == 3 and body["limited"] is False
    assert_error(searcher.post(SEARCH, json={}), 400, {"M_BAD_JSON", "M_MISSING_PARAM"})
    assert_error(searcher.post(SEARCH, json={"search_term": 5}), 400, "M_BAD_JSON")
