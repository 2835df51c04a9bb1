"""Account management: password changes, deactivation, and what guests may not do."""

import time

import pytest

from conftest import (
    V3, assert_error, assert_ok, assert_token_revoked, assert_uia_challenge, login, login_request, password_auth,
    path_quote, profile_path,
)
from rooms import create_room, invite, join, room_path, send_state, state_event

PASSWORD_PATH = f"{V3}/account/password"
DEACTIVATE = f"{V3}/account/deactivate"


def change_to(new_password, auth):
    return {"new_password": new_password, "auth": auth}


class TestChangePassword:
    def test_challenge_asks_for_the_password(self, user):
        body = assert_uia_challenge(user.post(PASSWORD_PATH, json={"new_password": "new"}), ["m.login.password"])
        assert body["params"] == {}

    def test_change_logs_out_other_devices_by_default(self, user, new_client):
        other = user.login()
        resp = user.with_password("POST", PASSWORD_PATH, {"new_password": "brand new"})
        assert assert_ok(resp) == {}
        assert_ok(user.whoami())
        assert_token_revoked(user.client, other["access_token"])
        devices = assert_ok(user.get(f"{V3}/devices"))["devices"]
        assert [d["device_id"] for d in devices] == [user.device_id]
        assert_error(login_request(new_client(), user.user_id, user.password), 403, "M_FORBIDDEN")
        login(new_client(), user.user_id, "brand new")

    def test_change_can_keep_other_devices(self, user):
        other = user.login()
        resp = user.with_password("POST", PASSWORD_PATH, {"new_password": "brand new", "logout_devices": False})
        assert_ok(resp)
        assert_ok(user.whoami(token=other["access_token"]))
        assert_ok(user.whoami())

    def test_wrong_password_is_a_retryable_stage_failure(self, user, new_client):
        first = user.post(PASSWORD_PATH, json={"new_password": "new"})
        session = assert_uia_challenge(first, ["m.login.password"])["session"]
        wrong = user.post(PASSWORD_PATH, json=change_to("new", password_auth(user.user_id, "nope", session)))
        body = assert_error(wrong, 401, "M_FORBIDDEN")
        assert body["flows"] == [{"stages": ["m.login.password"]}]
        assert body["session"] == session
        right = user.post(PASSWORD_PATH, json=change_to("new", password_auth(user.user_id, user.password, session)))
        assert_ok(right)
        login(new_client(), user.user_id, "new")

    def test_password_guesses_share_the_login_limits(self, user, new_client):
        """A stolen token gives no more guesses than /login does: the account's 5 in a burst."""
        for _ in range(5):
            session = assert_uia_challenge(user.post(PASSWORD_PATH, json={"new_password": "x"}),
                                           ["m.login.password"])["session"]
            wrong = user.post(PASSWORD_PATH, json=change_to("x", password_auth(user.user_id, "guess", session)))
            assert_error(wrong, 401, "M_FORBIDDEN")
        session = assert_uia_challenge(user.post(PASSWORD_PATH, json={"new_password": "x"}),
                                       ["m.login.password"])["session"]
        right = user.post(PASSWORD_PATH, json=change_to("x", password_auth(user.user_id, user.password, session)))
        assert_error(right, 429, "M_LIMIT_EXCEEDED")
        # /login counts against the same account.
        assert_error(login_request(new_client(), user.user_id, user.password), 429, "M_LIMIT_EXCEEDED")

    def test_auth_must_name_the_caller(self, user, new_user, new_client):
        other = new_user()
        first = user.post(PASSWORD_PATH, json={"new_password": "new"})
        session = assert_uia_challenge(first, ["m.login.password"])["session"]
        resp = user.post(PASSWORD_PATH, json=change_to("new", password_auth(other.user_id, other.password, session)))
        assert_error(resp, {401, 403}, "M_FORBIDDEN")
        login(new_client(), user.user_id, user.password)
        login(new_client(), other.user_id, other.password)

    def test_new_password_is_required(self, user):
        assert_error(user.with_password("POST", PASSWORD_PATH, {}), 400, "M_MISSING_PARAM")

    def test_overlong_new_password(self, user):
        assert_error(user.post(PASSWORD_PATH, json={"new_password": "p" * 513}), 400, "M_INVALID_PARAM")


class TestDeactivate:
    def test_challenge_asks_for_the_password(self, user):
        assert_uia_challenge(user.post(DEACTIVATE, json={}), ["m.login.password"])

    def test_deactivation(self, user, new_client):
        other = user.login()
        assert_ok(user.put(profile_path(user.user_id, "displayname"), json={"displayname": "Soon gone"}))
        resp = user.with_password("POST", DEACTIVATE, {})
        assert assert_ok(resp) == {"id_server_unbind_result": "no-support"}
        # Every session is gone, and the account cannot log in again.
        assert_token_revoked(user.client, user.access_token)
        assert_token_revoked(user.client, other["access_token"])
        # It answers like a wrong password, so that nobody learns which accounts were deactivated
        # (the password is gone with the account).
        for password in ["a guess", user.password]:
            assert_error(login_request(new_client(), user.user_id, password), 403, "M_FORBIDDEN")
        # The name stays taken.
        c = new_client()
        assert_error(c.get(f"{V3}/register/available", params={"username": user.localpart}), 400, "M_USER_IN_USE")
        retake = c.post(f"{V3}/register", json={"username": user.localpart, "password": "pw"})
        assert_error(retake, 400, "M_USER_IN_USE")
        # The profile is cleared.
        assert_error(c.get(profile_path(user.user_id, "displayname")), 404, "M_NOT_FOUND")
        profile = c.get(profile_path(user.user_id))
        if profile.status_code == 200:
            assert profile.json() == {}
        else:
            assert_error(profile, 404, "M_NOT_FOUND")

    def test_deactivation_leaves_every_room(self, user, new_user):
        """Joined, invited and knocking: the user leaves each room, more rooms than one batch."""
        owner = new_user()
        joined = [create_room(owner, preset="public_chat") for _ in range(18)]
        for room_id in joined:
            join(user, room_id)
        invited = create_room(owner, preset="private_chat")
        invite(owner, invited, user)
        knocked = create_room(owner, room_version="12")
        send_state(owner, knocked, "m.room.join_rules", {"join_rule": "knock"})
        assert_ok(user.post(f"{V3}/knock/{path_quote(knocked)}", json={}))
        assert_ok(user.with_password("POST", DEACTIVATE, {}))
        rooms = [*joined, invited, knocked]
        deadline = time.monotonic() + 30
        while True:
            members = [state_event(owner, room_id, "m.room.member", user.user_id) for room_id in rooms]
            left = sum(m["membership"] == "leave" for m in members)
            if left == len(rooms):
                break
            assert time.monotonic() < deadline, f"left {left} of {len(rooms)} rooms"
            time.sleep(0.5)
        for room_id in rooms:
            event = assert_ok(owner.get(room_path(room_id, "state", "m.room.member", user.user_id), params={"format": "event"}))
            assert event["sender"] == user.user_id

    def test_wrong_password_keeps_the_account(self, user):
        first = user.post(DEACTIVATE, json={})
        session = assert_uia_challenge(first, ["m.login.password"])["session"]
        resp = user.post(DEACTIVATE, json={"auth": password_auth(user.user_id, "wrong", session)})
        assert_error(resp, 401, "M_FORBIDDEN")
        assert_ok(user.whoami())


@pytest.mark.parametrize("method,path,body", [
    ("GET", f"{V3}/capabilities", None),
    ("POST", PASSWORD_PATH, {"new_password": "x"}),
    ("POST", DEACTIVATE, {}),
    ("DELETE", f"{V3}/devices/SOMEDEVICE", {}),
    ("POST", f"{V3}/delete_devices", {"devices": []}),
], ids=["capabilities", "password", "deactivate", "delete_device", "delete_devices"])
def test_guests_are_refused(guest, method, path, body):
    assert_error(guest.request(method, path, json=body), 403, "M_GUEST_ACCESS_FORBIDDEN")


def test_guests_may_use_their_endpoints(guest):
    assert_ok(guest.whoami())
    assert_ok(guest.get(f"{V3}/devices"))
    assert_ok(guest.put(f"{V3}/devices/{guest.device_id}", json={"display_name": "Guest phone"}))
    assert_ok(guest.put(profile_path(guest.user_id, "displayname"), json={"displayname": "A guest"}))
    assert_ok(guest.post(f"{V3}/logout"))
    assert_token_revoked(guest.client, guest.access_token)
