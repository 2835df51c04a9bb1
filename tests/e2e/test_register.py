"""Account registration: the dummy UIA flow, usernames, guests, availability checks and config."""

import pytest

from conftest import (
    SERVER_NAME, V3, assert_error, auth_header, assert_ok, assert_uia_challenge, login, password_auth, profile_path,
    register, unique_name, user_id_of,
)

REGISTER = f"{V3}/register"
AVAILABLE = f"{V3}/register/available"


def start_registration(client, **body) -> str:
    """Sends a registration without auth; returns the UIA session it opens."""
    return assert_uia_challenge(client.post(REGISTER, json=body), ["m.login.dummy"])["session"]


def test_challenge_offers_the_dummy_flow(client):
    resp = client.post(REGISTER, json={"username": unique_name(), "password": "pw"})
    body = assert_uia_challenge(resp, ["m.login.dummy"])
    assert body["params"] == {}
    assert "errcode" not in body and body["completed"] == []


def test_register_returns_a_working_session(client, base_url):
    name = unique_name()
    body = register(client, name)
    assert body["user_id"] == user_id_of(name)
    assert body["home_server"] == SERVER_NAME
    assert isinstance(body["access_token"], str) and body["access_token"]
    assert isinstance(body["device_id"], str) and body["device_id"]
    whoami = assert_ok(client.get(f"{V3}/account/whoami", headers=auth_header(body["access_token"])))
    assert whoami == {"user_id": body["user_id"], "device_id": body["device_id"], "is_guest": False}


def test_registered_user_can_log_in(new_client):
    name = unique_name()
    register(new_client(), name, password="s3cret pass")
    assert login(new_client(), name, "s3cret pass")["user_id"] == user_id_of(name)


def test_username_is_lowercased(client):
    name = unique_name("MiXeD")
    assert register(client, name)["user_id"] == user_id_of(name.lower())


def test_every_grammar_character_is_accepted(client):
    name = unique_name("a.b_c=d-e/f+g")
    assert register(client, name)["user_id"] == user_id_of(name)


@pytest.mark.parametrize("username", [
    "", "has space", "colon:x", "at@sign", "hash#tag", "emoji\U0001F600", "\u00e5lice", "\u202eadmin",
    "nul\u0000byte", "_leading_underscore", "1234567890", "a" * 300,
], ids=["empty", "space", "colon", "at", "hash", "emoji", "non-ascii", "rtl-override", "nul",
        "underscore", "all-digits", "too-long"])
def test_invalid_usernames_are_refused_before_auth(client, username):
    resp = client.post(REGISTER, json={"username": username, "password": "pw"})
    assert_error(resp, 400, "M_INVALID_USERNAME")


def test_taken_username_is_refused_before_auth(new_client):
    name = unique_name()
    register(new_client(), name)
    for candidate in (name, name.upper()):
        resp = new_client().post(REGISTER, json={"username": candidate, "password": "pw"})
        assert_error(resp, 400, "M_USER_IN_USE")


def test_a_registration_is_counted_when_it_opens_its_session(client, new_client):
    """Starting a registration stores a UIA session: the address's registration limit (3 in a
    burst) applies before it is stored."""
    sessions = [start_registration(client, username=unique_name(), password="pw") for _ in range(3)]
    limited = client.post(REGISTER, json={"username": unique_name(), "password": "pw"})
    assert_error(limited, 429, "M_LIMIT_EXCEEDED")
    assert "session" not in limited.json()
    # A session opened within the limit still completes: each registration counts once.
    name = unique_name()
    done = client.post(REGISTER, json={"username": name, "password": "pw",
                                       "auth": {"type": "m.login.dummy", "session": sessions[0]}})
    assert assert_ok(done)["user_id"] == user_id_of(name)
    # Auth without a session opens one too.
    inline = client.post(REGISTER, json={"username": unique_name(), "password": "pw",
                                         "auth": {"type": "m.login.dummy"}})
    assert_error(inline, 429, "M_LIMIT_EXCEEDED")
    start_registration(new_client(), username=unique_name(), password="pw")


def test_password_is_required_once_auth_is_done(client):
    body = {"username": unique_name()}
    session = start_registration(client, **body)
    resp = client.post(REGISTER, json={**body, "auth": {"type": "m.login.dummy", "session": session}})
    assert_error(resp, 400, "M_MISSING_PARAM")


def test_overlong_password_is_refused(client):
    resp = client.post(REGISTER, json={"username": unique_name(), "password": "p" * 513})
    assert_error(resp, 400, "M_INVALID_PARAM")


def test_longest_password_is_accepted(new_client):
    name = unique_name()
    register(new_client(), name, password="p" * 512)
    login(new_client(), name, "p" * 512)


def test_device_id_and_display_name(client):
    body = register(client, unique_name(), device_id="MYPHONE", initial_device_display_name="My phone")
    assert body["device_id"] == "MYPHONE"
    device = assert_ok(client.get(f"{V3}/devices/MYPHONE", headers=auth_header(body["access_token"])))
    assert device["device_id"] == "MYPHONE"
    assert device["display_name"] == "My phone"


def test_inhibit_login_returns_no_session(new_client):
    name = unique_name()
    body = register(new_client(), name, inhibit_login=True)
    assert body["user_id"] == user_id_of(name)
    assert "access_token" not in body and "device_id" not in body
    login(new_client(), name)


def test_server_generates_a_username_when_none_is_given(new_client):
    body = register(new_client())
    localpart, server = body["user_id"][1:].split(":", 1)
    assert body["user_id"].startswith("@") and localpart and server == SERVER_NAME
    assert login(new_client(), body["user_id"])["user_id"] == body["user_id"]


def test_displayname_defaults_to_localpart(client):
    name = unique_name()
    register(client, name)
    assert assert_ok(client.get(profile_path(user_id_of(name), "displayname"))) == {"displayname": name}


def test_guest_registration(client):
    body = assert_ok(client.post(REGISTER, params={"kind": "guest"}, json={}))
    localpart, server = body["user_id"][1:].split(":", 1)
    assert localpart.isdigit() and server == SERVER_NAME
    whoami = assert_ok(client.get(f"{V3}/account/whoami", headers=auth_header(body["access_token"])))
    assert whoami == {"user_id": body["user_id"], "device_id": body["device_id"], "is_guest": True}


def test_guest_registration_when_guests_are_disabled(new_client, guests_disabled_url):
    resp = new_client(guests_disabled_url).post(REGISTER, params={"kind": "guest"}, json={})
    assert_error(resp, 403, "M_FORBIDDEN")


def test_unknown_kind_is_refused(client):
    resp = client.post(REGISTER, params={"kind": "other"}, json={"username": unique_name(), "password": "pw"})
    assert_error(resp, 400, "M_INVALID_PARAM")


def test_registration_disabled(new_client, registration_disabled_url):
    c = new_client(registration_disabled_url)
    assert_error(c.post(REGISTER, json={"username": unique_name(), "password": "pw"}), 403, "M_FORBIDDEN")
    assert_error(c.post(REGISTER, json={"username": unique_name(), "password": "pw",
                                        "auth": {"type": "m.login.dummy"}}), 403, "M_FORBIDDEN")
    assert_error(c.get(AVAILABLE, params={"username": unique_name()}), 403, "M_FORBIDDEN")


def test_session_of_another_endpoint_is_refused(client, user):
    """A UIA session is bound to the request that started it (here: registration)."""
    session = start_registration(client, username=unique_name(), password="pw")
    resp = user.post(f"{V3}/account/password",
                     json={"new_password": "new", "auth": password_auth(user.user_id, user.password, session)})
    assert_error(resp, 403, "M_FORBIDDEN")
    assert login(client, user.user_id, user.password)  # the password did not change


def test_session_of_a_password_endpoint_cannot_register(client, user):
    first = user.post(f"{V3}/delete_devices", json={"devices": []})
    session = assert_uia_challenge(first, ["m.login.password"])["session"]
    name = unique_name()
    resp = client.post(REGISTER, json={"username": name, "password": "pw",
                                       "auth": {"type": "m.login.dummy", "session": session}})
    assert_error(resp, 403, "M_FORBIDDEN")
    assert assert_ok(client.get(AVAILABLE, params={"username": name})) == {"available": True}


def test_completed_session_cannot_register_another_account(client, new_client):
    first = {"username": unique_name(), "password": "pw"}
    session = start_registration(client, **first)
    assert_ok(client.post(REGISTER, json={**first, "auth": {"type": "m.login.dummy", "session": session}}))
    second = unique_name()
    again = new_client().post(REGISTER, json={"username": second, "password": "pw",
                                              "auth": {"type": "m.login.dummy", "session": session}})
    assert again.status_code != 200 or again.json()["user_id"] != user_id_of(second), again.text
    assert assert_ok(new_client().get(AVAILABLE, params={"username": second})) == {"available": True}


def test_the_session_remembers_the_first_requests_parameters(client, new_client):
    name = unique_name()
    session = start_registration(client, username=name, password="first pw", device_id="XYZZY",
                                 initial_device_display_name="display name")
    body = assert_ok(client.post(REGISTER, json={"auth": {"type": "m.login.dummy", "session": session}}))
    assert body["user_id"] == user_id_of(name) and body["device_id"] == "XYZZY"
    device = assert_ok(client.get(f"{V3}/devices/XYZZY", headers=auth_header(body["access_token"])))
    assert device["display_name"] == "display name"
    login(new_client(), name, "first pw")


def test_a_later_request_with_parameters_replaces_them(client, new_client):
    session = start_registration(client, username=unique_name(), password="old pw")
    name = unique_name()
    body = {"username": name, "password": "new pw", "auth": {"type": "m.login.dummy", "session": session}}
    assert assert_ok(client.post(REGISTER, json=body))["user_id"] == user_id_of(name)
    login(new_client(), name, "new pw")


@pytest.mark.parametrize("username", [None, "named"])
def test_replaying_a_completed_registration_answers_the_same_account(client, new_client, username):
    first = {"password": "pw", **({"username": unique_name()} if username else {})}
    session = start_registration(client, **first)
    done = {**first, "auth": {"type": "m.login.dummy", "session": session}}
    body = assert_ok(client.post(REGISTER, json=done))
    again = assert_ok(new_client().post(REGISTER, json=done))
    assert again["user_id"] == body["user_id"]
    # A new session of the same account, not another account.
    assert again["access_token"] != body["access_token"]
    whoami = assert_ok(client.get(f"{V3}/account/whoami", headers=auth_header(again["access_token"])))
    assert whoami["user_id"] == body["user_id"]


def test_replaying_an_inhibited_registration_logs_in_nowhere(client):
    session = start_registration(client, username=unique_name(), password="pw", inhibit_login=True)
    done = {"auth": {"type": "m.login.dummy", "session": session}}
    body = assert_ok(client.post(REGISTER, json=done))
    again = assert_ok(client.post(REGISTER, json=done))
    assert again["user_id"] == body["user_id"]
    assert "access_token" not in body and "access_token" not in again


def test_a_guest_becomes_a_full_user(new_client):
    client = new_client()
    guest = assert_ok(client.post(REGISTER, params={"kind": "guest"}, json={}))
    localpart = guest["user_id"][1:].split(":")[0]
    body = {"username": localpart, "password": "now a user", "guest_access_token": guest["access_token"]}
    session = start_registration(client, **body)
    upgraded = assert_ok(client.post(REGISTER, json={**body, "auth": {"type": "m.login.dummy", "session": session}}))
    assert upgraded["user_id"] == guest["user_id"]
    whoami = assert_ok(client.get(f"{V3}/account/whoami", headers=auth_header(upgraded["access_token"])))
    assert whoami == {**whoami, "user_id": guest["user_id"], "is_guest": False}
    login(new_client(), localpart, "now a user")
    # A full user's token, another guest's name or a stranger's token upgrade nothing.
    other = assert_ok(new_client().post(REGISTER, params={"kind": "guest"}, json={}))
    for token, name in [(upgraded["access_token"], localpart), (other["access_token"], localpart),
                        ("stx_not_a_token", localpart)]:
        resp = new_client().post(REGISTER, json={"username": name, "password": "x", "guest_access_token": token})
        assert_error(resp, 403, "M_FORBIDDEN")


def test_unknown_session_is_refused(client):
    resp = client.post(REGISTER, json={"username": unique_name(), "password": "pw",
                                       "auth": {"type": "m.login.dummy", "session": "no-such-session"}})
    assert_error(resp, 400, "M_UNKNOWN")


class TestAvailability:
    def test_free_name(self, client):
        assert assert_ok(client.get(AVAILABLE, params={"username": unique_name()})) == {"available": True}

    def test_taken_name_in_any_case(self, new_client):
        name = unique_name()
        register(new_client(), name)
        assert_error(new_client().get(AVAILABLE, params={"username": name}), 400, "M_USER_IN_USE")
        assert_error(new_client().get(AVAILABLE, params={"username": name.upper()}), 400, "M_USER_IN_USE")

    @pytest.mark.parametrize("username", ["bad name", "_under", "12345", "\U0001F600", ""])
    def test_invalid_name(self, client, username):
        assert_error(client.get(AVAILABLE, params={"username": username}), 400, "M_INVALID_USERNAME")

    def test_missing_username(self, client):
        assert_error(client.get(AVAILABLE), 400, "M_MISSING_PARAM")
