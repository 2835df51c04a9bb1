"""The barrage on the room endpoints: malformed bodies, wrong field types, and malformed room IDs,
aliases, event IDs and path segments. No response is a 5xx, every 4xx is a Matrix error, and the
room is intact afterwards."""

from __future__ import annotations

import json

import pytest

from conftest import V3, assert_ok, describe, error_body, path_quote
from rooms import V1, create_room, room_path, send_message, state_event

# Each endpoint with a well-formed body and its fields' types; {room} and {event} are filled in.
ENDPOINTS = [
    ("POST", f"{V3}/createRoom", {"name": "n", "topic": "t", "preset": "private_chat", "invite": [],
                                  "initial_state": [], "is_direct": False, "room_version": "12",
                                  "creation_content": {}, "power_level_content_override": {}}),
    ("PUT", f"{V3}/rooms/{{room}}/send/m.room.message/{{txn}}", {"msgtype": "m.text", "body": "x"}),
    ("PUT", f"{V3}/rooms/{{room}}/state/m.room.topic/", {"topic": "x"}),
    ("PUT", f"{V3}/rooms/{{room}}/state/m.room.power_levels/", {"users_default": 0}),
    ("PUT", f"{V3}/rooms/{{room}}/redact/{{event}}/{{txn}}", {"reason": "x"}),
    ("POST", f"{V3}/rooms/{{room}}/invite", {"user_id": "@nobody:localhost", "reason": "x"}),
    ("POST", f"{V3}/rooms/{{room}}/kick", {"user_id": "@nobody:localhost", "reason": "x"}),
    ("POST", f"{V3}/rooms/{{room}}/ban", {"user_id": "@nobody:localhost", "reason": "x"}),
    ("POST", f"{V3}/rooms/{{room}}/unban", {"user_id": "@nobody:localhost"}),
    ("POST", f"{V3}/rooms/{{room}}/join", {"reason": "x"}),
    ("POST", f"{V3}/join/{{room}}", {"reason": "x"}),
    ("POST", f"{V3}/knock/{{room}}", {"reason": "x"}),
    ("POST", f"{V3}/rooms/{{room}}/forget", {}),
    ("PUT", f"{V3}/directory/room/{{alias}}", {"room_id": "{room_raw}"}),
    ("POST", f"{V3}/publicRooms", {"limit": 5, "filter": {"generic_search_term": "x"}}),
    ("PUT", f"{V3}/directory/list/room/{{room}}", {"visibility": "private"}),
    ("POST", f"{V3}/rooms/{{room}}/upgrade", {"new_version": "12"}),
]

GETS = [
    f"{V3}/rooms/{{room}}/state", f"{V3}/rooms/{{room}}/state/m.room.name/", f"{V3}/rooms/{{room}}/event/{{event}}",
    f"{V3}/rooms/{{room}}/members", f"{V3}/rooms/{{room}}/joined_members", f"{V3}/rooms/{{room}}/messages",
    f"{V3}/rooms/{{room}}/context/{{event}}", f"{V1}/rooms/{{room}}/relations/{{event}}",
    f"{V1}/rooms/{{room}}/threads", f"{V1}/rooms/{{room}}/timestamp_to_event", f"{V3}/rooms/{{room}}/aliases",
    f"{V3}/directory/room/{{alias}}", f"{V3}/directory/list/room/{{room}}",
]

BAD_BODIES = {
    "truncated": b'{"a": "b',
    "invalid-utf8": b'{"x": "\xff\xfe"}',
    "array": b"[1]",
    "string": b'"text"',
    "null": b"null",
    "deep-nesting": b"[" * 10_000 + b"]" * 10_000,
    "trailing-garbage": b"{} x",
    "duplicate-field": b'{"a": 1, "a": 2}',
    "float": b'{"n": 1.5, "body": "x", "msgtype": "m.text"}',
}
WRONG_TYPES = [42, 1.5, True, None, ["x"], {"x": 1}, "x" * 100_000, "nul\u0000", "\ud800"]
BAD_SEGMENTS = {
    "garbage": "nonsense", "emoji": "%F0%9F%98%80", "nul": "%00", "invalid-utf8": "%FF", "huge": "r" * 4000,
    "sigil-only": "%21", "user-id": "%40a%3Alocalhost", "alias-for-room": "%23a%3Alocalhost",
    "unknown-v2-room": "%21" + "A" * 43, "unknown-v1-room": "%21nothing%3Alocalhost",
}


@pytest.fixture(scope="module")
def target(new_user_module):
    owner = new_user_module()
    room_id = create_room(owner, name="keep me", preset="public_chat")
    survivor = send_message(owner, room_id, "survivor")
    # The barrage's own target (the redact endpoint may well redact it).
    event_id = send_message(owner, room_id, "target")
    return owner, room_id, event_id, survivor


@pytest.fixture(scope="module")
def new_user_module(base_url):
    from conftest import User, make_client, register

    def make():
        client = make_client(base_url)
        account = register(client)
        return User(client=client, user_id=account["user_id"], access_token=account["access_token"],
                    device_id=account["device_id"])

    return make


def check(resp) -> None:
    assert resp.status_code < 500, describe(resp)
    if resp.status_code >= 400:
        body = error_body(resp)
        assert body["errcode"].startswith("M_") and isinstance(body.get("error"), str), describe(resp)


def fill(path: str, room_id: str, event_id: str, n: int, room_segment: str | None = None,
         event_segment: str | None = None) -> str:
    return (path.replace("{room}", room_segment or path_quote(room_id))
            .replace("{event}", event_segment or path_quote(event_id))
            .replace("{alias}", path_quote(f"#barrage-{n}:localhost")).replace("{txn}", f"txn-{n}"))


def cases():
    n = 0
    for method, path, body in ENDPOINTS:
        for label, raw in BAD_BODIES.items():
            n += 1
            yield pytest.param(method, path, raw, None, None, n, id=f"{method} {path} {label}")
        for field in body:
            for i, wrong in enumerate(WRONG_TYPES):
                n += 1
                yield pytest.param(method, path, json.dumps({**body, field: wrong}).encode(), None, None, n,
                                   id=f"{method} {path} {field}-wrong-{i}")
        for label, segment in BAD_SEGMENTS.items():
            n += 1
            if "{room}" in path:
                yield pytest.param(method, path, json.dumps(body).encode(), segment, None, n,
                                   id=f"{method} {path} room-{label}")
            if "{event}" in path:
                yield pytest.param(method, path, json.dumps(body).encode(), None, segment, n,
                                   id=f"{method} {path} event-{label}")
    for path in GETS:
        for label, segment in BAD_SEGMENTS.items():
            n += 1
            if "{room}" in path:
                yield pytest.param("GET", path, None, segment, None, n, id=f"GET {path} room-{label}")
            if "{event}" in path:
                yield pytest.param("GET", path, None, None, segment, n, id=f"GET {path} event-{label}")
        for param in ["from", "to", "limit", "dir", "filter", "at", "ts", "membership", "format", "include"]:
            for i, value in enumerate(["", "x" * 5000, "-1", "99999999999999999999", "{bad"]):
                n += 1
                yield pytest.param("GET", f"{path}?{param}={path_quote(value)}", None, None, None, n,
                                   id=f"GET {path} {param}-{i}")


@pytest.mark.parametrize("method,path,body,room_segment,event_segment,n", list(cases()))
def test_room_barrage(target, method, path, body, room_segment, event_segment, n):
    owner, room_id, event_id, _ = target
    url = fill(path, room_id, event_id, n, room_segment, event_segment)
    if body is not None:
        body = body.replace(b"{room_raw}", room_id.encode())
    check(owner.request(method, url, content=body))


def test_the_room_survived(target):
    owner, room_id, _, survivor = target
    assert state_event(owner, room_id, "m.room.name")["name"] == "keep me"
    assert assert_ok(owner.get(room_path(room_id, "event", survivor)))["content"]["body"] == "survivor"
    send_message(owner, room_id, "still works")


def test_a_bare_sigil_is_no_event_id(target):
    owner, room_id, _, _ = target
    for path in [room_path(room_id, "event", "$"), room_path(room_id, "context", "$"),
                 room_path(room_id, "redact", "$", "t-sigil")]:
        method = "PUT" if "/redact/" in path else "GET"
        resp = owner.request(method, path, json={} if method == "PUT" else None)
        assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_PARAM", resp.text
