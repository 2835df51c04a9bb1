"""Send-to-device: what is observable without /sync (status codes, idempotency, validation).
Delivery is tested with /sync."""

import json
import secrets

import pytest

from conftest import V3, User, assert_error, assert_ok, path_quote, register, unique_name


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


# Synapse's bound: a message must fit alone in an EDU, as it would travel over federation.
MAX_EDU_BYTES = 65536


def edu_bytes(sender: str, event_type: str, user_id: str, device_id: str, content: dict) -> int:
    """The size of the m.direct_to_device EDU (with Synapse's 16-character message ID) that would
    carry one message to one device."""
    edu = {"content": {"message_id": "x" * 16, "messages": {user_id: {device_id: content}}, "sender": sender,
                       "type": event_type}, "edu_type": "m.direct_to_device"}
    return len(json.dumps(edu, separators=(",", ":"), ensure_ascii=False).encode())


@pytest.mark.parametrize("device", ["own", "*"])
def test_a_message_must_fit_in_an_edu(user, new_user, device):
    other = new_user()
    device_id = other.device_id if device == "own" else "*"
    padding = MAX_EDU_BYTES - edu_bytes(user.user_id, "m.test", other.user_id, device_id, {"blob": ""})
    largest = {"blob": "x" * padding}
    assert edu_bytes(user.user_id, "m.test", other.user_id, device_id, largest) == MAX_EDU_BYTES
    assert assert_ok(user.put(send_path(), json={"messages": {other.user_id: {device_id: largest}}})) == {}
    too_large = {"blob": "x" * (padding + 1)}
    resp = user.put(send_path(), json={"messages": {other.user_id: {device_id: too_large}}})
    assert_error(resp, 413, "M_TOO_LARGE")
    # Many messages that each fit may share a request.
    fitting = {"blob": "x" * (padding - 100)}
    many = {o.user_id: {o.device_id: fitting} for o in [other, user]}
    assert assert_ok(user.put(send_path(), json={"messages": many})) == {}


def test_a_sender_is_rate_limited(new_client, to_device_limited_url):
    """On a server that lets a sender send 3 requests in a burst."""
    def account():
        client = new_client(to_device_limited_url)
        body = register(client, unique_name())
        return User(client, body["user_id"], body["access_token"], body["device_id"])
    sender, other = account(), account()
    body = {"messages": {other.user_id: {"*": {"n": 1}}}}
    for _ in range(3):
        assert_ok(sender.put(send_path(), json=body))
    limited = assert_error(sender.put(send_path(), json=body), 429, "M_LIMIT_EXCEEDED")
    assert limited["retry_after_ms"] > 0
    assert_ok(other.put(send_path(), json={"messages": {sender.user_id: {"*": {}}}}))


def test_needs_a_token(client):
    assert_error(client.put(send_path(), json={"messages": {}}), 401, "M_MISSING_TOKEN")


def test_wrong_method(user):
    assert_error(user.post(send_path(), json={"messages": {}}), 405, "M_UNRECOGNIZED")
