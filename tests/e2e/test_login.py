"""Login, logout, whoami, and how access tokens are sent, refused and revoked."""

import pytest

from conftest import (
    SERVER_NAME, V3, assert_error, assert_ok, assert_token_revoked, login, login_request, unique_name,
)

WHOAMI = f"{V3}/account/whoami"


def device_ids(user, token=None):
    return {d["device_id"] for d in assert_ok(user.get(f"{V3}/devices", token=token))["devices"]}


@pytest.mark.parametrize("spelling", ["localpart", "user_id", "upper_localpart", "upper_user_id"])
def test_login_by_identifier(new_client, user, base_url, spelling):
    names = {
        "localpart": user.localpart,
        "user_id": user.user_id,
        "upper_localpart": user.localpart.upper(),
        "upper_user_id": f"@{user.localpart.upper()}:{SERVER_NAME}",
    }
    body = login(new_client(), names[spelling], user.password)
    assert body["user_id"] == user.user_id
    assert body["home_server"] == SERVER_NAME
    assert isinstance(body["access_token"], str) and body["access_token"] != user.access_token
    assert isinstance(body["device_id"], str) and body["device_id"] != user.device_id
    assert body["well_known"]["m.homeserver"]["base_url"].rstrip("/") == base_url.rstrip("/")
    whoami = assert_ok(user.whoami(token=body["access_token"]))
    assert whoami == {"user_id": user.user_id, "device_id": body["device_id"], "is_guest": False}


def test_login_with_legacy_user_field(client, user):
    body = {"type": "m.login.password", "user": user.localpart, "password": user.password}
    resp = client.post(f"{V3}/login", json=body)
    assert assert_ok(resp)["user_id"] == user.user_id


def test_wrong_password(client, user):
    assert_error(login_request(client, user.user_id, "wrong password"), 403, "M_FORBIDDEN")


def test_unknown_user(client):
    assert_error(login_request(client, unique_name("nobody")), 403, "M_FORBIDDEN")


def test_user_of_another_server(client, user):
    resp = login_request(client, f"@{user.localpart}:example.org", user.password)
    assert_error(resp, 403, "M_FORBIDDEN")


def test_unknown_login_type(client, user):
    resp = client.post(f"{V3}/login", json={"type": "m.login.magic", "user": user.localpart, "password": user.password})
    assert_error(resp, 400, "M_UNKNOWN")


def test_missing_password(client, user):
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user.localpart}}
    resp = client.post(f"{V3}/login", json=body)
    assert_error(resp, 400, "M_MISSING_PARAM")


def test_each_login_is_a_new_device(user):
    first, second = user.login(), user.login()
    assert first["device_id"] != second["device_id"]
    assert {first["device_id"], second["device_id"], user.device_id} <= device_ids(user)
    for token in (first["access_token"], second["access_token"], user.access_token):
        assert_ok(user.whoami(token=token))


def test_reusing_a_device_id_revokes_its_old_token(user):
    first = user.login(device_id="LAPTOP")
    second = user.login(device_id="LAPTOP")
    assert first["device_id"] == second["device_id"] == "LAPTOP"
    assert_token_revoked(user.client, first["access_token"])
    assert assert_ok(user.whoami(token=second["access_token"]))["device_id"] == "LAPTOP"
    devices = assert_ok(user.get(f"{V3}/devices"))["devices"]
    assert [d["device_id"] for d in devices].count("LAPTOP") == 1


def test_device_ids_are_per_user(user, new_user):
    """Logging in on a device ID that another user has touches only one's own devices."""
    other = new_user()
    mine = user.login(device_id=other.device_id)
    assert mine["device_id"] == other.device_id
    assert_ok(other.whoami())
    assert_ok(user.whoami(token=mine["access_token"]))
    assert other.device_id in device_ids(other)


def test_initial_device_display_name(user):
    session = user.login(initial_device_display_name="Work laptop")
    device = assert_ok(user.get(f"{V3}/devices/{session['device_id']}"))
    assert device["display_name"] == "Work laptop"


def test_logout_revokes_the_token_and_deletes_the_device(user):
    other = user.login()
    assert assert_ok(user.post(f"{V3}/logout", token=other["access_token"])) == {}
    assert_token_revoked(user.client, other["access_token"])
    assert other["device_id"] not in device_ids(user)
    assert_ok(user.whoami())


def test_logout_all_revokes_every_token(user):
    other = user.login()
    assert assert_ok(user.post(f"{V3}/logout/all")) == {}
    for token in (user.access_token, other["access_token"]):
        assert_token_revoked(user.client, token)
    fresh = user.login()
    assert device_ids(user, token=fresh["access_token"]) == {fresh["device_id"]}


def test_whoami(user):
    assert assert_ok(user.whoami()) == {"user_id": user.user_id, "device_id": user.device_id, "is_guest": False}


def test_whoami_of_a_guest(guest):
    assert assert_ok(guest.whoami()) == {"user_id": guest.user_id, "device_id": guest.device_id, "is_guest": True}


class TestAccessTokens:
    def test_query_parameter(self, user):
        body = assert_ok(user.client.get(WHOAMI, params={"access_token": user.access_token}))
        assert body["user_id"] == user.user_id

    def test_header_and_query_parameter_together(self, user):
        resp = user.get(WHOAMI, params={"access_token": user.access_token})
        assert_error(resp, 400, "M_UNKNOWN")

    def test_missing(self, client):
        assert_error(client.get(WHOAMI), 401, "M_MISSING_TOKEN")

    def test_unknown(self, client):
        assert_token_revoked(client, "syt_not_a_real_token")

    def test_unknown_in_query_parameter(self, client):
        body = assert_error(client.get(WHOAMI, params={"access_token": "nope"}), 401, "M_UNKNOWN_TOKEN")
        assert body.get("soft_logout", False) is False

    @pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "token-without-scheme"])
    def test_malformed_authorization_header(self, user, header):
        resp = user.client.get(WHOAMI, headers={"Authorization": header})
        assert_error(resp, 401, "M_MISSING_TOKEN")

    def test_scheme_is_case_insensitive(self, user):
        resp = user.client.get(WHOAMI, headers={"Authorization": f"bearer {user.access_token}"})
        assert assert_ok(resp)["user_id"] == user.user_id
