"""Application services: registration through `npm run appservice`, the as_token and its rules
(IP ranges, masquerading as users and devices), registering and logging in service users,
exclusive namespaces, and ping."""

from __future__ import annotations

import secrets
import threading
import time

import httpx

from appservices import add, add_and_wait, appservice_command, new_user, registration
from conftest import (V3, assert_error, assert_ok, auth_header, describe, make_client, path_quote, register,
                      unique_name, user_id_of)
from rooms import V1, room_path


def as_request(url: str, reg: dict, method: str, path: str, ip: str | None = None, **kwargs) -> httpx.Response:
    with make_client(url, ip) as c:
        return c.request(method, path, headers=auth_header(reg["as_token"]), **kwargs)


def register_as_user(url: str, reg: dict, localpart: str, **fields) -> httpx.Response:
    body = {"type": "m.login.application_service", "username": localpart, **fields}
    return as_request(url, reg, "POST", f"{V3}/register", json=body)


def test_registration_validation_names_the_problem_and_stores_nothing(as_server, tmp_path):
    state = as_server.workdir / "state"
    prefix = f"as{secrets.token_hex(3)}"
    good = registration(prefix, None)
    cases = [
        ({**good, "namespaces": {"users": [{"exclusive": True, "regex": "@(unclosed"}]}}, "bad regex"),
        ({k: v for k, v in good.items() if k != "hs_token"}, "hs_token"),
        ({k: v for k, v in good.items() if k != "sender_localpart"}, "sender_localpart"),
        ({**good, "ip_range_whitelist": ["10.0.0.0/40"]}, "ip_range_whitelist"),
    ]
    for bad, problem in cases:
        done = add(state, tmp_path, bad)
        assert done.returncode != 0 and problem in done.stderr, (problem, done.stderr)
    assert add(state, tmp_path, good).returncode == 0
    again = add(state, tmp_path, {**good, "as_token": "other-as", "hs_token": "other-hs"})
    assert again.returncode != 0 and "already registered" in again.stderr, again.stderr
    reused_as = add(state, tmp_path, {**good, "id": prefix + "b", "hs_token": "fresh-hs"})
    assert reused_as.returncode != 0 and "`as_token` is already used" in reused_as.stderr, reused_as.stderr
    reused_hs = add(state, tmp_path, {**good, "id": prefix + "c", "as_token": "fresh-as"})
    assert reused_hs.returncode != 0 and "`hs_token` is already used" in reused_hs.stderr, reused_hs.stderr
    listed = appservice_command(state, "list")
    assert listed.returncode == 0 and prefix in listed.stdout
    assert prefix + "b" not in listed.stdout and prefix + "c" not in listed.stdout
    # The sender exists from the start: its profile can be read.
    with make_client(as_server.url) as c:
        assert_ok(c.get(f"{V3}/profile/{user_id_of(prefix + '-bot')}"))
    assert appservice_command(state, "remove", prefix).returncode == 0
    assert prefix not in appservice_command(state, "list").stdout
    missing = appservice_command(state, "remove", prefix)
    assert missing.returncode != 0 and "no such application service" in missing.stderr


def test_a_running_server_sees_additions_and_removals(as_server, tmp_path):
    state = as_server.workdir / "state"
    reg = registration(f"as{secrets.token_hex(3)}", None)
    add_and_wait(as_server.url, state, tmp_path, reg)
    whoami = assert_ok(as_request(as_server.url, reg, "GET", f"{V3}/account/whoami"))
    assert whoami["user_id"] == user_id_of(reg["sender_localpart"]) and "device_id" not in whoami
    assert appservice_command(state, "remove", reg["id"]).returncode == 0
    deadline = time.monotonic() + 15
    while as_request(as_server.url, reg, "GET", f"{V3}/account/whoami").status_code == 200:
        assert time.monotonic() < deadline, "the removed service's token still works"
        time.sleep(0.3)
    assert_error(as_request(as_server.url, reg, "GET", f"{V3}/account/whoami"), 401, "M_UNKNOWN_TOKEN")


def test_the_command_goes_through_a_running_server_that_is_writing(as_server, tmp_path):
    """The command writes through the server that serves the state: beside it, a second writer of
    the local D1 file made one of the two fail with SQLITE_BUSY (the command, or the server's
    requests with a 500)."""
    state = as_server.workdir / "state"
    alice = new_user(as_server.url)
    room = alice.call("POST", f"{V3}/createRoom", json={})["room_id"]
    failures: list[str] = []
    stop = threading.Event()

    def write() -> None:
        with make_client(as_server.url) as c:
            while not stop.is_set():
                path = room_path(room, "send", "m.room.message", secrets.token_hex(8))
                resp = c.put(path, json={"msgtype": "m.text", "body": "busy"}, headers=auth_header(alice.token))
                if resp.status_code != 200:
                    failures.append(describe(resp))

    writers = [threading.Thread(target=write) for _ in range(3)]
    for t in writers:
        t.start()
    try:
        for _ in range(3):
            reg = registration(f"as{secrets.token_hex(3)}", None)
            done = add(state, tmp_path, reg)
            assert done.returncode == 0 and "through the server" in done.stderr, done.stderr
            listed = appservice_command(state, "list")
            assert listed.returncode == 0 and reg["id"] in listed.stdout, listed.stderr
            removed = appservice_command(state, "remove", reg["id"])
            assert removed.returncode == 0, removed.stderr
    finally:
        stop.set()
        for t in writers:
            t.join()
    assert not failures, failures[:3]


def test_the_local_command_endpoint_needs_the_secret_of_the_state(as_server):
    secret = (as_server.workdir / "state" / "local-command-secret").read_text().strip()
    path = "/_stratus/local/v1/query"
    with make_client(as_server.url) as c:
        assert_error(c.post(path, json={"sql": "SELECT 1 AS one"}), 403, "M_FORBIDDEN")
        assert_error(c.post(path, json={"sql": "SELECT 1 AS one"}, headers=auth_header(secret + "x")), 403,
                     "M_FORBIDDEN")
        resp = c.post(path, json={"sql": "SELECT 1 AS one"}, headers=auth_header(secret))
        assert resp.status_code == 200, describe(resp)
        assert resp.json() == [{"results": [{"one": 1}], "success": True}]


def test_ip_range_whitelist(as_server, tmp_path):
    reg = registration(f"as{secrets.token_hex(3)}", None, ip_range_whitelist=["10.77.0.0/16", "fd00:77::/32"])
    state = as_server.workdir / "state"
    assert add(state, tmp_path, reg).returncode == 0
    deadline = time.monotonic() + 15
    while as_request(as_server.url, reg, "GET", f"{V3}/account/whoami", ip="10.77.3.4").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert_ok(as_request(as_server.url, reg, "GET", f"{V3}/account/whoami", ip="fd00:77::9"))
    for outside in ["10.78.3.4", "fd00:78::9"]:
        assert_error(as_request(as_server.url, reg, "GET", f"{V3}/account/whoami", ip=outside), 401, "M_UNKNOWN_TOKEN")


def test_user_and_device_masquerading(as_server, service):
    reg, _ = service
    prefix = reg["id"]
    bob = user_id_of(f"{prefix}-bob")
    assert assert_ok(register_as_user(as_server.url, reg, f"{prefix}-bob", inhibit_login=True))["user_id"] == bob
    me = assert_ok(as_request(as_server.url, reg, "GET", f"{V3}/account/whoami", params={"user_id": bob}))
    assert me["user_id"] == bob
    # Outside the namespace, and inside it but never registered: 403.
    with make_client(as_server.url) as c:
        outsider = register(c, unique_name())["user_id"]
    for user_id in [outsider, user_id_of(f"{prefix}-nobody")]:
        resp = as_request(as_server.url, reg, "GET", f"{V3}/account/whoami", params={"user_id": user_id})
        assert_error(resp, 403, "M_FORBIDDEN")
    # A device of the user, by either name; an unknown one is M_EXCLUSIVE, as in Synapse.
    login = {"type": "m.login.application_service", "identifier": {"type": "m.id.user", "user": bob},
             "device_id": "BRIDGEDEV"}
    assert assert_ok(as_request(as_server.url, reg, "POST", f"{V3}/login", json=login))["device_id"] == "BRIDGEDEV"
    for name in ["device_id", "org.matrix.msc3202.device_id"]:
        me = assert_ok(as_request(as_server.url, reg, "GET", f"{V3}/account/whoami",
                                  params={"user_id": bob, name: "BRIDGEDEV"}))
        assert me == {"user_id": bob, "device_id": "BRIDGEDEV", "is_guest": False}
    resp = as_request(as_server.url, reg, "GET", f"{V3}/account/whoami", params={"user_id": bob, "device_id": "NOPE"})
    assert_error(resp, 400, "M_EXCLUSIVE")


def test_service_registration_and_login(as_server, service):
    reg, _ = service
    prefix = reg["id"]
    # Inside the namespace: a user with a device and token, no password and no UIA.
    body = assert_ok(register_as_user(as_server.url, reg, f"{prefix}-alice"))
    with make_client(as_server.url) as c:
        assert assert_ok(c.get(f"{V3}/account/whoami", headers=auth_header(body["access_token"])))["user_id"] == \
            user_id_of(f"{prefix}-alice")
        # Outside it: M_EXCLUSIVE. Without the token, or with another: 401.
        assert_error(register_as_user(as_server.url, reg, unique_name()), 400, "M_EXCLUSIVE")
        appservice_body = {"type": "m.login.application_service", "username": f"{prefix}-carol"}
        assert_error(c.post(f"{V3}/register", json=appservice_body), 401, "M_MISSING_TOKEN")
        assert_error(c.post(f"{V3}/register", json=appservice_body, headers=auth_header("nope")), 401,
                     "M_UNKNOWN_TOKEN")
        flows = assert_ok(c.get(f"{V3}/login"))["flows"]
        assert {"type": "m.login.application_service"} in flows
        # Login outside the namespace is refused.
        outsider = register(c, unique_name())["user_id"]
    login = {"type": "m.login.application_service", "identifier": {"type": "m.id.user", "user": outsider}}
    assert_error(as_request(as_server.url, reg, "POST", f"{V3}/login", json=login), 403, "M_FORBIDDEN")


def test_exclusive_namespaces(as_server, service):
    reg, _ = service
    prefix = reg["id"]
    with make_client(as_server.url) as c:
        first = c.post(f"{V3}/register", json={"username": f"{prefix}-mallory", "password": "x" * 12})
        assert_error(first, 400, "M_EXCLUSIVE")
        assert_error(c.get(f"{V3}/register/available", params={"username": f"{prefix}-mallory"}), 400, "M_EXCLUSIVE")
        user = register(c, unique_name())
        headers = auth_header(user["access_token"])
        room = assert_ok(c.post(f"{V3}/createRoom", json={}, headers=headers))["room_id"]
        alias = f"#{prefix}-room:localhost"
        resp = c.put(f"{V3}/directory/room/{path_quote(alias)}", json={"room_id": room}, headers=headers)
        assert_error(resp, 400, "M_EXCLUSIVE")
        assert_error(c.post(f"{V3}/createRoom", json={"room_alias_name": f"{prefix}-other"}, headers=headers),
                     400, "M_EXCLUSIVE")
    # The service itself may: its sender creates a room with an alias of its namespace.
    created = as_request(as_server.url, reg, "POST", f"{V3}/createRoom", json={"room_alias_name": f"{prefix}-mine"})
    assert_ok(created)
    outside = as_request(as_server.url, reg, "POST", f"{V3}/createRoom", json={"room_alias_name": unique_name()})
    assert_error(outside, 400, "M_EXCLUSIVE")


def test_ping(as_server, service, tmp_path):
    reg, fake = service
    path = f"{V1}/appservice/{reg['id']}/ping"
    body = assert_ok(as_request(as_server.url, reg, "POST", path, json={"transaction_id": "ping-1"}))
    assert isinstance(body["duration_ms"], int)
    pings = [r for r in fake.requests if r["path"] == "/_matrix/app/v1/ping"]
    assert pings and pings[-1]["method"] == "POST" and pings[-1]["body"] == {"transaction_id": "ping-1"}
    assert pings[-1]["authorization"] == f"Bearer {reg['hs_token']}"
    fake.status = 500
    failed = assert_error(as_request(as_server.url, reg, "POST", path, json={}), 502, "M_BAD_STATUS")
    assert failed["status"] == 500
    fake.stop()
    assert_error(as_request(as_server.url, reg, "POST", path, json={}), 502, "M_CONNECTION_FAILED")
    assert_error(as_request(as_server.url, reg, "POST", f"{V1}/appservice/other/ping", json={}), 403, "M_FORBIDDEN")
    with make_client(as_server.url) as c:
        user = register(c, unique_name())
        assert_error(c.post(path, json={}, headers=auth_header(user["access_token"])), 401, "M_UNKNOWN_TOKEN")
    # A service without a URL.
    no_url = registration(f"as{secrets.token_hex(3)}", None)
    add_and_wait(as_server.url, as_server.workdir / "state", tmp_path, no_url)
    resp = as_request(as_server.url, no_url, "POST", f"{V1}/appservice/{no_url['id']}/ping", json={})
    assert_error(resp, 400, "M_URL_NOT_SET")
