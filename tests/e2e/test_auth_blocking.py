"""Auth blocking, Synapse's `tests/api/test_auth.py` over HTTP: tokens (valid, bad, missing,
puppeted with and without tracking), the monthly active user limit by user type, application
services with and without IP tracking, reserved third-party IDs, a disabled server, and the
usage-limit server notice.

Each limited server fills up once and stays full, so each is driven by one test in order."""

from __future__ import annotations

import json
import secrets
import time

import httpx
import pytest

from admin import ADMIN, CONTACT, assert_created, SHARED_SECRET, create_user, shared_secret_request, user_path
from appservices import add_and_wait, registration
from conftest import (PASSWORD, V3, User, assert_error, assert_ok, auth_header, login_request, make_client,
                      unique_name)
from rooms import create_room, join, room_path, send_message

RESERVED = {"medium": "email", "address": "reserved@example.org"}
LIMITED = {"LIMIT_USAGE_BY_MAU": "true", "MAU_LIMIT_RESERVED_THREEPIDS": json.dumps([RESERVED]),
           "SERVER_NOTICES_LOCALPART": "notices", "REGISTRATION_SHARED_SECRET": SHARED_SECRET,
           "ADMIN_CONTACT": CONTACT}
MAU = {**LIMITED, "MAX_MAU_VALUE": "3"}
MAU_TRACKING = {**LIMITED, "MAX_MAU_VALUE": "2", "TRACK_PUPPETED_USER_IPS": "true",
                "TRACK_APPSERVICE_USER_IPS": "true"}
DISABLED = {"HS_DISABLED": "true", "HS_DISABLED_MESSAGE": "Down for maintenance", "ALLOW_GUEST_ACCESS": "true",
            "SERVER_NOTICES_LOCALPART": "notices", "REGISTRATION_SHARED_SECRET": SHARED_SECRET,
            "ADMIN_CONTACT": CONTACT}
# A trial long enough to register and sync a few users on a loaded machine, short enough to wait
# out (`MAU_TRIAL_DAYS` may be fractional, as Synapse's `mau_trial_days`).
TRIAL_S = 25
TRIAL = {**LIMITED, "MAX_MAU_VALUE": "1", "MAU_TRIAL_DAYS": repr(TRIAL_S / 86400)}
# Activity is recorded after the response; this bounds how long that may take on a loaded machine.
SETTLE_S = 30


@pytest.fixture(scope="module")
def servers(server_factory):
    """The limited servers, started side by side."""
    launched = {name: server_factory.launch(config) for name, config in
                (("mau", MAU), ("tracking", MAU_TRACKING), ("disabled", DISABLED), ("trial", TRIAL))}
    for server in launched.values():
        server.wait_ready()
    return launched


def assert_limited(resp: httpx.Response, limit_type: str = "monthly_active_user") -> dict:
    body = assert_error(resp, 403, "M_RESOURCE_LIMIT_EXCEEDED")
    assert body["admin_contact"] == CONTACT, body
    assert body["limit_type"] == limit_type, body
    return body


def register_request(client: httpx.Client, username: str) -> httpx.Response:
    return client.post(f"{V3}/register", json={"username": username, "password": PASSWORD})


def registered(url: str) -> User:
    """A user registered through the m.login.dummy flow who has made no request yet."""
    client = make_client(url)
    username = unique_name()
    session = register_request(client, username).json()["session"]
    body = assert_ok(client.post(f"{V3}/register", json={"username": username, "password": PASSWORD,
                                                         "auth": {"type": "m.login.dummy", "session": session}}))
    return User(client, body["user_id"], body["access_token"], body["device_id"])


def wait_until_full(url: str) -> None:
    """Waits until the recorded activity fills the server: a registration is then refused. (A
    registration that may go on only opens an auth session, which makes no one active.)"""
    deadline = time.monotonic() + SETTLE_S
    with make_client(url) as client:
        while True:
            resp = register_request(client, unique_name())
            if resp.status_code == 403:
                assert_limited(resp)
                return
            assert resp.status_code == 401, resp.text
            assert time.monotonic() < deadline, "the server never filled up"
            time.sleep(0.5)


def sync(user: User, token: str | None = None, **params) -> httpx.Response:
    return user.get(f"{V3}/sync", token=token, params={"timeout": "0", **params})


# ---------------------------------------------------------------------------------------------
# Tokens


def test_valid_bad_and_missing_tokens(user, client):
    assert assert_ok(user.whoami())["user_id"] == user.user_id
    assert_error(client.get(f"{V3}/account/whoami", headers=auth_header("stx_not_a_token")), 401, "M_UNKNOWN_TOKEN")
    assert_error(client.get(f"{V3}/account/whoami", params={"access_token": "nope"}), 401, "M_UNKNOWN_TOKEN")
    assert_error(client.get(f"{V3}/account/whoami"), 401, "M_MISSING_TOKEN")


# ---------------------------------------------------------------------------------------------
# The monthly active user limit


def test_blocking_at_the_limit(servers):
    url = servers["mau"].url
    # Three active users fill it: the admin and two users, each by their first request.
    admin = create_user(url, unique_name("admin"), admin=True)
    active = [registered(url), registered(url)]
    # Made while there was room, but never active.
    idle, bot_name, puppeted = registered(url), unique_name("bot"), registered(url)
    support = create_user(url, unique_name("support"), user_type="support")
    assert_created(admin.put(user_path(f"@{bot_name}:localhost"), json={"password": PASSWORD, "user_type": "bot"}))
    for user in [admin, *active]:
        assert_ok(user.whoami())
    wait_until_full(url)

    # Registration is refused, before any auth session.
    with make_client(url) as client:
        assert_limited(register_request(client, unique_name()))
        # So is shared-secret registration, and nothing is made (Synapse makes the account first).
        name = unique_name()
        assert_limited(shared_secret_request(client, name))
        assert_ok(client.get(f"{V3}/register/available", params={"username": name}))

    # A user who is not active may not sync, create rooms, send, or log in; whoami still works.
    room_id = create_room(active[0])
    assert_limited(sync(idle))
    assert_limited(idle.post(f"{V3}/createRoom", json={}))
    assert_limited(idle.put(room_path(room_id, "send", "m.room.message", "t1"), json={"body": "x"}))
    assert_limited(login_request(make_client(url), idle.user_id))
    assert assert_ok(idle.whoami())["user_id"] == idle.user_id

    # Active users keep working, and may log in again.
    assert_ok(sync(active[0]))
    send_message(active[0], room_id)
    assert_ok(login_request(make_client(url), active[1].user_id))

    # Support users are exempt; bots are not.
    assert_ok(sync(support))
    assert_ok(login_request(make_client(url), support.user_id))
    assert_limited(login_request(make_client(url), f"@{bot_name}:localhost"))

    # A user made support after creation passes at once (Synapse's stale cache is not copied),
    # and is blocked again as a regular user.
    assert_ok(admin.put(user_path(idle.user_id), json={"user_type": "support"}))
    assert_ok(sync(idle))
    assert_ok(admin.put(user_path(idle.user_id), json={"user_type": None}))
    assert_limited(sync(idle))

    # A reserved third-party ID counts as active at once, even given through the admin API.
    reserved_name = unique_name("reserved")
    assert_created(admin.put(user_path(f"@{reserved_name}:localhost"),
                        json={"password": PASSWORD, "threepids": [RESERVED]}))
    reserved = User(make_client(url), f"@{reserved_name}:localhost", "", "")
    reserved.access_token = assert_ok(login_request(reserved.client, reserved.user_id))["access_token"]
    assert_ok(sync(reserved))
    other_name = unique_name("unreserved")
    assert_created(admin.put(user_path(f"@{other_name}:localhost"),
                        json={"password": PASSWORD, "threepids": [{"medium": "email", "address": "x@example.org"}]}))
    assert_limited(login_request(make_client(url), f"@{other_name}:localhost"))

    # A blocked user can be puppeted: the admin is active, and the user does not become so.
    token = assert_ok(admin.post(f"{user_path(puppeted.user_id, 'v1')}/login", json={}))["access_token"]
    assert assert_ok(puppeted.whoami(token=token))["user_id"] == puppeted.user_id
    assert_ok(sync(puppeted, token=token))
    time.sleep(2)
    assert_limited(sync(puppeted))

    # Application services are exempt when their users' addresses are not tracked.
    reg = registration(f"as{secrets.token_hex(3)}", None)
    add_and_wait(url, servers["mau"].workdir / "state", servers["mau"].workdir, reg)
    with make_client(url) as client:
        assert_ok(client.get(f"{V3}/sync", params={"timeout": "0"}, headers=auth_header(reg["as_token"])))

    # The active users hear of it in their server notices room.
    notice_room = usage_limit_notice(active[0])
    assert_error(active[0].put(room_path(notice_room, "send", "m.room.message", "t2"), json={"body": "hi"}),
                 403, "M_FORBIDDEN")
    assert_error(active[0].post(room_path(notice_room, "invite"), json={"user_id": active[1].user_id}),
                 403, "M_FORBIDDEN")

    # Below the limit again, the notice is unpinned. (The reserved user counts too.)
    for gone in (active[1].user_id, reserved.user_id):
        assert_ok(admin.post(f"{ADMIN}/v1/deactivate/{gone}", json={}))
    deadline = time.monotonic() + SETTLE_S
    while pinned(active[0], notice_room):
        assert time.monotonic() < deadline, "the notice stayed pinned"
        assert_ok(sync(active[0]))
    assert_ok(sync(idle))


def test_trial_days(servers):
    """Synapse's `test_trial_delay`: users in their trial days are neither counted nor refused,
    so more of them than the limit register and sync; once their trials end, the first to come
    back is counted and fills the server, and the others are refused."""
    url = servers["trial"].url
    started = time.monotonic()
    first, second = registered(url), registered(url)
    assert_ok(sync(first))
    # Had the first sync made `first` active, the server (limit 1) would now be full.
    time.sleep(2)
    third = registered(url)
    trials_end = time.monotonic() + TRIAL_S + 1  # the last, third's, began before this
    for user in (first, second, third):
        assert_ok(sync(user))
        assert_ok(user.post(f"{V3}/createRoom", json={}))
    assert time.monotonic() - started < TRIAL_S, "the trial ended before its checks; raise TRIAL_S"

    time.sleep(max(0.0, trials_end - time.monotonic()))
    assert_ok(sync(first))
    wait_until_full(url)
    assert_ok(sync(first))
    assert_limited(sync(second))
    assert_limited(third.post(f"{V3}/createRoom", json={}))
    with make_client(url) as client:
        assert_limited(register_request(client, unique_name()))


def usage_limit_notice(user: User) -> str:
    """Joins the notices room a sync invites `user` to, checks the pinned usage-limit notice and
    the room's tag; returns the room ID."""
    body = assert_ok(sync(user))
    invites = body.get("rooms", {}).get("invite", {})
    assert len(invites) == 1, body
    room_id = next(iter(invites))
    join(user, room_id)
    events = assert_ok(user.get(room_path(room_id, "messages"), params={"dir": "b", "limit": "20"}))["chunk"]
    notices = [e for e in events if e["type"] == "m.room.message"]
    assert len(notices) == 1, events
    content = notices[0]["content"]
    assert content["msgtype"] == "m.server_notice"
    assert content["server_notice_type"] == "m.server_notice.usage_limit_reached"
    assert content["admin_contact"] == CONTACT and content["limit_type"] == "monthly_active_user"
    assert notices[0]["sender"] == "@notices:localhost"
    assert pinned(user, room_id) == [notices[0]["event_id"]]
    tags = assert_ok(user.get(f"{V3}/user/{user.user_id}/rooms/{room_id}/tags"))["tags"]
    assert "m.server_notice" in tags, tags
    return room_id


def pinned(user: User, room_id: str) -> list[str]:
    resp = user.get(room_path(room_id, "state", "m.room.pinned_events", ""))
    return assert_ok(resp)["pinned"]


def test_tracked_puppets_and_services_count(servers):
    url = servers["tracking"].url
    admin = create_user(url, unique_name("admin"), admin=True)
    puppeted = registered(url)
    assert_ok(admin.whoami())
    # With TRACK_PUPPETED_USER_IPS, a puppet's use makes its target active: the second and last.
    token = assert_ok(admin.post(f"{user_path(puppeted.user_id, 'v1')}/login", json={}))["access_token"]
    assert_ok(puppeted.whoami(token=token))
    wait_until_full(url)
    assert_ok(sync(puppeted))
    assert_ok(login_request(make_client(url), puppeted.user_id))

    # With TRACK_APPSERVICE_USER_IPS, a service's users count, and are blocked at the limit.
    reg = registration(f"as{secrets.token_hex(3)}", None)
    add_and_wait(url, servers["tracking"].workdir / "state", servers["tracking"].workdir, reg)
    with make_client(url) as client:
        assert_limited(client.get(f"{V3}/sync", params={"timeout": "0"}, headers=auth_header(reg["as_token"])))
        assert_ok(client.get(f"{V3}/account/whoami", headers=auth_header(reg["as_token"])))


def test_puppet_tokens_expire(servers):
    url = servers["tracking"].url
    # The server is full by now: support users are exempt.
    admin = create_user(url, unique_name("admin"), admin=True, user_type="support")
    target = create_user(url, unique_name("target"), user_type="support")
    until = int(time.time() * 1000) + 2000
    token = assert_ok(admin.post(f"{user_path(target.user_id, 'v1')}/login",
                                 json={"valid_until_ms": until}))["access_token"]
    assert_ok(target.whoami(token=token))
    time.sleep(max(0.0, until / 1000 - time.time()) + 0.5)
    body = assert_error(target.whoami(token=token), 401, "M_UNKNOWN_TOKEN")
    assert body["soft_logout"] is True


# ---------------------------------------------------------------------------------------------
# A disabled server


def test_a_disabled_server(servers):
    url = servers["disabled"].url
    with make_client(url) as client:
        body = assert_limited(register_request(client, unique_name()), "hs_disabled")
        assert body["error"] == "Down for maintenance"
        assert_limited(client.post(f"{V3}/register", params={"kind": "guest"}, json={}), "hs_disabled")
        name = unique_name()
        assert_limited(shared_secret_request(client, name, admin=True), "hs_disabled")
        assert_ok(client.get(f"{V3}/register/available", params={"username": name}))
    # Support users are exempt; the notices user reaches them.
    admin = create_user(url, unique_name("admin"), admin=True, user_type="support")
    support = create_user(url, unique_name("support"), user_type="support")
    assert_ok(sync(support))
    notice = {"user_id": support.user_id, "content": {"msgtype": "m.text", "body": "Back soon"}}
    assert_ok(admin.post(f"{ADMIN}/v1/send_server_notice", json=notice))
    invites = assert_ok(sync(support)).get("rooms", {}).get("invite", {})
    assert len(invites) == 1, invites
    # Anyone else is refused, with the message: here a user the admin makes.
    regular = f"@{unique_name()}:localhost"
    assert_created(admin.put(user_path(regular), json={"password": PASSWORD}))
    body = assert_limited(login_request(make_client(url), regular), "hs_disabled")
    assert body["error"] == "Down for maintenance"
