"""Device management: listing, reading, renaming and deleting devices, and what deletion revokes."""

import time

import pytest

from conftest import (
    V3, assert_error, assert_ok, assert_token_revoked, assert_uia_challenge, password_auth, path_quote,
)

DEVICES = f"{V3}/devices"
DELETE_DEVICES = f"{V3}/delete_devices"


def device_path(device_id):
    return f"{DEVICES}/{path_quote(device_id)}"


def listed(user):
    return {d["device_id"]: d for d in assert_ok(user.get(DEVICES))["devices"]}


def test_list_shows_the_current_device(new_user):
    started = int(time.time() * 1000)
    user = new_user(initial_device_display_name="Registration phone")
    devices = listed(user)
    assert set(devices) == {user.device_id}
    device = devices[user.device_id]
    assert device["display_name"] == "Registration phone"
    if "last_seen_ts" in device:
        assert isinstance(device["last_seen_ts"], int)
        assert started - 60_000 <= device["last_seen_ts"] <= int(time.time() * 1000) + 60_000
    if "last_seen_ip" in device:
        assert device["last_seen_ip"] == user.client.headers["CF-Connecting-IP"]


def test_get_one_device(user):
    # A device's first requests record its "last seen" in the background (then at most once a
    # minute): the two reads agree once that write has landed.
    deadline = time.monotonic() + 10
    while True:
        device = assert_ok(user.get(device_path(user.device_id)))
        in_list = listed(user)[user.device_id]
        if device == in_list or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert device == in_list


def test_get_unknown_device(user):
    assert_error(user.get(device_path("NOSUCHDEVICE")), 404, "M_NOT_FOUND")


def test_devices_of_other_users_are_invisible(user, new_user):
    other = new_user()
    assert_error(user.get(device_path(other.device_id)), 404, "M_NOT_FOUND")
    assert_error(user.put(device_path(other.device_id), json={"display_name": "hijacked"}), 404, "M_NOT_FOUND")
    assert other.device_id not in listed(user)
    assert listed(other)[other.device_id].get("display_name") != "hijacked"


def test_rename(user):
    assert assert_ok(user.put(device_path(user.device_id), json={"display_name": "Renamed \U0001F4F1"})) == {}
    assert assert_ok(user.get(device_path(user.device_id)))["display_name"] == "Renamed \U0001F4F1"


def test_rename_with_empty_body_changes_nothing(new_user):
    user = new_user(initial_device_display_name="Kept")
    assert_ok(user.put(device_path(user.device_id), json={}))
    assert assert_ok(user.get(device_path(user.device_id)))["display_name"] == "Kept"


def test_rename_unknown_device(user):
    assert_error(user.put(device_path("NOSUCHDEVICE"), json={"display_name": "x"}), 404, "M_NOT_FOUND")


def test_display_name_length_limit(user):
    assert_ok(user.put(device_path(user.device_id), json={"display_name": "n" * 100}))
    assert_error(user.put(device_path(user.device_id), json={"display_name": "n" * 101}), 400, "M_INVALID_PARAM")
    assert assert_ok(user.get(device_path(user.device_id)))["display_name"] == "n" * 100


def test_delete_device_with_empty_body_is_challenged(user):
    other = user.login()
    resp = user.delete(device_path(other["device_id"]))
    assert resp.request.content == b""
    assert_uia_challenge(resp, ["m.login.password"])
    assert other["device_id"] in listed(user)


def test_delete_device(user):
    other = user.login()
    assert assert_ok(user.with_password("DELETE", device_path(other["device_id"]))) == {}
    assert_token_revoked(user.client, other["access_token"])
    assert_error(user.get(device_path(other["device_id"])), 404, "M_NOT_FOUND")
    assert set(listed(user)) == {user.device_id}


def test_delete_current_device_revokes_own_token(user):
    assert_ok(user.with_password("DELETE", device_path(user.device_id)))
    assert_token_revoked(user.client, user.access_token)


def test_delete_device_with_wrong_password(user):
    other = user.login()
    first = user.delete(device_path(other["device_id"]), json={})
    session = assert_uia_challenge(first, ["m.login.password"])["session"]
    resp = user.delete(device_path(other["device_id"]), json={"auth": password_auth(user.user_id, "wrong", session)})
    assert_error(resp, 401, "M_FORBIDDEN")
    assert_ok(user.whoami(token=other["access_token"]))


def test_delete_device_with_another_users_password_is_forbidden(user, new_user):
    other = user.login()
    thief = new_user()
    resp = user.delete(device_path(other["device_id"]), json={"auth": password_auth(thief.user_id, thief.password)})
    assert_error(resp, 403, "M_FORBIDDEN")
    assert "flows" not in resp.json(), "no challenge: the credentials are not the account's"
    assert_ok(user.whoami(token=other["access_token"]))


def test_delete_devices(user):
    first, second, kept = user.login(), user.login(), user.login()
    body = {"devices": [first["device_id"], second["device_id"]]}
    assert assert_ok(user.with_password("POST", DELETE_DEVICES, body)) == {}
    assert set(listed(user)) == {user.device_id, kept["device_id"]}
    assert_token_revoked(user.client, first["access_token"])
    assert_token_revoked(user.client, second["access_token"])
    assert_ok(user.whoami(token=kept["access_token"]))


def test_delete_devices_of_another_user_does_nothing(user, new_user):
    other = new_user()
    assert_ok(user.with_password("POST", DELETE_DEVICES, {"devices": [other.device_id]}))
    assert_ok(other.whoami())
    assert other.device_id in listed(other)


def test_delete_devices_requires_the_list(user):
    resp = user.post(DELETE_DEVICES, json={"auth": password_auth(user.user_id, user.password)})
    assert_error(resp, 400, "M_MISSING_PARAM")


@pytest.mark.parametrize("device_id", ["\U0001F4F1", "with space", "slash/inside", "x" * 300])
def test_unusual_device_ids_are_just_unknown(user, device_id):
    assert_error(user.get(device_path(device_id)), 404, "M_NOT_FOUND")
