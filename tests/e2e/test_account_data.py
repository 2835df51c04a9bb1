"""Account data, global and per room, and room tags (which are the room's m.tag account data)."""

import pytest

from conftest import V3, assert_error, assert_ok, path_quote
from rooms import create_room


def global_path(user_id, kind):
    return f"{V3}/user/{path_quote(user_id)}/account_data/{path_quote(kind)}"


def room_path(user_id, room_id, kind):
    return f"{V3}/user/{path_quote(user_id)}/rooms/{path_quote(room_id)}/account_data/{path_quote(kind)}"


def tags_path(user_id, room_id, tag=None):
    path = f"{V3}/user/{path_quote(user_id)}/rooms/{path_quote(room_id)}/tags"
    return path if tag is None else f"{path}/{path_quote(tag)}"


def tags_of(user, room_id):
    return assert_ok(user.get(tags_path(user.user_id, room_id)))["tags"]


# ---------------------------------------------------------------------------------------------
# Global account data


def test_set_and_get(user):
    content = {"custom_account_data_key": "custom_config_value", "nested": {"list": [1, 2.5, None, True]}}
    assert assert_ok(user.put(global_path(user.user_id, "org.example.config"), json=content)) == {}
    assert assert_ok(user.get(global_path(user.user_id, "org.example.config"))) == content


def test_overwrite_replaces(user):
    path = global_path(user.user_id, "org.example.config")
    assert_ok(user.put(path, json={"a": 1}))
    assert_ok(user.put(path, json={"b": 2}))
    assert assert_ok(user.get(path)) == {"b": 2}
    assert_ok(user.put(path, json={}))
    assert assert_ok(user.get(path)) == {}


def test_unset_is_not_found(user):
    assert_error(user.get(global_path(user.user_id, "org.example.never")), 404, "M_NOT_FOUND")


def test_global_and_room_data_are_separate(user):
    room_id = create_room(user)
    assert_ok(user.put(global_path(user.user_id, "org.example.x"), json={"where": "global"}))
    assert_error(user.get(room_path(user.user_id, room_id, "org.example.x")), 404, "M_NOT_FOUND")
    assert_ok(user.put(room_path(user.user_id, room_id, "org.example.x"), json={"where": "room"}))
    assert assert_ok(user.get(global_path(user.user_id, "org.example.x"))) == {"where": "global"}
    assert assert_ok(user.get(room_path(user.user_id, room_id, "org.example.x"))) == {"where": "room"}


def test_users_do_not_share_data(user, new_user):
    other = new_user()
    assert_ok(user.put(global_path(user.user_id, "org.example.private"), json={"secret": 1}))
    assert_error(other.get(global_path(other.user_id, "org.example.private")), 404, "M_NOT_FOUND")


@pytest.mark.parametrize("kind", ["m.fully_read", "m.push_rules"])
def test_server_managed_types_are_refused(user, kind):
    room_id = create_room(user)
    for path in (global_path(user.user_id, kind), room_path(user.user_id, room_id, kind)):
        resp = user.put(path, json={"event_id": "$x"})
        assert_error(resp, 405, "M_BAD_JSON")
        assert_error(user.get(path), 404, "M_NOT_FOUND")


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42", b"null", b"[{}]"])
def test_body_must_be_an_object(user, body):
    assert_error(user.put(global_path(user.user_id, "org.example.x"), content=body), 400, "M_BAD_JSON")


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b'{"a": 1} trailing'])
def test_body_must_be_json(user, body):
    assert_error(user.put(global_path(user.user_id, "org.example.x"), content=body), 400, "M_NOT_JSON")


def test_content_up_to_64_kib(user):
    path = global_path(user.user_id, "org.example.big")
    assert_ok(user.put(path, json={"k": "x" * (64 * 1024 - 100)}))
    assert_error(user.put(path, json={"k": "x" * (64 * 1024)}), 413, "M_TOO_LARGE")
    assert len(assert_ok(user.get(path))["k"]) == 64 * 1024 - 100


def test_type_length(user):
    assert_ok(user.put(global_path(user.user_id, "t" * 255), json={}))
    assert_error(user.put(global_path(user.user_id, "t" * 256), json={}), 400, "M_INVALID_PARAM")
    assert_error(user.get(global_path(user.user_id, "t" * 256)), 400, "M_INVALID_PARAM")


def test_types_with_odd_characters(user):
    kind = "org.example/slash?and#hash é"
    assert_ok(user.put(global_path(user.user_id, kind), json={"ok": True}))
    assert assert_ok(user.get(global_path(user.user_id, kind))) == {"ok": True}


def test_other_users_paths_are_forbidden(user, new_user):
    other = new_user()
    room_id = create_room(other)
    assert_ok(other.put(global_path(other.user_id, "org.example.x"), json={"a": 1}))
    assert_error(user.get(global_path(other.user_id, "org.example.x")), 403, "M_FORBIDDEN")
    assert_error(user.put(global_path(other.user_id, "org.example.x"), json={"a": 2}), 403, "M_FORBIDDEN")
    assert_error(user.get(room_path(other.user_id, room_id, "org.example.x")), 403, "M_FORBIDDEN")
    assert_error(user.put(room_path(other.user_id, room_id, "org.example.x"), json={}), 403, "M_FORBIDDEN")
    assert_error(user.put(global_path("@someone:elsewhere.example", "org.example.x"), json={}), 403, "M_FORBIDDEN")
    assert assert_ok(other.get(global_path(other.user_id, "org.example.x"))) == {"a": 1}


def test_malformed_user_id(user):
    assert_error(user.get(global_path("alice", "org.example.x")), 400, "M_INVALID_PARAM")
    assert_error(user.put(global_path("alice", "org.example.x"), json={}), 400, "M_INVALID_PARAM")


def test_needs_a_token_and_no_guest(client, user, guest):
    assert_error(client.get(global_path(user.user_id, "org.example.x")), 401, "M_MISSING_TOKEN")
    assert_error(client.put(global_path(user.user_id, "org.example.x"), json={}), 401, "M_MISSING_TOKEN")
    assert_error(guest.put(global_path(guest.user_id, "org.example.x"), json={}), 403, "M_GUEST_ACCESS_FORBIDDEN")


# ---------------------------------------------------------------------------------------------
# Room account data


@pytest.mark.parametrize("room_id", ["not-a-room", "#alias:localhost", "@user:localhost", "!"])
def test_malformed_room_ids(user, room_id):
    assert_error(user.get(room_path(user.user_id, room_id, "org.example.x")), 400, "M_INVALID_PARAM")
    assert_error(user.put(room_path(user.user_id, room_id, "org.example.x"), json={}), 400, "M_INVALID_PARAM")
    assert_error(user.get(tags_path(user.user_id, room_id)), 400, "M_INVALID_PARAM")
    assert_error(user.put(tags_path(user.user_id, room_id, "u.x"), json={}), 400, "M_INVALID_PARAM")
    assert_error(user.delete(tags_path(user.user_id, room_id, "u.x")), 400, "M_INVALID_PARAM")


def test_rooms_need_no_membership(user):
    # Data about a room the user is not in (or that this server does not know) is the user's own.
    room_id = "!unknownroom:localhost"
    assert_error(user.get(room_path(user.user_id, room_id, "org.example.x")), 404, "M_NOT_FOUND")
    assert_ok(user.put(room_path(user.user_id, room_id, "org.example.x"), json={"note": "later"}))
    assert assert_ok(user.get(room_path(user.user_id, room_id, "org.example.x"))) == {"note": "later"}


def test_room_body_checks(user):
    room_id = create_room(user)
    path = room_path(user.user_id, room_id, "org.example.x")
    assert_error(user.put(path, content=b"[]"), 400, "M_BAD_JSON")
    assert_error(user.put(path, content=b"{"), 400, "M_NOT_JSON")
    assert_error(user.put(path, json={"k": "x" * (64 * 1024)}), 413, "M_TOO_LARGE")
    assert_error(user.get(path), 404, "M_NOT_FOUND")


# ---------------------------------------------------------------------------------------------
# Tags


def test_no_tags(user):
    assert tags_of(user, create_room(user)) == {}


def test_add_read_and_remove_tags(user):
    room_id = create_room(user)
    assert assert_ok(user.put(tags_path(user.user_id, room_id, "m.favourite"), json={"order": 0.1})) == {}
    assert_ok(user.put(tags_path(user.user_id, room_id, "u.Work"), json={"order": 0.7}))
    assert_ok(user.put(tags_path(user.user_id, room_id, "u.Customers"), json={}))
    assert tags_of(user, room_id) == {"m.favourite": {"order": 0.1}, "u.Work": {"order": 0.7}, "u.Customers": {}}
    assert assert_ok(user.delete(tags_path(user.user_id, room_id, "u.Work"))) == {}
    assert tags_of(user, room_id) == {"m.favourite": {"order": 0.1}, "u.Customers": {}}
    # The tags are the room's m.tag account data.
    assert assert_ok(user.get(room_path(user.user_id, room_id, "m.tag"))) == {
        "tags": {"m.favourite": {"order": 0.1}, "u.Customers": {}}}


def test_retagging_replaces_the_order(user):
    room_id = create_room(user)
    assert_ok(user.put(tags_path(user.user_id, room_id, "u.x"), json={"order": 0.5}))
    assert_ok(user.put(tags_path(user.user_id, room_id, "u.x"), json={"order": 1}))
    assert tags_of(user, room_id) == {"u.x": {"order": 1}}
    assert_ok(user.put(tags_path(user.user_id, room_id, "u.x"), json={}))
    assert tags_of(user, room_id) == {"u.x": {}}


def test_deleting_an_absent_tag(user):
    room_id = create_room(user)
    assert assert_ok(user.delete(tags_path(user.user_id, room_id, "u.never"))) == {}
    assert tags_of(user, room_id) == {}
    assert_error(user.get(room_path(user.user_id, room_id, "m.tag")), 404, "M_NOT_FOUND")


def test_tags_are_per_room_and_per_user(user, new_user):
    a, b = create_room(user), create_room(user)
    assert_ok(user.put(tags_path(user.user_id, a, "u.a"), json={}))
    assert tags_of(user, b) == {}
    other = new_user()
    assert tags_of(other, a) == {}


def test_tags_set_through_account_data(user):
    room_id = create_room(user)
    assert_ok(user.put(room_path(user.user_id, room_id, "m.tag"), json={"tags": {"u.z": {"order": 0.2}}, "x": 1}))
    assert tags_of(user, room_id) == {"u.z": {"order": 0.2}}
    assert_ok(user.put(tags_path(user.user_id, room_id, "u.y"), json={}))
    assert assert_ok(user.get(room_path(user.user_id, room_id, "m.tag"))) == {
        "tags": {"u.z": {"order": 0.2}, "u.y": {}}, "x": 1}
    # A malformed m.tag reads as no tags, and a new tag replaces it.
    assert_ok(user.put(room_path(user.user_id, room_id, "m.tag"), json={"tags": ["u.a"]}))
    assert tags_of(user, room_id) == {}
    assert_ok(user.put(tags_path(user.user_id, room_id, "u.b"), json={}))
    assert tags_of(user, room_id) == {"u.b": {}}


@pytest.mark.parametrize("body", [{"order": -0.5}, {"order": 1.01}, {"order": "0.5"}, {"order": None},
                                  {"order": [0.5]}, {"order": 2**70}])
def test_bad_orders(user, body):
    room_id = create_room(user)
    assert_error(user.put(tags_path(user.user_id, room_id, "u.x"), json=body), 400, "M_BAD_JSON")
    assert tags_of(user, room_id) == {}


@pytest.mark.parametrize("body", [b"[]", b'"u.x"', b"0.5"])
def test_tag_body_must_be_an_object(user, body):
    room_id = create_room(user)
    assert_error(user.put(tags_path(user.user_id, room_id, "u.x"), content=body), 400, "M_BAD_JSON")


def test_tag_name_length(user):
    room_id = create_room(user)
    assert_ok(user.put(tags_path(user.user_id, room_id, "u." + "é" * 126), json={}))
    assert_error(user.put(tags_path(user.user_id, room_id, "u." + "é" * 127), json={}), 400, "M_INVALID_PARAM")
    assert_error(user.delete(tags_path(user.user_id, room_id, "u." + "é" * 127)), 400, "M_INVALID_PARAM")
    assert list(tags_of(user, room_id)) == ["u." + "é" * 126]


def test_tag_names_with_odd_characters(user):
    room_id = create_room(user)
    for tag in ['u."quoted"', "u.a.b", "u.$[0]", "Work / Home"]:
        assert_ok(user.put(tags_path(user.user_id, room_id, tag), json={"order": 0.3}))
    assert set(tags_of(user, room_id)) == {'u."quoted"', "u.a.b", "u.$[0]", "Work / Home"}


def test_tags_of_other_users_are_forbidden(user, new_user):
    other = new_user()
    room_id = create_room(other)
    assert_ok(other.put(tags_path(other.user_id, room_id, "u.mine"), json={}))
    assert_error(user.get(tags_path(other.user_id, room_id)), 403, "M_FORBIDDEN")
    assert_error(user.put(tags_path(other.user_id, room_id, "u.x"), json={}), 403, "M_FORBIDDEN")
    assert_error(user.delete(tags_path(other.user_id, room_id, "u.mine")), 403, "M_FORBIDDEN")
    assert tags_of(other, room_id) == {"u.mine": {}}


def test_tags_need_a_token_and_no_guest(client, user, guest):
    room_id = create_room(user)
    assert_error(client.get(tags_path(user.user_id, room_id)), 401, "M_MISSING_TOKEN")
    assert_error(guest.put(tags_path(guest.user_id, room_id, "u.x"), json={}), 403, "M_GUEST_ACCESS_FORBIDDEN")


def test_concurrent_tags_all_land(user):
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    room_id = create_room(user)
    tags = [f"u.t{i}" for i in range(8)]

    def put(tag):
        with httpx.Client(base_url=str(user.client.base_url), timeout=30,
                          headers={"Authorization": f"Bearer {user.access_token}"}) as c:
            return c.put(tags_path(user.user_id, room_id, tag), json={}).status_code

    with ThreadPoolExecutor(len(tags)) as pool:
        assert list(pool.map(put, tags)) == [200] * len(tags)
    assert set(tags_of(user, room_id)) == set(tags)
