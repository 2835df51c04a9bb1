"""The published room directory: `GET`/`POST /publicRooms` and `GET`/`PUT /directory/list/room/{roomId}`."""

import secrets

import pytest

from conftest import V3, assert_error, assert_ok, path_quote, unique_name
from rooms import create_room, join, room_path, send_state, state_event

PUBLIC_ROOMS = f"{V3}/publicRooms"


def visibility_path(room_id: str) -> str:
    return f"{V3}/directory/list/room/{path_quote(room_id)}"


def visibility(client, room_id) -> str:
    return assert_ok(client.get(visibility_path(room_id)))["visibility"]


def set_visibility(user, room_id, value):
    return user.put(visibility_path(room_id), json={"visibility": value})


def search(user, term: str, **body) -> list[dict]:
    """Every page of a filtered search, walked to the end."""
    chunk, since = [], None
    for _ in range(100):
        request = {"filter": {"generic_search_term": term}, **body}
        if since:
            request["since"] = since
        page = assert_ok(user.post(PUBLIC_ROOMS, json=request))
        chunk += page["chunk"]
        since = page.get("next_batch")
        if not since:
            return chunk
    pytest.fail("the directory did not end")


def walk_get(client, limit: int, since: str | None = None, key: str = "next_batch") -> list[dict]:
    """Pages of GET /publicRooms from `since`, following `key`; returns the pages."""
    pages = []
    for _ in range(1000):
        params = {"limit": limit}
        if since:
            params["since"] = since
        page = assert_ok(client.get(PUBLIC_ROOMS, params=params))
        assert len(page["chunk"]) <= limit, page
        pages.append(page)
        since = page.get(key)
        if not since:
            return pages
    pytest.fail("the directory did not end")


def ids(chunk) -> list[str]:
    return [r["room_id"] for r in chunk]


# ---------------------------------------------------------------------------------------------
# Visibility


def test_visibility_follows_create_room_and_needs_no_token(user, client):
    private = create_room(user)
    public = create_room(user, visibility="public")
    assert visibility(client, private) == "private"
    assert visibility(client, public) == "public"


def test_visibility_unknown_and_malformed_rooms(client):
    assert_error(client.get(visibility_path("!unknown:localhost")), 404, "M_NOT_FOUND")
    assert_error(client.get(visibility_path("not-a-room")), 400, "M_INVALID_PARAM")


def test_toggle_visibility_lists_and_unlists(user, client):
    name = unique_name("toggle")
    room_id = create_room(user, preset="public_chat", name=name)
    assert search(user, name) == []
    assert assert_ok(set_visibility(user, room_id, "public")) == {}
    assert visibility(client, room_id) == "public"
    assert ids(search(user, name)) == [room_id]
    assert_ok(set_visibility(user, room_id, "private"))
    assert visibility(client, room_id) == "private"
    assert search(user, name) == []
    # Visibility defaults to public; setting it twice is fine.
    assert_ok(user.put(visibility_path(room_id), json={}))
    assert_ok(user.put(visibility_path(room_id), json={}))
    assert visibility(client, room_id) == "public"


def test_who_may_change_visibility(user, new_user, client):
    room_id = create_room(user, preset="public_chat")
    member, stranger = new_user(), new_user()
    join(member, room_id)
    assert_error(set_visibility(stranger, room_id, "public"), 403, "M_FORBIDDEN")
    assert_error(set_visibility(member, room_id, "public"), 403, "M_FORBIDDEN")
    assert visibility(client, room_id) == "private"
    # The level of m.room.canonical_alias (50) is what it takes.
    power = state_event(user, room_id, "m.room.power_levels")
    power["users"][member.user_id] = 50
    send_state(user, room_id, "m.room.power_levels", power)
    assert_ok(set_visibility(member, room_id, "public"))
    assert visibility(client, room_id) == "public"


def test_the_room_creator_may_change_visibility_while_in_the_room(user, client):
    room_id = create_room(user, room_version="11")
    # The creator steps down to level 0, below m.room.canonical_alias ...
    power = state_event(user, room_id, "m.room.power_levels")
    power["users"][user.user_id] = 0
    send_state(user, room_id, "m.room.power_levels", power)
    # ... and still may publish the room (Synapse lets only moderators; the spec suggests the creator).
    assert_ok(set_visibility(user, room_id, "public"))
    assert visibility(client, room_id) == "public"
    assert_ok(user.post(room_path(room_id, "leave"), json={}))
    assert_error(set_visibility(user, room_id, "private"), 403, "M_FORBIDDEN")
    assert visibility(client, room_id) == "public"


def test_set_visibility_bad_requests(user, client):
    room_id = create_room(user)
    assert_error(set_visibility(user, room_id, "secret"), 400, "M_BAD_JSON")
    assert_error(set_visibility(user, room_id, 1), 400, "M_BAD_JSON")
    assert_error(user.put(visibility_path(room_id), content=b"nope"), 400, "M_NOT_JSON")
    assert_error(set_visibility(user, "!unknown:localhost", "public"), 404, "M_NOT_FOUND")
    assert_error(set_visibility(user, "not-a-room", "public"), 400, "M_INVALID_PARAM")
    assert_error(client.put(visibility_path(room_id), json={"visibility": "public"}), 401, "M_MISSING_TOKEN")
    assert visibility(client, room_id) == "private"


# ---------------------------------------------------------------------------------------------
# What a directory entry shows


def test_entry_fields(user, new_user, client):
    name = unique_name("Entry")
    alias_name = unique_name("entry")
    room_id = create_room(user, visibility="public", name=name, topic="Everything about entries",
                          room_alias_name=alias_name)
    send_state(user, room_id, "m.room.avatar", {"url": "mxc://localhost/avatar"})
    join(new_user(), room_id)
    [entry] = search(user, name)
    assert entry == {
        "room_id": room_id,
        "name": name,
        "topic": "Everything about entries",
        "canonical_alias": f"#{alias_name}:localhost",
        "avatar_url": "mxc://localhost/avatar",
        "num_joined_members": 2,
        "world_readable": False,
        "guest_can_join": False,
        "join_rule": "public",
    }
    send_state(user, room_id, "m.room.history_visibility", {"history_visibility": "world_readable"})
    send_state(user, room_id, "m.room.guest_access", {"guest_access": "can_join"})
    send_state(user, room_id, "m.room.join_rules", {"join_rule": "knock"})
    [entry] = search(user, name)
    assert (entry["world_readable"], entry["guest_can_join"], entry["join_rule"]) == (True, True, "knock")
    # The unauthenticated GET lists the same entry.
    listed = [r for page in walk_get(client, 100) for r in page["chunk"] if r["room_id"] == room_id]
    assert listed == [entry]


def test_topic_from_the_plain_text_content_block(user):
    name = unique_name("mtopic")
    room_id = create_room(user, visibility="public", name=name)
    send_state(user, room_id, "m.room.topic", {"topic": "", "m.topic": {"m.text": [
        {"mimetype": "text/html", "body": "<b>bold</b>"}, {"body": "plain words"}]}})
    [entry] = search(user, name)
    assert entry["topic"] == "plain words"


def test_redacted_name_is_not_shown(user):
    name = unique_name("redact")
    room_id = create_room(user, visibility="public", topic=f"topic of {name}")
    event_id = send_state(user, room_id, "m.room.name", {"name": name})
    assert search(user, name)[0]["name"] == name
    assert_ok(user.put(room_path(room_id, "redact", event_id, secrets.token_hex(4)), json={}))
    [entry] = search(user, name)
    assert "name" not in entry
    assert entry["topic"] == f"topic of {name}"


def test_room_type(user):
    tag = unique_name("typed")
    space = create_room(user, visibility="public", name=f"{tag} space", creation_content={"type": "m.space"})
    plain = create_room(user, visibility="public", name=f"{tag} plain")
    entries = {r["room_id"]: r for r in search(user, tag)}
    assert set(entries) == {space, plain}
    assert entries[space]["room_type"] == "m.space"
    assert "room_type" not in entries[plain]
    assert ids(search(user, tag, **{"filter": {"generic_search_term": tag, "room_types": ["m.space"]}})) == [space]
    assert ids(search(user, tag, **{"filter": {"generic_search_term": tag, "room_types": [None]}})) == [plain]
    both = search(user, tag, **{"filter": {"generic_search_term": tag, "room_types": [None, "m.space"]}})
    assert set(ids(both)) == {space, plain}


# ---------------------------------------------------------------------------------------------
# Search


def test_search_matches_name_topic_and_alias_without_case(user):
    tag = unique_name("Srch").upper()
    by_name = create_room(user, visibility="public", name=f"Name {tag}")
    by_topic = create_room(user, visibility="public", topic=f"a topic mentioning {tag.lower()}")
    alias_name = f"{tag.lower()}-alias"
    by_alias = create_room(user, visibility="public", room_alias_name=alias_name)
    unlisted = create_room(user, name=f"Name {tag}")
    found = set(ids(search(user, tag.lower())))
    assert found == {by_name, by_topic, by_alias}
    assert unlisted not in found
    assert set(ids(search(user, tag))) == found
    assert ids(search(user, f"#{alias_name}:LOCALHOST")) == [by_alias]
    assert search(user, unique_name("absent")) == []


def test_search_is_unicode_case_insensitive(user):
    tag = unique_name("uni")
    room_id = create_room(user, visibility="public", name=f"ÉTÉ {tag}")
    assert ids(search(user, f"été {tag}")) == [room_id]


def test_blank_search_term_filters_nothing(user):
    page = assert_ok(user.post(PUBLIC_ROOMS, json={"filter": {"generic_search_term": "  "}, "limit": 1}))
    unfiltered = assert_ok(user.post(PUBLIC_ROOMS, json={"limit": 1}))
    assert ids(page["chunk"]) == ids(unfiltered["chunk"])


# ---------------------------------------------------------------------------------------------
# Pagination


def test_filtered_pagination_forward_and_back(user):
    tag = unique_name("page")
    rooms = sorted(create_room(user, visibility="public", name=f"{tag} {i}") for i in range(5))
    body = {"filter": {"generic_search_term": tag}, "limit": 2}
    first = assert_ok(user.post(PUBLIC_ROOMS, json=body))
    assert ids(first["chunk"]) == rooms[:2]
    assert "prev_batch" not in first
    assert first["total_room_count_estimate"] >= 5
    second = assert_ok(user.post(PUBLIC_ROOMS, json={**body, "since": first["next_batch"]}))
    assert ids(second["chunk"]) == rooms[2:4]
    third = assert_ok(user.post(PUBLIC_ROOMS, json={**body, "since": second["next_batch"]}))
    assert ids(third["chunk"]) == rooms[4:]
    assert "next_batch" not in third
    # Backward from the last page.
    back = assert_ok(user.post(PUBLIC_ROOMS, json={**body, "since": third["prev_batch"]}))
    assert ids(back["chunk"]) == rooms[2:4]
    back = assert_ok(user.post(PUBLIC_ROOMS, json={**body, "since": back["prev_batch"]}))
    assert ids(back["chunk"]) == rooms[:2]
    assert "prev_batch" not in back
    assert ids(assert_ok(user.post(PUBLIC_ROOMS, json={**body, "since": back["next_batch"]}))["chunk"]) == rooms[2:4]


def test_get_pagination_walks_the_whole_directory_both_ways(user, client):
    tag = unique_name("walk")
    mine = {create_room(user, visibility="public", name=f"{tag} {i}") for i in range(3)}
    pages = walk_get(client, 3)
    forward = [r for page in pages for r in ids(page["chunk"])]
    assert len(forward) == len(set(forward)), "no room twice"
    assert forward == sorted(forward), "a stable order"
    assert mine <= set(forward)
    assert "prev_batch" not in pages[0]
    assert all("next_batch" in page for page in pages[:-1])
    total = pages[0]["total_room_count_estimate"]
    assert total == len(forward)
    if len(pages) > 1:
        backward_pages = walk_get(client, 3, pages[-1]["prev_batch"], key="prev_batch")
        backward = [r for page in reversed(backward_pages) for r in ids(page["chunk"])]
        assert backward == forward[: len(backward)]
        assert backward + ids(pages[-1]["chunk"]) == forward


def test_limit_zero_or_absent_means_no_limit(user, client):
    create_room(user, visibility="public")
    everything = assert_ok(client.get(PUBLIC_ROOMS))
    assert len(everything["chunk"]) == everything["total_room_count_estimate"] or "next_batch" in everything
    assert ids(assert_ok(client.get(PUBLIC_ROOMS, params={"limit": 0}))["chunk"]) == ids(everything["chunk"])
    one = assert_ok(client.get(PUBLIC_ROOMS, params={"limit": 1}))
    assert ids(one["chunk"]) == ids(everything["chunk"])[:1]


# ---------------------------------------------------------------------------------------------
# Parameters


def test_server_parameter(user, client):
    assert_ok(client.get(PUBLIC_ROOMS, params={"server": "localhost", "limit": 1}))
    assert_ok(user.post(PUBLIC_ROOMS, params={"server": "localhost"}, json={"limit": 1}))
    # This server does not federate: another server's directory is out of reach, as Synapse says
    # when federation with a server is not allowed.
    assert_error(client.get(PUBLIC_ROOMS, params={"server": "elsewhere.example"}), 403, "M_FORBIDDEN")
    assert_error(user.post(PUBLIC_ROOMS, params={"server": "elsewhere.example"}, json={}), 403, "M_FORBIDDEN")
    assert_error(client.get(PUBLIC_ROOMS, params={"server": "not a server!"}), 400, "M_INVALID_PARAM")


@pytest.mark.parametrize("params", [{"limit": "-1"}, {"limit": "ten"}, {"limit": "1.5"}, {"since": "garbage"},
                                    {"since": "n"}, {"since": "xnot-a-room"}])
def test_bad_get_parameters(client, params):
    assert_error(client.get(PUBLIC_ROOMS, params=params), 400, "M_INVALID_PARAM")


@pytest.mark.parametrize("body,errcode", [
    ({"limit": "ten"}, "M_BAD_JSON"),
    ({"limit": -1}, "M_BAD_JSON"),
    ({"since": 5}, "M_BAD_JSON"),
    ({"since": "garbage"}, "M_INVALID_PARAM"),
    ({"filter": "x"}, "M_BAD_JSON"),
    ({"filter": {"generic_search_term": 5}}, "M_BAD_JSON"),
    ({"filter": {"room_types": "m.space"}}, "M_BAD_JSON"),
    ({"include_all_networks": True, "third_party_instance_id": "irc"}, "M_INVALID_PARAM"),
])
def test_bad_post_bodies(user, body, errcode):
    assert_error(user.post(PUBLIC_ROOMS, json=body), 400, errcode)


def test_post_needs_a_token_and_a_body(client, user):
    assert_error(client.post(PUBLIC_ROOMS, json={}), 401, "M_MISSING_TOKEN")
    assert_error(user.post(PUBLIC_ROOMS, content=b""), 400, "M_NOT_JSON")


def test_networks(user):
    tag = unique_name("net")
    room_id = create_room(user, visibility="public", name=tag)
    everything = {"filter": {"generic_search_term": tag}, "include_all_networks": True}
    assert ids(assert_ok(user.post(PUBLIC_ROOMS, json=everything))["chunk"]) == [room_id]
    # No application service bridges a third-party network here, so a network lists nothing.
    network = assert_ok(user.post(PUBLIC_ROOMS, json={"third_party_instance_id": "irc-libera"}))
    assert network["chunk"] == []
