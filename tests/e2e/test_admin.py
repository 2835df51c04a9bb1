"""The admin API (Synapse's `/_synapse/admin`): shared-secret registration, users, puppeting,
whois, server notices and registration tokens; and a non-admin refused on every endpoint."""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from admin import ADMIN, SHARED_SECRET, assert_created, create_user, shared_secret_mac, shared_secret_request, user_path
from conftest import (PASSWORD, ROOT, V3, assert_error, assert_ok, assert_token_revoked, assert_uia_challenge, login,
                      login_request, make_client, unique_name)
from rooms import create_room, invite, join, room_path

V1 = "/_matrix/client/v1"
TOKENS = f"{ADMIN}/v1/registration_tokens"
TOKEN_REQUIRED = {"REGISTRATION_REQUIRES_TOKEN": "true", "REGISTRATION_SHARED_SECRET": SHARED_SECRET}


@pytest.fixture
def admin(base_url):
    return create_user(base_url, unique_name("admin"), admin=True)


def test_server_version_needs_no_token(client):
    assert assert_ok(client.get(f"{ADMIN}/v1/server_version"))["server_version"].startswith("Stratus")


def test_shared_secret_registration(client):
    name = unique_name()
    body = assert_ok(shared_secret_request(client, name, admin=True, displayname="First Admin"))
    assert body["user_id"] == f"@{name}:localhost" and body["access_token"] and body["device_id"]
    # A nonce is good once; a wrong MAC or secret is refused.
    nonce = assert_ok(client.get(f"{ADMIN}/v1/register"))["nonce"]
    other = unique_name()
    wrong = {"nonce": nonce, "username": other, "password": PASSWORD, "admin": False,
             "mac": shared_secret_mac(nonce, other, PASSWORD, False, secret="not the secret")}
    assert_error(client.post(f"{ADMIN}/v1/register", json=wrong), 403, "M_FORBIDDEN")
    right = {**wrong, "mac": shared_secret_mac(nonce, other, PASSWORD, False)}
    assert_error(client.post(f"{ADMIN}/v1/register", json=right), 400, "M_UNKNOWN")
    # The name is checked like any registration's.
    assert_error(shared_secret_request(client, name), 400, "M_USER_IN_USE")


def test_non_admins_are_refused_everywhere(user, admin):
    target = user_path(admin.user_id)
    calls = [
        ("GET", f"{ADMIN}/v2/users", None),
        ("GET", target, None),
        ("PUT", target, {"admin": False}),
        ("POST", f"{user_path(admin.user_id, 'v1')}/login", {}),
        ("POST", f"{ADMIN}/v1/deactivate/{admin.user_id}", {}),
        ("POST", f"{ADMIN}/v1/reset_password/{admin.user_id}", {"new_password": "x"}),
        ("GET", f"{ADMIN}/v1/whois/{admin.user_id}", None),
        ("POST", f"{ADMIN}/v1/send_server_notice", {"user_id": admin.user_id, "content": {}}),
        ("GET", f"{ADMIN}/v1/rooms", None),
        ("GET", f"{ADMIN}/v1/rooms/!x:localhost", None),
        ("GET", f"{ADMIN}/v1/rooms/!x:localhost/members", None),
        ("DELETE", f"{ADMIN}/v2/rooms/!x:localhost", {}),
        ("GET", f"{ADMIN}/v2/rooms/!x:localhost/delete_status", None),
        ("GET", f"{ADMIN}/v2/rooms/delete_status/abc", None),
        ("GET", TOKENS, None),
        ("POST", f"{TOKENS}/new", {}),
        ("GET", f"{TOKENS}/abcd", None),
        ("PUT", f"{TOKENS}/abcd", {}),
        ("DELETE", f"{TOKENS}/abcd", None),
    ]
    for method, path, body in calls:
        assert_error(user.request(method, path, json=body), 403, "M_FORBIDDEN")
        assert_error(user.client.request(method, path, json=body), 401, "M_MISSING_TOKEN")
    # The admin itself is fine.
    assert_ok(admin.get(target))


def test_create_modify_and_list_users(admin, client):
    name = unique_name("made")
    user_id = f"@{name}:localhost"
    made = assert_created(admin.put(user_path(user_id), json={
        "password": PASSWORD, "displayname": "Made", "threepids": [{"medium": "email", "address": f"{name}@x.org"}],
        "user_type": "bot"}))
    assert made["name"] == user_id and made["displayname"] == "Made" and made["user_type"] == "bot"
    assert made["admin"] is False and made["deactivated"] is False
    assert [t["address"] for t in made["threepids"]] == [f"{name}@x.org"]
    session = login(client, user_id)
    # Modify: admin flag, type, name; a new password logs out every device.
    changed = assert_ok(admin.put(user_path(user_id), json={"admin": True, "user_type": None, "displayname": "M2",
                                                             "password": "new password"}))
    assert changed["admin"] is True and changed["user_type"] is None and changed["displayname"] == "M2"
    assert_token_revoked(client, session["access_token"])
    login(client, user_id, "new password")
    assert assert_ok(admin.get(user_path(user_id)))["admin"] is True
    assert_error(admin.get(user_path(f"@{unique_name()}:localhost")), 404, "M_NOT_FOUND")
    assert_error(admin.put(user_path(user_id), json={"user_type": "wizard"}), 400, "M_INVALID_PARAM")
    assert_error(admin.put(user_path(admin.user_id), json={"admin": False}), 400)

    # The list: filters by name and admin flag, and pages.
    listed = assert_ok(admin.get(f"{ADMIN}/v2/users", params={"name": name}))
    assert [u["name"] for u in listed["users"]] == [user_id] and listed["total"] == 1
    assert listed["users"][0]["displayname"] == "M2" and listed["users"][0]["erased"] is False
    # `name` also finds display names (as Synapse's); `user_id` looks at the ID only.
    renamed = assert_ok(admin.put(user_path(user_id), json={"displayname": f"Zz {name} Zz"}))
    assert renamed["displayname"] == f"Zz {name} Zz"
    by_display = assert_ok(admin.get(f"{ADMIN}/v2/users", params={"name": f"zz {name.upper()}"}))
    assert [u["name"] for u in by_display["users"]] == [user_id] and by_display["total"] == 1
    assert assert_ok(admin.get(f"{ADMIN}/v2/users", params={"user_id": f"zz {name}"}))["total"] == 0
    assert [u["name"] for u in assert_ok(admin.get(f"{ADMIN}/v2/users", params={"user_id": f"{name}:local"}))["users"]] \
        == [user_id]
    admins = assert_ok(admin.get(f"{ADMIN}/v2/users", params={"admins": "true", "limit": "1000"}))["users"]
    assert {admin.user_id, user_id} <= {u["name"] for u in admins}
    assert all(u["admin"] for u in admins)
    page = assert_ok(admin.get(f"{ADMIN}/v2/users", params={"limit": "1"}))
    assert len(page["users"]) == 1 and page["next_token"] == "1" and page["total"] >= 2
    second = assert_ok(admin.get(f"{ADMIN}/v2/users", params={"limit": "1", "from": page["next_token"]}))
    assert second["users"][0]["name"] > page["users"][0]["name"]


def test_deactivate_and_reset_password(admin, new_user, base_url):
    victim = new_user()
    assert_ok(admin.post(f"{ADMIN}/v1/reset_password/{victim.user_id}", json={"new_password": "reset pw"}))
    assert_token_revoked(victim.client, victim.access_token)
    token = login(victim.client, victim.user_id, "reset pw")["access_token"]
    assert_ok(admin.post(f"{ADMIN}/v1/deactivate/{victim.user_id}", json={"erase": True}))
    assert_token_revoked(victim.client, token)
    assert_error(login_request(victim.client, victim.user_id, "reset pw"), 403, "M_FORBIDDEN")
    assert assert_ok(admin.get(user_path(victim.user_id)))["deactivated"] is True
    # The ID stays taken.
    resp = victim.client.get(f"{V3}/register/available", params={"username": victim.localpart})
    assert_error(resp, 400, "M_USER_IN_USE")


def test_whois_shows_connections(admin, user):
    assert_ok(user.get(f"{V3}/account/whoami", headers={"User-Agent": "whois-test/1.0"}))
    deadline = time.monotonic() + 30
    while True:
        body = assert_ok(admin.get(f"{ADMIN}/v1/whois/{user.user_id}"))
        sessions = body["devices"].get(user.device_id, {}).get("sessions", [])
        connections = sessions[0]["connections"] if sessions else []
        if connections:
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.5)
    assert body["user_id"] == user.user_id
    assert connections[0]["ip"] == user.client.headers["CF-Connecting-IP"]
    assert connections[0]["user_agent"] == "whois-test/1.0"
    assert connections[0]["last_seen"] > 0


def test_puppeting(admin, user):
    token = assert_ok(admin.post(f"{user_path(user.user_id, 'v1')}/login", json={}))["access_token"]
    assert assert_ok(user.whoami(token=token))["user_id"] == user.user_id
    assert_error(admin.post(f"{user_path(admin.user_id, 'v1')}/login", json={}), 400)
    past = int(time.time() * 1000) - 1000
    assert_error(admin.post(f"{user_path(user.user_id, 'v1')}/login", json={"valid_until_ms": past}), 400)


def test_send_server_notice(admin, user):
    content = {"msgtype": "m.text", "body": "Maintenance tonight"}
    first = assert_ok(admin.post(f"{ADMIN}/v1/send_server_notice", json={"user_id": user.user_id, "content": content}))
    invites = assert_ok(user.get(f"{V3}/sync", params={"timeout": "0"}))["rooms"]["invite"]
    assert len(invites) == 1
    room_id = next(iter(invites))
    join(user, room_id)
    second = assert_ok(admin.post(f"{ADMIN}/v1/send_server_notice", json={"user_id": user.user_id, "content": content}))
    events = assert_ok(user.get(room_path(room_id, "messages"), params={"dir": "b"}))["chunk"]
    ids = [e["event_id"] for e in events if e["type"] == "m.room.message"]
    assert ids == [second["event_id"], first["event_id"]]
    assert all(e["sender"] == "@notices:localhost" for e in events if e["type"] == "m.room.message")
    tags = assert_ok(user.get(f"{V3}/user/{user.user_id}/rooms/{room_id}/tags"))["tags"]
    assert "m.server_notice" in tags
    assert_error(user.put(room_path(room_id, "send", "m.room.message", "t"), json={"body": "x"}), 403, "M_FORBIDDEN")
    assert_error(admin.post(f"{ADMIN}/v1/send_server_notice", json={"user_id": "@nobody-x:localhost",
                                                                   "content": content}), 404, "M_NOT_FOUND")


def test_registration_tokens_admin(admin):
    made = assert_ok(admin.post(f"{TOKENS}/new", json={"uses_allowed": 2, "length": 20}))
    assert len(made["token"]) == 20 and made["uses_allowed"] == 2 and made["pending"] == 0
    named = assert_ok(admin.post(f"{TOKENS}/new", json={"token": f"tok-{unique_name()}"}))
    assert named["uses_allowed"] is None and named["expiry_time"] is None
    assert_error(admin.post(f"{TOKENS}/new", json={"token": named["token"]}), 400, "M_INVALID_PARAM")
    assert_error(admin.post(f"{TOKENS}/new", json={"token": "bad token!"}), 400, "M_INVALID_PARAM")
    assert_error(admin.post(f"{TOKENS}/new", json={"length": 65}), 400, "M_INVALID_PARAM")
    assert_error(admin.post(f"{TOKENS}/new", json={"expiry_time": 1000}), 400, "M_INVALID_PARAM")
    assert assert_ok(admin.get(f"{TOKENS}/{made['token']}")) == made
    updated = assert_ok(admin.put(f"{TOKENS}/{made['token']}", json={"uses_allowed": 0}))
    assert updated["uses_allowed"] == 0
    invalid = [t["token"] for t in assert_ok(admin.get(TOKENS, params={"valid": "false"}))["registration_tokens"]]
    valid = [t["token"] for t in assert_ok(admin.get(TOKENS, params={"valid": "true"}))["registration_tokens"]]
    assert made["token"] in invalid and named["token"] in valid
    assert_ok(admin.delete(f"{TOKENS}/{made['token']}"))
    assert_error(admin.get(f"{TOKENS}/{made['token']}"), 404, "M_NOT_FOUND")
    assert_error(admin.delete(f"{TOKENS}/{made['token']}"), 404, "M_NOT_FOUND")


def test_registration_requires_a_token(server_factory):
    url = server_factory(**TOKEN_REQUIRED)
    admin = create_user(url, unique_name("admin"), admin=True)
    token = assert_ok(admin.post(f"{TOKENS}/new", json={"uses_allowed": 1}))["token"]
    with make_client(url) as client:
        validity = f"{V1}/register/m.login.registration_token/validity"
        assert assert_ok(client.get(validity, params={"token": token}))["valid"] is True
        assert assert_ok(client.get(validity, params={"token": "nope"}))["valid"] is False

        def register_with(token_value: str, by=client) -> tuple:
            body = {"username": unique_name(), "password": PASSWORD}
            session = assert_uia_challenge(by.post(f"{V3}/register", json=body),
                                           ["m.login.registration_token", "m.login.dummy"])["session"]
            stage = {"type": "m.login.registration_token", "token": token_value, "session": session}
            return body, session, by.post(f"{V3}/register", json={**body, "auth": stage})

        # A wrong token is refused in the challenge; a right one is counted only at completion.
        _, _, resp = register_with("nope")
        assert resp.status_code == 401 and resp.json()["errcode"] == "M_UNAUTHORIZED", resp.text
        body, session, resp = register_with(token)
        assert resp.status_code == 401 and resp.json()["completed"] == ["m.login.registration_token"], resp.text
        info = assert_ok(admin.get(f"{TOKENS}/{token}"))
        assert info["pending"] == 1 and info["completed"] == 0
        # The pending registration holds the only use, as in Synapse: nobody else may start with
        # the token meanwhile, and it is not listed as valid.
        with make_client(url) as elsewhere:  # registrations and checks are rate-limited per address
            assert assert_ok(elsewhere.get(validity, params={"token": token}))["valid"] is False
            _, _, resp = register_with(token, elsewhere)
            assert resp.status_code == 401 and resp.json()["errcode"] == "M_UNAUTHORIZED", resp.text
        listed = assert_ok(admin.get(TOKENS, params={"valid": "true"}))["registration_tokens"]
        assert token not in [t["token"] for t in listed]
        assert token in [t["token"] for t in assert_ok(admin.get(TOKENS, params={"valid": "false"}))["registration_tokens"]]
        done = client.post(f"{V3}/register", json={**body, "auth": {"type": "m.login.dummy", "session": session}})
        assert_ok(done)
        info = assert_ok(admin.get(f"{TOKENS}/{token}"))
        assert info["pending"] == 0 and info["completed"] == 1
        # Spent: 401 M_UNAUTHORIZED.
        assert assert_ok(client.get(validity, params={"token": token}))["valid"] is False
        _, _, resp = register_with(token)
        assert resp.status_code == 401 and resp.json()["errcode"] == "M_UNAUTHORIZED", resp.text


def test_rooms(admin, new_user):
    owner, guest = new_user(), new_user()
    tag = unique_name("room")
    big = create_room(owner, name=f"{tag} b", room_alias_name=tag)
    small = create_room(owner, name=f"{tag} a")
    invite(owner, big, guest)
    join(guest, big)
    listed = assert_ok(admin.get(f"{ADMIN}/v1/rooms", params={"search_term": tag}))
    assert listed["total_rooms"] == 2 and listed["offset"] == 0
    assert [r["room_id"] for r in listed["rooms"]] == [small, big]
    first = listed["rooms"][1]
    assert first["name"] == f"{tag} b" and first["canonical_alias"] == f"#{tag}:localhost"
    assert first["joined_members"] == 2 and first["creator"] == owner.user_id and first["public"] is False
    assert first["join_rules"] == "invite" and first["state_events"] > 0
    by_members = assert_ok(admin.get(f"{ADMIN}/v1/rooms", params={"search_term": tag, "order_by": "joined_members",
                                                                   "dir": "b"}))
    assert [r["room_id"] for r in by_members["rooms"]] == [big, small]
    page = assert_ok(admin.get(f"{ADMIN}/v1/rooms", params={"search_term": tag, "limit": "1"}))
    assert len(page["rooms"]) == 1 and page["next_batch"] == 1
    assert_error(admin.get(f"{ADMIN}/v1/rooms", params={"order_by": "nonsense"}), 400, "M_INVALID_PARAM")
    details = assert_ok(admin.get(f"{ADMIN}/v1/rooms/{big}"))
    assert details["room_id"] == big and details["joined_members"] == 2
    members = assert_ok(admin.get(f"{ADMIN}/v1/rooms/{big}/members"))
    assert sorted(members["members"]) == sorted([owner.user_id, guest.user_id]) and members["total"] == 2
    assert_error(admin.get(f"{ADMIN}/v1/rooms/!missing:localhost"), 404, "M_NOT_FOUND")


def test_the_admin_command_creates_an_admin(base_url, client):
    name = unique_name("cmd")
    env = {**os.environ, "REGISTRATION_SHARED_SECRET": SHARED_SECRET}
    done = subprocess.run([str(ROOT / "scripts" / "admin"), "create-user", name, "--admin", "--password", "pw 1",
                           "--url", base_url], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"@{name}:localhost" in done.stdout
    token = login(client, f"@{name}:localhost", "pw 1")["access_token"]
    assert_ok(client.get(f"{ADMIN}/v2/users/@{name}:localhost", headers={"Authorization": f"Bearer {token}"}))
    env["REGISTRATION_SHARED_SECRET"] = "wrong"
    refused = subprocess.run([str(ROOT / "scripts" / "admin"), "create-user", unique_name(), "--password", "x",
                              "--url", base_url], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "HMAC incorrect" in refused.stderr


def wait_for_deletion(admin, delete_id: str, members: list[str], timeout: float = 180) -> dict:
    """Polls a deletion's status until it ends; every report on the way must be truthful: only
    members of the room, the ones that left growing and never counted twice."""
    deadline = time.monotonic() + timeout
    kicked_before: set[str] = set()
    while True:
        status = assert_ok(admin.get(f"{ADMIN}/v2/rooms/delete_status/{delete_id}"))
        kicked = status["shutdown_room"]["kicked_users"]
        assert len(kicked) == len(set(kicked)) and set(kicked) <= set(members), status
        assert kicked_before <= set(kicked), "a member who left was forgotten"
        kicked_before = set(kicked)
        if status["status"] != "shutting_down":
            return status
        assert time.monotonic() < deadline, f"still shutting down after {timeout} s: {status}"
        time.sleep(0.5)


def test_delete_room(admin, new_user):
    owner, member = new_user(), new_user()
    alias = unique_name("doomed")
    room_id = create_room(owner, room_alias_name=alias, preset="public_chat")
    join(member, room_id)
    assert_error(member.delete(f"{ADMIN}/v2/rooms/{room_id}"), 403, "M_FORBIDDEN")
    delete_id = assert_ok(admin.delete(f"{ADMIN}/v2/rooms/{room_id}", json={"block": True}))["delete_id"]
    # Blocked before the answer, whatever is left to do.
    assert_error(new_user().post(f"{V3}/rooms/{room_id}/join", json={}), 403, "M_FORBIDDEN")
    status = wait_for_deletion(admin, delete_id, [owner.user_id, member.user_id])
    assert status["status"] == "complete" and status["room_id"] == room_id and "error" not in status
    shutdown = status["shutdown_room"]
    assert sorted(shutdown["kicked_users"]) == sorted([owner.user_id, member.user_id])
    assert shutdown["failed_to_kick_users"] == [] and shutdown["local_aliases"] == [f"#{alias}:localhost"]
    by_room = assert_ok(admin.get(f"{ADMIN}/v2/rooms/{room_id}/delete_status"))["results"]
    assert [r["delete_id"] for r in by_room] == [delete_id]
    # Gone: no member, no alias, not listed, and nobody may join it again.
    assert room_id not in assert_ok(owner.get(f"{V3}/joined_rooms"))["joined_rooms"]
    assert_error(owner.get(f"{V3}/directory/room/%23{alias}:localhost"), 404, "M_NOT_FOUND")
    assert_error(admin.get(f"{ADMIN}/v1/rooms/{room_id}"), 404, "M_NOT_FOUND")
    assert_error(member.post(f"{V3}/rooms/{room_id}/join", json={}), 403, "M_FORBIDDEN")
    assert_error(admin.get(f"{ADMIN}/v2/rooms/delete_status/nope"), 404, "M_NOT_FOUND")


def test_client_server_whois_is_for_the_user_itself_or_an_admin(admin, user, new_user):
    assert_ok(user.get(f"{V3}/account/whoami"))
    path = f"{V3}/admin/whois/{user.user_id}"
    for reader in [user, admin]:
        # The connection is written after the response: wait for it.
        for _ in range(50):
            body = assert_ok(reader.get(path))
            if user.device_id in body["devices"]:
                break
            time.sleep(0.2)
        assert body["user_id"] == user.user_id
        connection = body["devices"][user.device_id]["sessions"][0]["connections"][0]
        assert {"ip", "last_seen", "user_agent"} <= connection.keys()
    assert_error(new_user().get(path), 403, "M_FORBIDDEN")
def test_delete_a_room_of_many_members(admin, new_user):
    """More members than one request could make leave: the deletion goes on in the background,
    a batch at a time, and its status says so until everyone has left."""
    owner = new_user()
    room_id = create_room(owner, preset="public_chat")
    with ThreadPoolExecutor(max_workers=3) as pool:
        members = list(pool.map(lambda _: new_user(), range(64)))
        list(pool.map(lambda m: join(m, room_id), members))
    everyone = [owner.user_id] + [m.user_id for m in members]
    listed = assert_ok(admin.get(f"{ADMIN}/v1/rooms/{room_id}/members"))
    assert listed["total"] == 65
    delete_id = assert_ok(admin.delete(f"{ADMIN}/v2/rooms/{room_id}", json={"purge": False}))["delete_id"]
    status = wait_for_deletion(admin, delete_id, everyone)
    assert status["status"] == "complete", status
    assert sorted(status["shutdown_room"]["kicked_users"]) == sorted(everyone)
    assert status["shutdown_room"]["failed_to_kick_users"] == []
    # Not purged: the room is still there, with nobody in it, and each member's leave is its own.
    assert assert_ok(admin.get(f"{ADMIN}/v1/rooms/{room_id}/members"))["total"] == 0
    assert room_id not in assert_ok(members[-1].get(f"{V3}/joined_rooms"))["joined_rooms"]
    own = assert_ok(members[0].get(room_path(room_id, "state", "m.room.member", members[0].user_id)))
    assert own["membership"] == "leave"
