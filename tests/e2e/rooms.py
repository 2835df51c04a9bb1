"""Room helpers for the end-to-end suite: create rooms, send events, change memberships."""

from __future__ import annotations

import secrets

from conftest import V3, User, assert_ok, path_quote

V1 = "/_matrix/client/v1"


def room_path(room_id: str, *rest: str) -> str:
    return "/".join([f"{V3}/rooms/{path_quote(room_id)}", *(path_quote(r) for r in rest)])


def create_room(user: User, **body) -> str:
    return assert_ok(user.post(f"{V3}/createRoom", json=body))["room_id"]


def send_message(user: User, room_id: str, body: str = "hello", txn: str | None = None, **extra) -> str:
    content = {"msgtype": "m.text", "body": body, **extra}
    resp = user.put(room_path(room_id, "send", "m.room.message", txn or secrets.token_hex(8)), json=content)
    return assert_ok(resp)["event_id"]


def send_state(user: User, room_id: str, event_type: str, content: dict, state_key: str = "") -> str:
    return assert_ok(user.put(room_path(room_id, "state", event_type, state_key), json=content))["event_id"]


def invite(user: User, room_id: str, target: User) -> None:
    assert_ok(user.post(room_path(room_id, "invite"), json={"user_id": target.user_id}))


def join(user: User, room_id: str) -> None:
    assert_ok(user.post(room_path(room_id, "join"), json={}))


def leave(user: User, room_id: str) -> None:
    assert_ok(user.post(room_path(room_id, "leave"), json={}))


def state_event(user: User, room_id: str, event_type: str, state_key: str = "") -> dict:
    return assert_ok(user.get(room_path(room_id, "state", event_type, state_key)))
