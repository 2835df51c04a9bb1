"""Send-to-device: what is observable without /sync (status codes, idempotency, validation).
Delivery is tested with /sync."""

import secrets

import pytest

from conftest import V3, assert_error, assert_ok, path_quote


def send_path(event_type="m.test", txn=None):
    return f"{V3}/sendToDevice/{path_quote(event_type)}/{path_quote(txn or secrets.token_hex(8))}"


def test_send_to_a_device(user, new_user):
    other = new_user()
    body = {"messages": {other.user_id: {other.device_id: {"example_content_key": "value"}}}}
    assert assert_ok(user.put(send_path(), json=body)) == {}


def test_send_to_all_devices_and_to_oneself(user, new_user):
    other = new_user()
    other.login()
    body = {"messages": {other.user_id: {"*": {"k": 1}}, user.user_id: {"*": {"k": 2}}}}
    assert assert_ok(user.put(send_path(), json=body)) == {}


def test_star_for_a_user_without_devices(user, new_user):
    other = new_user()
    assert_ok(other.post(f"{V3}/logout/all", json={}))
    assert assert_ok(user.put(send_path(), json={"messages": {other.user_id: {"*": {}}}})) == {}


def test_unknown_users_devices_and_remote_users_are_skipped(user):
    body = {"messages": {
        "@nobody-here:localhost": {"DEV": {}},
        user.user_id: {"NOSUCHDEVICE": {}},
        "@alice:remote.example": {"*": {}, "DEV": {}},
    }}
    assert assert_ok(user.put(send_path(), json=body)) == {}


def test_empty_messages(user):
    assert assert_ok(user.put(send_path(), json={"messages": {}})) == {}
    assert assert_ok(user.put(send_path(), json={"messages": {user.user_id: {}}})) == {}


def test_retries_are_idempotent(user, new_user):
    other = new_user()
    txn = secrets.token_hex(8)
    body = {"messages": {other.user_id: {other.device_id: {"n": 1}}}}
    for _ in range(3):
        assert assert_ok(user.put(send_path(txn=txn), json=body)) == {}
    # The same ID from another device, and another ID from this device, are new transactions.
    second = user.login()
    resp = user.put(send_path(txn=txn), json=body, token=second["access_token"])
    assert assert_ok(resp) == {}


def test_guests_may_send(guest, new_user):
    other = new_user()
    assert assert_ok(guest.put(send_path(), json={"messages": {other.user_id: {"*": {"hi": True}}}})) == {}


@pytest.mark.parametrize("body", [
    {"messages": []},
    {"messages": "x"},
    {"messages": None},
    {"messages": {"@a:localhost": []}},
    {"messages": {"@a:localhost": "x"}},
    {"messages": {"@a:localhost": {"DEV": "content"}}},
    {"messages": {"@a:localhost": {"DEV": []}}},
    {"messages": {"@a:localhost": {"DEV": None}}},
    {"messages": {"@a:localhost": {"*": 5}}},
], ids=repr)
def test_wrong_shapes(user, body):
    assert_error(user.put(send_path(), json=body), 400, "M_BAD_JSON")


def test_missing_messages(user):
    assert_error(user.put(send_path(), json={}), 400, {"M_MISSING_PARAM", "M_BAD_JSON"})


@pytest.mark.parametrize("body", [b"", b"{", b"nope"])
def test_not_json(user, body):
    assert_error(user.put(send_path(), content=body), 400, "M_NOT_JSON")


@pytest.mark.parametrize("key", ["alice", "", "@", "!room:localhost", "#alias:localhost"])
def test_keys_must_be_user_ids(user, key):
    assert_error(user.put(send_path(), json={"messages": {key: {"DEV": {}}}}), 400, "M_INVALID_PARAM")


def test_a_bad_user_id_stores_nothing_and_frees_the_txn(user):
    txn = secrets.token_hex(8)
    assert_error(user.put(send_path(txn=txn), json={"messages": {"alice": {"D": {}}}}), 400, "M_INVALID_PARAM")
    assert assert_ok(user.put(send_path(txn=txn), json={"messages": {user.user_id: {"*": {}}}})) == {}


def test_long_type_and_txn(user):
    assert_ok(user.put(send_path("t" * 255, "x" * 255), json={"messages": {}}))
    assert_error(user.put(send_path("t" * 256), json={"messages": {}}), 400, "M_INVALID_PARAM")
    assert_error(user.put(send_path(txn="x" * 256), json={"messages": {}}), 400, "M_INVALID_PARAM")


def test_many_recipients_in_one_request(user, new_user):
    others = [new_user() for _ in range(3)]
    messages = {o.user_id: {o.device_id: {"i": i}, "*": {"all": i}} for i, o in enumerate(others)}
    messages.update({f"@ghost{i}:localhost": {f"D{i}": {"i": i}} for i in range(500)})
    assert assert_ok(user.put(send_path(), json={"messages": messages})) == {}


def test_large_content_within_the_body_limit(user, new_user):
    other = new_user()
    body = {"messages": {other.user_id: {other.device_id: {"blob": "x" * 500_000}}}}
    assert assert_ok(user.put(send_path(), json=body)) == {}


def test_needs_a_token(client):
    assert_error(client.put(send_path(), json={"messages": {}}), 401, "M_MISSING_TOKEN")


def test_wrong_method(user):
    assert_error(user.post(send_path(), json={"messages": {}}), 405, "M_UNRECOGNIZED")
