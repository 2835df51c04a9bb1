"""What a request costs against the platform's per-invocation limits, read from the
`Server-Timing` header (`COST_HEADERS`, on for the suite), and the relay tree that keeps a
fan-out to many users within them: every member is still woken and pushed to."""

from __future__ import annotations

import re
import threading
import time

from conftest import V3, assert_ok, make_client, register, unique_name, User
from push_gateway import NOTIFY_PATH
from rooms import create_room, join, room_path, send_message

# The suite server's FANOUT_WIDTH: the default.
DEFAULT_FANOUT_WIDTH = 16


def cost(resp) -> dict[str, int]:
    """The counts of a response's `Server-Timing` header: d1 statements and calls, do, fetch."""
    header = resp.headers.get("server-timing", "")
    d1 = re.search(r'd1;desc="(\d+) queries, (\d+) calls"', header)
    do = re.search(r'do;desc="(\d+) calls"', header)
    fetch = re.search(r'fetch;desc="(\d+)"', header)
    assert d1 and do and fetch, f"no cost header: {header!r}"
    return {"d1": int(d1[1]), "d1_calls": int(d1[2]), "do": int(do[1]), "fetch": int(fetch[1])}


def users_on(url: str, count: int) -> list[User]:
    made = []
    for _ in range(count):
        client = make_client(url)
        body = register(client, unique_name())
        made.append(User(client, body["user_id"], body["access_token"], body["device_id"]))
    return made


def test_every_response_says_what_it_cost(user):
    whoami = user.whoami()
    assert cost(whoami) == {"d1": 1, "d1_calls": 1, "do": 0, "fetch": 0}
    room_id = create_room(user)
    sent = user.put(room_path(room_id, "send", "m.room.message", "t1"), json={"msgtype": "m.text", "body": "x"})
    assert_ok(sent)
    assert cost(sent)["do"] == 1, "one call to the room's writer"
    assert cost(user.client.get("/_matrix/client/versions"))["d1"] == 0


def test_a_typing_notice_in_a_big_room_makes_few_calls(user, new_user):
    """The wake-ups of a room's members go through the relay tree: the request's own invocation
    calls at most FANOUT_WIDTH objects, however many members there are."""
    room_id = create_room(user, preset="public_chat")
    for member in [new_user() for _ in range(DEFAULT_FANOUT_WIDTH + 8)]:
        join(member, room_id)
    resp = user.put(room_path(room_id, "typing", user.user_id), json={"typing": True, "timeout": 10_000})
    assert_ok(resp)
    assert cost(resp)["do"] <= DEFAULT_FANOUT_WIDTH


def test_a_message_wakes_every_waiting_member_through_the_tree(narrow_fanout_url):
    """With a width of 2 and 13 members, the wake-ups pass through several levels of relays."""
    owner, *members = users_on(narrow_fanout_url, 13)
    room_id = create_room(owner, preset="public_chat")
    for member in members:
        join(member, room_id)
    quiet = {"set_presence": "offline"}
    since = {m.user_id: assert_ok(m.get(f"{V3}/sync", params={"timeout": 0, **quiet}))["next_batch"]
             for m in members}
    woken: dict[str, list] = {}

    def wait(member: User) -> None:
        # Each sync waits far longer than the test allows: only a wake-up ends it in time.
        token, seen, deadline = since[member.user_id], [], time.monotonic() + 45
        while not seen and time.monotonic() < deadline:
            body = assert_ok(member.get(f"{V3}/sync", params={"since": token, "timeout": 60_000, **quiet},
                                        timeout=90))
            token = body["next_batch"]
            timeline = body.get("rooms", {}).get("join", {}).get(room_id, {}).get("timeline", {}).get("events", [])
            seen = [e["event_id"] for e in timeline]
        woken[member.user_id] = seen

    threads = [threading.Thread(target=wait, args=(m,)) for m in members]
    for t in threads:
        t.start()
    # Let the syncs register their waiters; one that has not yet sees the event on its first read.
    threading.Event().wait(2)
    event_id = send_message(owner, room_id, "to all")
    for t in threads:
        t.join(timeout=90)
    assert sorted(woken) == sorted(m.user_id for m in members)
    for user_id, events in woken.items():
        assert event_id in events, f"{user_id} was not woken with the message: {events}"


def test_a_message_reaches_every_member_s_pusher_through_the_tree(narrow_fanout_url, push_gateway):
    owner, *members = users_on(narrow_fanout_url, 11)
    room_id = create_room(owner, preset="public_chat")
    for i, member in enumerate(members):
        join(member, room_id)
        assert_ok(member.post(f"{V3}/pushers/set", json={
            "kind": "http", "app_id": "org.example.app", "pushkey": f"key-{i}", "app_display_name": "Example",
            "device_display_name": "Phone", "lang": "en", "data": {"url": push_gateway.url}}))
    event_id = send_message(owner, room_id, "ping")
    pushes = push_gateway.wait_for(len(members), timeout=60)
    got = sorted(p.pushkey for p in pushes if p.notification.get("event_id") == event_id)
    assert got == sorted(f"key-{i}" for i in range(len(members)))
    assert all(p.path == NOTIFY_PATH for p in pushes)
