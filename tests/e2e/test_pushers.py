"""Pushers: `GET /pushers` and `POST /pushers/set` (setting, updating, deleting, `append`, every
refusal), pushers going with their device, and delivery to a real push gateway on 127.0.0.1:
both formats, rejected pushkeys, a gateway that is down, and counts-only badge updates."""

from __future__ import annotations

import time

import pytest

from conftest import V3, assert_error, assert_ok, path_quote
from push_gateway import NOTIFY_PATH
from rooms import create_room, invite, join, room_path, send_message

PUSHERS = f"{V3}/pushers"
SET = f"{V3}/pushers/set"
GATEWAY_URL = f"https://push.example.org{NOTIFY_PATH}"


def pusher_body(pushkey="key-1", app_id="org.example.app", url=GATEWAY_URL, **fields):
    body = {
        "kind": "http",
        "app_id": app_id,
        "pushkey": pushkey,
        "app_display_name": "Example",
        "device_display_name": "Phone",
        "lang": "en",
        "data": {"url": url},
    }
    body.update(fields)
    return body


def set_pusher(user, token=None, **fields):
    return assert_ok(user.post(SET, token=token, json=pusher_body(**fields)))


def pushers(user, token=None):
    return assert_ok(user.get(PUSHERS, token=token))["pushers"]


def pushkeys(user, token=None):
    return sorted(p["pushkey"] for p in pushers(user, token))


# ---------------------------------------------------------------------------------------------
# Setting, listing, updating and deleting


def test_a_new_user_has_no_pushers(user):
    assert pushers(user) == []


def test_set_and_list(user):
    body = pusher_body(profile_tag="tag", data={"url": GATEWAY_URL, "format": "event_id_only", "custom": [1]})
    assert assert_ok(user.post(SET, json=body)) == {}
    assert pushers(user) == [{
        "pushkey": "key-1",
        "kind": "http",
        "app_id": "org.example.app",
        "app_display_name": "Example",
        "device_display_name": "Phone",
        "profile_tag": "tag",
        "lang": "en",
        "data": {"url": GATEWAY_URL, "format": "event_id_only", "custom": [1]},
    }]


def test_setting_the_same_app_id_and_pushkey_again_updates_it(user):
    set_pusher(user)
    set_pusher(user, device_display_name="Tablet", lang="de", data={"url": GATEWAY_URL, "format": "event_id_only"})
    [pusher] = pushers(user)
    assert pusher["device_display_name"] == "Tablet"
    assert pusher["lang"] == "de"
    assert pusher["data"] == {"url": GATEWAY_URL, "format": "event_id_only"}
    assert "profile_tag" not in pusher


def test_app_id_and_pushkey_together_name_a_pusher(user):
    set_pusher(user, pushkey="a")
    set_pusher(user, pushkey="b")
    set_pusher(user, pushkey="a", app_id="org.example.other")
    assert sorted((p["app_id"], p["pushkey"]) for p in pushers(user)) == [
        ("org.example.app", "a"), ("org.example.app", "b"), ("org.example.other", "a")]


def test_kind_null_deletes_the_pusher(user):
    set_pusher(user, pushkey="a")
    set_pusher(user, pushkey="b")
    assert assert_ok(user.post(SET, json={"kind": None, "app_id": "org.example.app", "pushkey": "a"})) == {}
    assert pushkeys(user) == ["b"]
    # Deleting what is not there is no error.
    assert_ok(user.post(SET, json={"kind": None, "app_id": "org.example.app", "pushkey": "a"}))
    assert pushkeys(user) == ["b"]


def test_pushers_are_per_user(user, new_user):
    other = new_user()
    set_pusher(user, pushkey="mine")
    assert pushers(other) == []
    # Another user's deletion does not reach this user's pusher.
    assert_ok(other.post(SET, json={"kind": None, "app_id": "org.example.app", "pushkey": "mine"}))
    assert pushkeys(user) == ["mine"]


def test_without_append_other_users_lose_the_pushkey(new_user):
    first, second = new_user(), new_user()
    set_pusher(first, pushkey="shared")
    set_pusher(first, pushkey="other")
    set_pusher(second, pushkey="shared")
    assert pushkeys(first) == ["other"]
    assert pushkeys(second) == ["shared"]
    # `append: false` said outright does the same.
    set_pusher(first, pushkey="shared", append=False)
    assert pushkeys(first) == ["other", "shared"]
    assert pushkeys(second) == []


def test_with_append_other_users_keep_the_pushkey(new_user):
    first, second = new_user(), new_user()
    set_pusher(first, pushkey="shared")
    set_pusher(second, pushkey="shared", append=True)
    assert pushkeys(first) == ["shared"]
    assert pushkeys(second) == ["shared"]


def test_limits_are_inclusive(user):
    set_pusher(user, app_id="a" * 64, pushkey="k" * 512)
    set_pusher(user, app_id="é" * 64, pushkey="é" * 256)
    assert len(pushers(user)) == 2


def test_gateway_urls_on_plain_http_and_any_host_are_accepted(user):
    set_pusher(user, pushkey="local", url=f"http://127.0.0.1:1{NOTIFY_PATH}")
    set_pusher(user, pushkey="query", url=f"https://push.example.org:8443{NOTIFY_PATH}?x=1")
    assert pushkeys(user) == ["local", "query"]


def test_guests_have_no_pushers(guest):
    assert_error(guest.get(PUSHERS), 403, "M_GUEST_ACCESS_FORBIDDEN")
    assert_error(guest.post(SET, json=pusher_body()), 403, "M_GUEST_ACCESS_FORBIDDEN")


def test_token_required(client):
    assert_error(client.get(PUSHERS), 401, "M_MISSING_TOKEN")
    assert_error(client.post(SET, json=pusher_body()), 401, "M_MISSING_TOKEN")


# ---------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize("field", ["kind", "app_id", "pushkey", "app_display_name", "device_display_name",
                                   "lang", "data"])
def test_each_required_field_is_required(user, field):
    body = pusher_body()
    del body[field]
    error = assert_error(user.post(SET, json=body), 400, "M_MISSING_PARAM")["error"]
    assert field in error
    assert pushers(user) == []


def test_every_missing_field_is_named(user):
    body = pusher_body()
    del body["lang"], body["data"]
    error = assert_error(user.post(SET, json=body), 400, "M_MISSING_PARAM")["error"]
    assert "lang" in error and "data" in error


@pytest.mark.parametrize("field", ["app_id", "pushkey"])
def test_deleting_needs_app_id_and_pushkey(user, field):
    body = {"kind": None, "app_id": "org.example.app", "pushkey": "key-1"}
    del body[field]
    assert field in assert_error(user.post(SET, json=body), 400, "M_MISSING_PARAM")["error"]


def test_email_pushers_are_refused(user):
    body = pusher_body(kind="email", app_id="m.email", pushkey="alice@example.org", data={})
    assert "email" in assert_error(user.post(SET, json=body), 400, "M_INVALID_PARAM")["error"]
    assert pushers(user) == []


def test_unknown_kinds_are_refused(user):
    assert "kind" in assert_error(user.post(SET, json=pusher_body(kind="carrier-pigeon")), 400,
                                  "M_INVALID_PARAM")["error"]
    assert "kind" in assert_error(user.post(SET, json=pusher_body(kind=7)), 400, "M_BAD_JSON")["error"]
    assert pushers(user) == []


@pytest.mark.parametrize("field, value, limit", [
    ("app_id", "a" * 65, "64"),
    ("app_id", "é" * 65, "64"),
    ("pushkey", "k" * 513, "512"),
    ("pushkey", "é" * 257, "512"),
    ("app_id", "", "64"),
    ("pushkey", "", "512"),
])
def test_over_long_or_empty_keys_are_refused(user, field, value, limit):
    error = assert_error(user.post(SET, json=pusher_body(**{field: value})), 400, "M_INVALID_PARAM")["error"]
    assert field in error and limit in error
    assert pushers(user) == []


def test_an_http_pusher_needs_a_url(user):
    error = assert_error(user.post(SET, json=pusher_body(data={"format": "event_id_only"})), 400,
                         "M_MISSING_PARAM")["error"]
    assert "data.url" in error


@pytest.mark.parametrize("url", [
    "https://push.example.org/_matrix/push/v1/notify/",
    "https://push.example.org/_matrix/push/v1/notifyx",
    "https://push.example.org/other/_matrix/push/v1/notify",
    "https://push.example.org",
    "ftp://push.example.org/_matrix/push/v1/notify",
    "/_matrix/push/v1/notify",
    "not a url",
])
def test_the_url_path_must_be_the_notify_endpoint(user, url):
    error = assert_error(user.post(SET, json=pusher_body(url=url)), 400, "M_INVALID_PARAM")["error"]
    assert "data.url" in error and NOTIFY_PATH in error
    assert pushers(user) == []


@pytest.mark.parametrize("fields, named", [
    ({"data": "https://push.example.org/_matrix/push/v1/notify"}, "data"),
    ({"data": {"url": 5}}, "data.url"),
    ({"data": {"url": GATEWAY_URL, "format": 1}}, "data.format"),
    ({"append": "yes"}, "append"),
    ({"lang": None}, "lang"),
    ({"app_display_name": 3}, "app_display_name"),
    ({"profile_tag": {}}, "profile_tag"),
    ({"pushkey": ["k"]}, "pushkey"),
])
def test_fields_of_the_wrong_type_are_refused(user, fields, named):
    error = assert_error(user.post(SET, json=pusher_body(**fields)), 400, "M_BAD_JSON")["error"]
    assert named in error
    assert pushers(user) == []


def test_a_body_that_is_not_json_is_refused(user):
    assert_error(user.post(SET, content=b"{not json", headers={"Content-Type": "application/json"}), 400,
                 "M_NOT_JSON")


# ---------------------------------------------------------------------------------------------
# Pushers go with their device


def second_session(user):
    login = user.login()
    return login["access_token"], login["device_id"]


def test_deleting_a_device_removes_its_pushers(user):
    token, device_id = second_session(user)
    set_pusher(user, pushkey="first-device")
    set_pusher(user, token=token, pushkey="second-device-a")
    set_pusher(user, token=token, pushkey="second-device-b")
    assert_ok(user.with_password("DELETE", f"{V3}/devices/{path_quote(device_id)}"))
    assert pushkeys(user) == ["first-device"]


def test_delete_devices_removes_their_pushers(user):
    second_token, second = second_session(user)
    third_token, third = second_session(user)
    set_pusher(user, pushkey="first")
    set_pusher(user, token=second_token, pushkey="second")
    set_pusher(user, token=third_token, pushkey="third")
    assert_ok(user.with_password("POST", f"{V3}/delete_devices", {"devices": [second, third]}))
    assert pushkeys(user) == ["first"]


def test_logout_removes_the_devices_pushers(user):
    token, _ = second_session(user)
    set_pusher(user, pushkey="stays")
    set_pusher(user, token=token, pushkey="goes")
    assert_ok(user.post(f"{V3}/logout", token=token, json={}))
    assert pushkeys(user) == ["stays"]


def test_logout_all_removes_every_pusher(user):
    token, _ = second_session(user)
    set_pusher(user, token=token, pushkey="second")
    set_pusher(user, pushkey="first")
    assert_ok(user.post(f"{V3}/logout/all", json={}))
    token, _ = second_session(user)
    assert pushers(user, token) == []


def test_a_password_change_that_logs_out_other_devices_removes_their_pushers(user):
    token, _ = second_session(user)
    set_pusher(user, pushkey="this-device")
    set_pusher(user, token=token, pushkey="other-device")
    assert_ok(user.with_password("POST", f"{V3}/account/password", {"new_password": "a new password"}))
    assert pushkeys(user) == ["this-device"]


def test_a_pusher_edited_by_another_device_stays_with_the_device_that_set_it(user):
    token, device_id = second_session(user)
    set_pusher(user, token=token, pushkey="shared")
    set_pusher(user, pushkey="shared", device_display_name="Edited")
    # Deleting the editing device leaves it; deleting the device that set it removes it.
    third_token, third = second_session(user)
    assert_ok(user.with_password("POST", f"{V3}/delete_devices", {"devices": [user.device_id]}))
    assert [p["device_display_name"] for p in pushers(user, third_token)] == ["Edited"]
    assert_ok(user.with_password("DELETE", f"{V3}/devices/{path_quote(device_id)}", token=third_token))
    assert pushers(user, third_token) == []


# ---------------------------------------------------------------------------------------------
# Delivery to a push gateway


def chat(new_user):
    """Alice and Bob in a room of their own; returns (alice, bob, room_id)."""
    alice, bob = new_user(), new_user()
    room_id = create_room(alice)
    invite(alice, room_id, bob)
    join(bob, room_id)
    return alice, bob, room_id


def assert_device(device, pushkey, data, started):
    assert device["app_id"] == "org.example.app"
    assert device["pushkey"] == pushkey
    assert device["data"] == data
    assert isinstance(device["pushkey_ts"], int)
    assert started - 60 <= device["pushkey_ts"] <= time.time() + 60


def test_a_message_goes_to_each_pusher_in_its_format(new_user, push_gateway):
    alice, bob, room_id = chat(new_user)
    started = int(time.time())
    set_pusher(bob, pushkey="full", data={"url": push_gateway.url, "custom": "kept"})
    token, _ = second_session(bob)
    set_pusher(bob, token=token, pushkey="ids", data={"url": push_gateway.url, "format": "event_id_only"})
    event_id = send_message(alice, room_id, "Hello Bob")

    [full] = push_gateway.wait_for(1, pushkey="full")
    [ids] = push_gateway.wait_for(1, pushkey="ids")
    assert full.path == NOTIFY_PATH
    n = full.notification
    assert (n["event_id"], n["room_id"], n["type"], n["sender"]) == (event_id, room_id, "m.room.message",
                                                                      alice.user_id)
    assert n["content"] == {"msgtype": "m.text", "body": "Hello Bob"}
    assert n["counts"] == {"unread": 1}
    assert n["prio"] == "high"
    [device] = n["devices"]
    assert_device(device, "full", {"custom": "kept"}, started)
    assert device["tweaks"].get("sound") == "default"  # .m.rule.room_one_to_one

    n = ids.notification
    assert set(n) == {"event_id", "room_id", "prio", "counts", "devices"}
    assert (n["event_id"], n["room_id"], n["counts"]) == (event_id, room_id, {"unread": 1})
    [device] = n["devices"]
    assert_device(device, "ids", {"format": "event_id_only"}, started)
    assert "tweaks" not in device
    # The sender's own message reaches no gateway for them, and each pusher had one request.
    time.sleep(1)
    assert len(push_gateway.received(status=None)) == 2


def test_a_rejected_pushkey_loses_its_pusher(new_user, push_gateway):
    alice, bob, room_id = chat(new_user)
    set_pusher(bob, pushkey="expired", data={"url": push_gateway.url})
    set_pusher(bob, pushkey="fine", data={"url": push_gateway.url})
    push_gateway.rejected = {"expired"}
    send_message(alice, room_id, "one")
    push_gateway.wait_for(1, pushkey="expired")
    deadline = time.monotonic() + 10
    while pushkeys(bob) != ["fine"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pushkeys(bob) == ["fine"]
    push_gateway.rejected = set()
    send_message(alice, room_id, "two")
    assert len(push_gateway.wait_for(2, pushkey="fine")) == 2
    time.sleep(1)
    assert len(push_gateway.received("expired", status=None)) == 1


@pytest.mark.parametrize("outage", ["error_status", "closed_port"])
def test_a_gateway_that_is_down_gets_every_push_in_order_once_it_recovers(new_user, new_push_gateway, outage):
    alice, bob, room_id = chat(new_user)
    down, up = new_push_gateway(), new_push_gateway()
    set_pusher(bob, pushkey="down", data={"url": down.url})
    set_pusher(bob, pushkey="up", data={"url": up.url})
    if outage == "error_status":
        down.status = 500
    else:
        down.stop()
    sent = [send_message(alice, room_id, f"message {i}") for i in range(3)]
    # The other pusher is not held up.
    assert [p.notification["event_id"] for p in up.wait_for(3, timeout=15)] == sent
    if outage == "error_status":
        # Retried, with the first message still at the head.
        failures = down.wait_for(2, status=500, timeout=15)
        assert len(failures) >= 2
        assert {p.notification["event_id"] for p in failures} == {sent[0]}
        down.status = 200
    else:
        time.sleep(3)
        down.start()
    delivered = down.wait_for(3, timeout=30)
    assert [p.notification["event_id"] for p in delivered] == sent


def test_a_read_receipt_sends_a_counts_only_update(new_user, push_gateway):
    alice, bob, room_id = chat(new_user)
    set_pusher(bob, pushkey="badge", data={"url": push_gateway.url})
    event_id = send_message(alice, room_id, "read me")
    push_gateway.wait_for(1, pushkey="badge")
    assert_ok(bob.post(room_path(room_id, "receipt", "m.read", event_id), json={}))
    pushes = push_gateway.wait_for(2, pushkey="badge")
    badge = pushes[1].notification
    assert badge == {
        "id": "",
        "type": None,
        "sender": "",
        "counts": {"unread": 0},
        "devices": [badge["devices"][0]],
    }
    assert_device(badge["devices"][0], "badge", {}, int(time.time()) - 120)
