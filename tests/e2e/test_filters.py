"""Filters: uploading and downloading them, the schema checks, and who may see which filter."""

import pytest

from conftest import V3, assert_error, assert_ok, path_quote


def filter_path(user_id, filter_id=None):
    path = f"{V3}/user/{path_quote(user_id)}/filter"
    return path if filter_id is None else f"{path}/{path_quote(filter_id)}"


def upload(user, body):
    return assert_ok(user.post(filter_path(user.user_id), json=body))["filter_id"]


SPEC_EXAMPLE = {
    "room": {
        "state": {"types": ["m.room.*"], "not_rooms": ["!726s6s6q:example.com"]},
        "timeline": {"limit": 10, "types": ["m.room.message"], "not_rooms": ["!726s6s6q:example.com"],
                     "not_senders": ["@spam:example.com"]},
        "ephemeral": {"types": ["m.receipt", "m.typing"], "not_rooms": ["!726s6s6q:example.com"],
                      "not_senders": ["@spam:example.com"]},
    },
    "presence": {"types": ["m.presence"], "not_senders": ["@alice:example.com"]},
    "event_format": "client",
    "event_fields": ["type", "content", "sender"],
}


def test_upload_and_download_the_spec_example(user):
    filter_id = upload(user, SPEC_EXAMPLE)
    assert isinstance(filter_id, str) and not filter_id.startswith("{")
    assert assert_ok(user.get(filter_path(user.user_id, filter_id))) == SPEC_EXAMPLE


def test_ids_count_per_user_from_zero(user, new_user):
    assert upload(user, {}) == "0"
    assert upload(user, {"room": {"timeline": {"limit": 1}}}) == "1"
    assert upload(user, {"room": {"timeline": {"limit": 2}}}) == "2"
    other = new_user()
    assert upload(other, {"room": {"timeline": {"limit": 1}}}) == "0"
    assert assert_ok(user.get(filter_path(user.user_id, "1"))) == {"room": {"timeline": {"limit": 1}}}
    assert assert_ok(other.get(filter_path(other.user_id, "0"))) == {"room": {"timeline": {"limit": 1}}}


def test_an_identical_filter_keeps_its_id(user):
    first = upload(user, {"room": {"state": {"lazy_load_members": True}}})
    upload(user, {"presence": {"types": []}})
    assert upload(user, {"room": {"state": {"lazy_load_members": True}}}) == first


def test_extension_fields_are_kept(user):
    body = {"room": {"timeline": {"limit": 5, "org.matrix.msc3773.unread_thread_notifications": True}},
            "org.example.custom": [1, 2]}
    assert assert_ok(user.get(filter_path(user.user_id, upload(user, body)))) == body


def test_every_field_of_the_schema(user):
    room_event_filter = {
        "limit": 3, "senders": ["@a:example.org"], "not_senders": ["@b:example.org"], "types": ["m.*"],
        "not_types": ["m.room.member"], "rooms": ["!r:example.org"], "not_rooms": ["!s:example.org"],
        "contains_url": False, "lazy_load_members": True, "include_redundant_members": False,
        "unread_thread_notifications": True,
    }
    body = {
        "event_fields": ["content.body", "type"], "event_format": "federation",
        "presence": {"limit": 1, "types": [], "not_types": ["*"], "senders": [], "not_senders": []},
        "account_data": {"types": ["m.push_rules"]},
        "room": {"rooms": ["!r:example.org"], "not_rooms": [], "include_leave": True,
                 "timeline": room_event_filter, "state": room_event_filter, "ephemeral": room_event_filter,
                 "account_data": room_event_filter},
    }
    assert assert_ok(user.get(filter_path(user.user_id, upload(user, body)))) == body


@pytest.mark.parametrize("body", [
    {"event_fields": "type"},
    {"event_fields": [1]},
    {"event_fields": None},
    {"event_format": "xml"},
    {"event_format": 1},
    {"presence": []},
    {"presence": "all"},
    {"presence": None},
    {"presence": {"limit": 0}},
    {"presence": {"limit": -5}},
    {"presence": {"limit": 2.5}},
    {"presence": {"limit": "10"}},
    {"presence": {"limit": 10**30}},
    {"presence": {"senders": ["not-a-user"]}},
    {"presence": {"not_senders": "@a:example.org"}},
    {"account_data": {"types": "m.tag"}},
    {"account_data": {"not_types": [None]}},
    {"room": []},
    {"room": 1},
    {"room": {"rooms": ["#alias:example.org"]}},
    {"room": {"not_rooms": [5]}},
    {"room": {"include_leave": "yes"}},
    {"room": {"timeline": []}},
    {"room": {"timeline": {"limit": -1}}},
    {"room": {"timeline": {"limit": True}}},
    {"room": {"state": {"lazy_load_members": 1}}},
    {"room": {"state": {"include_redundant_members": "true"}}},
    {"room": {"ephemeral": {"rooms": "!r:example.org"}}},
    {"room": {"account_data": {"contains_url": "no"}}},
    {"room": {"account_data": {"senders": [["@a:example.org"]]}}},
    [],
    "filter",
    42,
], ids=repr)
def test_wrong_shapes_are_bad_json(user, body):
    assert_error(user.post(filter_path(user.user_id), json=body), 400, "M_BAD_JSON")


def test_not_json(user):
    resp = user.post(filter_path(user.user_id), content=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "M_NOT_JSON")
    assert_error(user.post(filter_path(user.user_id), content=b""), 400, "M_NOT_JSON")


def test_duplicate_keys_are_bad_json(user):
    resp = user.post(filter_path(user.user_id), content=b'{"room": {"timeline": {"limit": 1, "limit": 2}}}')
    assert_error(resp, 400, "M_BAD_JSON")


def test_a_huge_filter_is_refused(user):
    body = {"room": {"not_rooms": [f"!{i:08}:example.org" for i in range(5000)]}}
    assert_error(user.post(filter_path(user.user_id), json=body), 413, "M_TOO_LARGE")


def test_a_large_limit_is_accepted(user):
    filter_id = upload(user, {"room": {"timeline": {"limit": 2**53}}})
    assert assert_ok(user.get(filter_path(user.user_id, filter_id)))["room"]["timeline"]["limit"] == 2**53


@pytest.mark.parametrize("filter_id", ["999", "01", "-1", "abc", "{}", "0.0", "1e3", "99999999999999999999999999"])
def test_unknown_and_malformed_ids(user, filter_id):
    upload(user, {})
    assert_error(user.get(filter_path(user.user_id, filter_id)), 404, "M_NOT_FOUND")


def test_other_users_filters(user, new_user):
    other = new_user()
    filter_id = upload(other, {"presence": {"types": []}})
    # Through the other user's path: refused whether or not the filter exists.
    assert_error(user.get(filter_path(other.user_id, filter_id)), 403, "M_FORBIDDEN")
    assert_error(user.get(filter_path(other.user_id, "12345")), 403, "M_FORBIDDEN")
    assert_error(user.post(filter_path(other.user_id), json={}), 403, "M_FORBIDDEN")
    # Through one's own path, the other user's filter ID names nothing of one's own.
    assert_error(user.get(filter_path(user.user_id, filter_id)), 404, "M_NOT_FOUND")
    assert_error(user.post(filter_path("@nobody:elsewhere.example"), json={}), 403, "M_FORBIDDEN")


def test_malformed_user_id(user):
    assert_error(user.post(filter_path("not-a-user-id"), json={}), 400, "M_INVALID_PARAM")
    assert_error(user.get(filter_path("not-a-user-id", "0")), 400, "M_INVALID_PARAM")


def test_needs_a_token(client, user):
    assert_error(client.post(filter_path(user.user_id), json={}), 401, "M_MISSING_TOKEN")
    assert_error(client.get(filter_path(user.user_id, "0")), 401, "M_MISSING_TOKEN")


def test_guests_may_use_filters(guest):
    filter_id = upload(guest, {"room": {"timeline": {"limit": 5}}})
    assert assert_ok(guest.get(filter_path(guest.user_id, filter_id))) == {"room": {"timeline": {"limit": 5}}}
