"""Paging through rooms: `GET /rooms/{roomId}/messages`, `/context/{eventId}` and
`/timestamp_to_event`, with filters, tokens and history visibility."""

import json
import time

import pytest

from conftest import assert_error, assert_ok, path_quote
from rooms import V1, create_room, invite, join, leave, room_path, send_message, send_state


def set_visibility(user, room_id, value) -> str:
    return send_state(user, room_id, "m.room.history_visibility", {"history_visibility": value})


def messages(user, room_id, **params):
    if "filter" in params and not isinstance(params["filter"], str):
        params["filter"] = json.dumps(params["filter"])
    return user.get(room_path(room_id, "messages"), params=params)


def page(user, room_id, **params) -> dict:
    body = assert_ok(messages(user, room_id, **params))
    assert isinstance(body["chunk"], list) and isinstance(body["start"], str), body
    return body


def walk(user, room_id, dir="b", limit=3, max_pages=100, **params) -> list[dict]:
    """Every event from `from` (or the end `dir` starts at) on, following `end` until it is
    omitted; checks that each `start` is the `from` it was given."""
    events, token = [], params.pop("from", None)
    for _ in range(max_pages):
        query = {"dir": dir, "limit": limit, **params}
        if token is not None:
            query["from"] = token
        body = page(user, room_id, **query)
        if token is not None:
            assert body["start"] == token
        assert len(body["chunk"]) <= limit
        events += body["chunk"]
        if "end" not in body:
            return events
        token = body["end"]
    pytest.fail("pagination did not end")


def ids(events) -> list[str]:
    return [e["event_id"] for e in events]


def timestamp_to_event(user, room_id, ts, dir):
    return user.get(f"{V1}/rooms/{path_quote(room_id)}/timestamp_to_event", params={"ts": ts, "dir": dir})


def context(user, room_id, event_id, **params):
    if "filter" in params and not isinstance(params["filter"], str):
        params["filter"] = json.dumps(params["filter"])
    return user.get(room_path(room_id, "context", event_id), params=params)


# ---------------------------------------------------------------------------------------------
# /messages: pagination


def test_pages_backward_and_forward_cover_the_room_exactly_once(user):
    room_id = create_room(user)
    sent = [send_message(user, room_id, f"m{i}") for i in range(7)]
    backward = walk(user, room_id, dir="b", limit=3)
    forward = walk(user, room_id, dir="f", limit=4)
    assert ids(backward) == list(reversed(ids(forward))), "the same events, in opposite orders"
    assert ids(forward)[-7:] == sent
    assert forward[0]["type"] == "m.room.create"
    assert len(set(ids(forward))) == len(forward)
    for e in forward:
        assert e["room_id"] == room_id
        assert {"event_id", "sender", "type", "content", "origin_server_ts", "unsigned"} <= e.keys()
        for internal in ["depth", "prev_events", "auth_events", "hashes", "signatures"]:
            assert internal not in e


def test_the_live_end_start_token_and_end_omitted(user):
    room_id = create_room(user)
    first = send_message(user, room_id, "one")
    second = send_message(user, room_id, "two")
    body = page(user, room_id, dir="b", limit=2)
    assert ids(body["chunk"]) == [second, first]
    assert "end" in body, "the creation events are still ahead"
    # Resuming from `end`, and forward from `start`: nothing newer yet.
    newer = page(user, room_id, dir="f", **{"from": body["start"]})
    assert newer["chunk"] == [] and "end" not in newer
    third = send_message(user, room_id, "three")
    newer = page(user, room_id, dir="f", **{"from": body["start"]})
    # Forward to the live end, `end` is where to continue once more come (as Synapse's).
    assert ids(newer["chunk"]) == [third] and "end" in newer
    latest = page(user, room_id, dir="f", **{"from": newer["end"]})
    assert latest["chunk"] == [] and "end" not in latest
    fourth = send_message(user, room_id, "four")
    assert ids(page(user, room_id, dir="f", **{"from": newer["end"]})["chunk"]) == [fourth]
    # A limit as large as the rest of the room ends it.
    everything = page(user, room_id, dir="b", limit=1000)
    assert "end" not in everything
    assert everything["chunk"][-1]["type"] == "m.room.create"


def test_to_bounds_a_page_in_both_directions(user):
    room_id = create_room(user)
    sent = [send_message(user, room_id, f"m{i}") for i in range(6)]
    # Tokens around sent[1] and sent[4], from /context.
    low = assert_ok(context(user, room_id, sent[1], limit=0))["end"]  # just after sent[1]
    high = assert_ok(context(user, room_id, sent[4], limit=0))["end"]  # just after sent[4]
    forward = page(user, room_id, dir="f", limit=10, **{"from": low, "to": high})
    assert ids(forward["chunk"]) == sent[2:5]
    assert "end" not in forward
    backward = page(user, room_id, dir="b", limit=10, **{"from": high, "to": low})
    assert ids(backward["chunk"]) == list(reversed(sent[2:5]))
    # `to` on the wrong side of `from` is an empty range.
    assert page(user, room_id, dir="f", **{"from": high, "to": low})["chunk"] == []
    # With a small limit, `end` continues up to `to` and no further.
    steps = walk(user, room_id, dir="f", limit=2, **{"from": low, "to": high})
    assert ids(steps) == sent[2:5]


def test_limit_zero_and_the_cap(user):
    room_id = create_room(user)
    send_message(user, room_id)
    body = page(user, room_id, dir="b", limit=0)
    assert body["chunk"] == [] and body["end"] == body["start"]
    assert page(user, room_id, dir="b", limit=100000)["chunk"], "a huge limit is capped, not refused"


@pytest.mark.parametrize("params,errcode", [
    ({}, "M_MISSING_PARAM"),
    ({"dir": "x"}, "M_INVALID_PARAM"),
    ({"dir": "b", "from": "nonsense"}, "M_INVALID_PARAM"),
    ({"dir": "b", "from": "s"}, "M_INVALID_PARAM"),
    ({"dir": "b", "from": "s-4"}, "M_INVALID_PARAM"),
    ({"dir": "f", "to": "t12-4"}, "M_INVALID_PARAM"),
    ({"dir": "b", "limit": "ten"}, "M_INVALID_PARAM"),
    ({"dir": "b", "limit": "-1"}, "M_INVALID_PARAM"),
    ({"dir": "b", "filter": "{not json"}, "M_NOT_JSON"),
    ({"dir": "b", "filter": '{"types": "m.room.message"}'}, "M_BAD_JSON"),
    ({"dir": "b", "filter": "[]"}, "M_BAD_JSON"),
    ({"dir": "b", "filter": '{"limit": 0}'}, "M_BAD_JSON"),
])
def test_bad_parameters(user, params, errcode):
    room_id = create_room(user)
    assert_error(messages(user, room_id, **params), 400, errcode)


def test_unknown_and_malformed_rooms(user):
    assert_error(messages(user, "!nowhere:localhost", dir="b"), 404, "M_NOT_FOUND")
    assert_error(messages(user, "not-a-room", dir="b"), 400, "M_INVALID_PARAM")


# ---------------------------------------------------------------------------------------------
# /messages: filters


def test_type_and_sender_filters(user, new_user):
    room_id = create_room(user, preset="public_chat")
    bob = new_user()
    join(bob, room_id)
    mine = send_message(user, room_id, "mine")
    his = send_message(bob, room_id, "his")
    topic = send_state(user, room_id, "m.room.topic", {"topic": "t"})
    custom = assert_ok(user.put(room_path(room_id, "send", "org.example.ping", "p1"), json={}))["event_id"]

    def chunk(flt, **params):
        query = {"dir": "b", "filter": flt, **params}
        if "limit" not in query and "limit" not in flt:
            query["limit"] = 50
        return ids(page(user, room_id, **query)["chunk"])

    assert chunk({"types": ["m.room.message"]}) == [his, mine]
    assert chunk({"types": ["org.example.*"]}) == [custom]
    assert chunk({"types": ["m.room.*"], "not_types": ["m.room.member", "m.room.message"]})[0] == topic
    assert custom not in chunk({"types": ["m.room.*"]})
    assert chunk({"types": ["m.room.message"], "senders": [bob.user_id]}) == [his]
    assert chunk({"types": ["m.room.message"], "not_senders": [bob.user_id]}) == [mine]
    assert chunk({"senders": [bob.user_id], "not_senders": [bob.user_id]}) == [], "not_senders wins"
    assert chunk({"types": []}) == []
    assert chunk({"rooms": ["!elsewhere:localhost"]}) == []
    assert chunk({"not_rooms": [room_id]}) == []
    assert chunk({"rooms": [room_id], "types": ["m.room.message"]}) == [his, mine]
    # The filter's limit applies when the query has none; the query's wins.
    assert len(chunk({"limit": 2})) == 2
    assert len(chunk({"limit": 2}, limit=3)) == 3
    # Many senders are fine (the list is not spelled out as SQL parameters).
    many = [f"@u{i}:localhost" for i in range(300)] + [bob.user_id]
    assert chunk({"senders": many, "types": ["m.room.message"]}) == [his]


def test_type_filters_on_types_longer_than_a_glob_may_be(user):
    """D1 refuses GLOB and LIKE patterns over 50 bytes; `*` matches any run of characters, and
    every other character, `[`, `?`, `%` and `_` included, only itself."""
    room_id = create_room(user)
    long = "org.example." + "a" * 60 + ".event"
    odd = "org.example.[x]?%_." + "b" * 40

    def send(event_type):
        return assert_ok(user.put(room_path(room_id, "send", event_type, event_type[-30:] + "t"), json={}))["event_id"]

    first, second, third = send(long), send(long + ".more"), send(odd)

    def chunk(**flt):
        return set(ids(page(user, room_id, dir="b", limit=50, filter=flt)["chunk"]))

    assert chunk(types=[long]) == {first}
    assert chunk(types=[long + "*"]) == {first, second}
    assert chunk(types=["*" + long[1:]]) == {first}
    assert chunk(types=["org.example.*a.event*"]) == {first, second}
    assert chunk(types=["org.*.example.*"]) == set()
    assert chunk(types=["o*g.ex*" + "a" * 60 + "*.event*m*e"]) == {second}
    assert chunk(types=[odd]) == {third}
    assert chunk(types=["org.example.[x]?%_.*"]) == {third}
    assert chunk(types=["org.example.x?%_.*", "org.example.[x]x%_.*", "org.example.[x]?x_.*"]) == set()
    assert chunk(types=["org.example.*"], not_types=[long + "*", odd]) == set()
    assert chunk(types=["org.example.*"], not_types=["*.more"]) == {first, third}


def test_contains_url_filter(user):
    room_id = create_room(user)
    plain = send_message(user, room_id, "text")
    image = send_message(user, room_id, "pic", msgtype="m.image", url="mxc://localhost/abc")
    with_url = ids(page(user, room_id, dir="b", filter={"contains_url": True})["chunk"])
    assert with_url == [image]
    without = ids(page(user, room_id, dir="b", limit=50, filter={"contains_url": False})["chunk"])
    assert plain in without and image not in without
    # A redacted event has no url any more.
    assert_ok(user.put(room_path(room_id, "redact", image, "r1"), json={}))
    assert page(user, room_id, dir="b", filter={"contains_url": True, "types": ["m.room.message"]})["chunk"] == []


def test_lazy_loading_members_returns_the_senders_membership(user, new_user):
    room_id = create_room(user, preset="public_chat")
    bob, carol = new_user(), new_user()
    join(bob, room_id)
    join(carol, room_id)
    send_message(bob, room_id, "from bob")
    send_message(user, room_id, "from alice")
    body = page(user, room_id, dir="b", limit=2, filter={"lazy_load_members": True, "include_redundant_members": True})
    state = {e["state_key"]: e for e in body["state"]}
    assert set(state) == {bob.user_id, user.user_id}, "carol sent nothing in this chunk"
    assert all(e["type"] == "m.room.member" and e["content"]["membership"] == "join" for e in state.values())
    # Without lazy loading there is no state.
    assert "state" not in page(user, room_id, dir="b", limit=2)


# ---------------------------------------------------------------------------------------------
# /messages: what is served


def test_redacted_events_are_served_redacted(user):
    room_id = create_room(user)
    secret = send_message(user, room_id, "secret")
    redaction = assert_ok(user.put(room_path(room_id, "redact", secret, "r"), json={"reason": "oops"}))["event_id"]
    chunk = page(user, room_id, dir="b", limit=5)["chunk"]
    served = next(e for e in chunk if e["event_id"] == secret)
    assert served["content"] == {}
    assert served["unsigned"]["redacted_because"]["event_id"] == redaction
    assert served["unsigned"]["redacted_because"]["content"]["reason"] == "oops"
    assert "secret" not in json.dumps(chunk)
    ctx = assert_ok(context(user, room_id, secret))
    assert ctx["event"]["content"] == {} and ctx["event"]["unsigned"]["redacted_because"]["event_id"] == redaction
    assert any(e["event_id"] == redaction and e["type"] == "m.room.redaction" for e in ctx["events_after"])


def test_transaction_id_only_for_the_sending_device(user, new_user):
    room_id = create_room(user, preset="public_chat")
    bob = new_user()
    join(bob, room_id)
    event_id = send_message(user, room_id, "hi", txn="my-txn")

    def served(reader, token=None):
        chunk = assert_ok(reader.get(room_path(room_id, "messages"), token=token, params={"dir": "b"}))["chunk"]
        return next(e for e in chunk if e["event_id"] == event_id)

    assert served(user)["unsigned"]["transaction_id"] == "my-txn"
    assert "transaction_id" not in served(bob)["unsigned"]
    assert "transaction_id" not in served(user, token=user.login()["access_token"])["unsigned"]


# ---------------------------------------------------------------------------------------------
# History visibility


def scenario(user, new_user, visibility):
    """Alice's room under `visibility`: `before` sent before Bob's invite, `invited` while he is
    invited, `joined` after he joined. Returns (room, bob, events)."""
    room_id = create_room(user, preset="private_chat")
    bob = new_user()
    setting = set_visibility(user, room_id, visibility)
    before = send_message(user, room_id, "before the invite")
    invite(user, room_id, bob)
    invited = send_message(user, room_id, "while invited")
    join(bob, room_id)
    joined = send_message(user, room_id, "after the join")
    return room_id, bob, {"setting": setting, "before": before, "invited": invited, "joined": joined}


@pytest.mark.parametrize("visibility,seen", [
    ("shared", {"setting", "before", "invited", "joined"}),
    ("invited", {"setting", "invited", "joined"}),
    ("joined", {"setting", "joined"}),
    ("world_readable", {"setting", "before", "invited", "joined"}),
])
def test_a_later_joiner_sees_what_the_visibility_allows(user, new_user, visibility, seen):
    room_id, bob, events = scenario(user, new_user, visibility)
    visible = set(ids(walk(bob, room_id, dir="b", limit=4)))
    for name, event_id in events.items():
        assert (event_id in visible) == (name in seen), (visibility, name)
        resp = bob.get(room_path(room_id, "event", event_id))
        if name in seen:
            assert assert_ok(resp)["event_id"] == event_id
            assert assert_ok(context(bob, room_id, event_id))["event"]["event_id"] == event_id
        else:
            assert_error(resp, 404, "M_NOT_FOUND")
            assert_error(context(bob, room_id, event_id), 404, "M_NOT_FOUND")
    # His own invite and join are his to see, whatever the setting.
    own = [e for e in walk(bob, room_id, dir="f", limit=4) if e.get("state_key") == bob.user_id]
    assert [e["content"]["membership"] for e in own] == ["invite", "join"]
    # Alice sees everything.
    assert set(events.values()) <= set(ids(walk(user, room_id, dir="b", limit=10)))


@pytest.mark.parametrize("visibility", ["shared", "invited", "joined"])
def test_an_invitee_may_not_read_yet(user, new_user, visibility):
    room_id = create_room(user, preset="private_chat")
    set_visibility(user, room_id, visibility)
    bob = new_user()
    invite(user, room_id, bob)
    assert_error(messages(bob, room_id, dir="b"), 403, "M_FORBIDDEN")


@pytest.mark.parametrize("visibility", ["shared", "invited", "joined"])
def test_a_departed_user_sees_up_to_their_leave(user, new_user, visibility):
    room_id = create_room(user, preset="public_chat")
    set_visibility(user, room_id, visibility)
    bob = new_user()
    join(bob, room_id)
    during = send_message(user, room_id, "while bob is here")
    leave(bob, room_id)
    after = send_message(user, room_id, "after bob left")
    backward = walk(bob, room_id, dir="b", limit=2)
    assert backward[0]["state_key"] == bob.user_id and backward[0]["content"]["membership"] == "leave"
    assert during in ids(backward) and after not in ids(backward)
    forward = walk(bob, room_id, dir="f", limit=2)
    assert ids(forward) == list(reversed(ids(backward)))
    assert ids(forward)[-1] == backward[0]["event_id"], "forward paging ends at the leave"
    assert_error(bob.get(room_path(room_id, "event", after)), 404, "M_NOT_FOUND")
    ctx = assert_ok(context(bob, room_id, during))
    assert after not in ids(ctx["events_after"])
    # Rejoining shows what was sent while away only where the visibility allows it.
    join(bob, room_id)
    visible = ids(walk(bob, room_id, dir="b", limit=5))
    assert (after in visible) == (visibility == "shared")


def test_a_forgotten_room_is_closed(user, new_user):
    room_id = create_room(user, preset="public_chat")
    bob = new_user()
    join(bob, room_id)
    leave(bob, room_id)
    assert page(bob, room_id, dir="b")["chunk"]
    assert_ok(bob.post(room_path(room_id, "forget"), json={}))
    assert_error(messages(bob, room_id, dir="b"), 403, "M_FORBIDDEN")


def test_non_members_of_a_shared_room_are_refused(user, new_user):
    room_id = create_room(user, preset="public_chat")
    event_id = send_message(user, room_id, "members only")
    stranger = new_user()
    assert_error(messages(stranger, room_id, dir="b"), 403, "M_FORBIDDEN")
    assert_error(context(stranger, room_id, event_id), 403, "M_FORBIDDEN")
    assert_error(timestamp_to_event(stranger, room_id, 0, "f"), 403, "M_FORBIDDEN")


def test_world_readable_history_is_open_to_non_members_and_guests(user, new_user, guest):
    room_id = create_room(user, preset="public_chat")
    shared = send_message(user, room_id, "shared era")
    opened = set_visibility(user, room_id, "world_readable")
    public = send_message(user, room_id, "world readable era")
    stranger = new_user()
    for reader in [stranger, guest]:
        visible = ids(walk(reader, room_id, dir="b", limit=2))
        assert visible == [public, opened], "only the world readable part, the switch included"
        assert shared not in visible
        assert assert_ok(context(reader, room_id, public))["events_before"][0]["event_id"] == opened
    # Closing it again locks non-members out ...
    closed = set_visibility(user, room_id, "joined")
    private = send_message(user, room_id, "joined era")
    assert_error(messages(stranger, room_id, dir="b"), 403, "M_FORBIDDEN")
    # ... and reopening shows the world readable parts and both switches, not what was between.
    reopened = set_visibility(user, room_id, "world_readable")
    visible = ids(walk(stranger, room_id, dir="f", limit=2))
    assert visible == [opened, public, closed, reopened]
    assert private not in visible
    assert_error(stranger.get(room_path(room_id, "event", private)), 404, "M_NOT_FOUND")


# ---------------------------------------------------------------------------------------------
# /context


def test_context_around_an_event(user):
    room_id = create_room(user, name="Context room")
    sent = [send_message(user, room_id, f"m{i}") for i in range(9)]
    body = assert_ok(context(user, room_id, sent[4], limit=4))
    assert body["event"]["event_id"] == sent[4]
    assert ids(body["events_before"]) == [sent[3], sent[2]], "reverse chronological"
    assert ids(body["events_after"]) == [sent[5], sent[6]]
    names = [e for e in body["state"] if e["type"] == "m.room.name"]
    assert names and names[0]["content"]["name"] == "Context room"
    # The tokens continue with /messages on either side.
    older = page(user, room_id, dir="b", limit=2, **{"from": body["start"]})
    assert ids(older["chunk"]) == [sent[1], sent[0]]
    newer = page(user, room_id, dir="f", limit=10, **{"from": body["end"]})
    assert ids(newer["chunk"]) == sent[7:]
    # limit=0: the event alone, still with tokens.
    alone = assert_ok(context(user, room_id, sent[4], limit=0))
    assert alone["events_before"] == [] and alone["events_after"] == []
    assert ids(page(user, room_id, dir="b", limit=1, **{"from": alone["start"]})["chunk"]) == [sent[3]]
    # The default limit is 10: five before and five after, when there are enough.
    default = assert_ok(context(user, room_id, sent[4]))
    assert len(default["events_before"]) == 5 and ids(default["events_after"]) == sent[5:]


def test_context_filter_and_lazy_loading(user, new_user):
    room_id = create_room(user, preset="public_chat")
    bob = new_user()
    join(bob, room_id)
    a = send_message(user, room_id, "a")
    b = send_message(bob, room_id, "b")
    anchor = send_state(user, room_id, "m.room.topic", {"topic": "anchor"})
    c = send_message(bob, room_id, "c")
    flt = {"types": ["m.room.message"], "lazy_load_members": True}
    body = assert_ok(context(user, room_id, anchor, filter=flt, limit=4))
    assert body["event"]["event_id"] == anchor, "the filter does not apply to the event itself"
    assert ids(body["events_before"]) == [b, a]
    assert ids(body["events_after"]) == [c]
    # The state is filtered too, and lazily loaded: the members who sent these events.
    assert body["state"] == [], "no m.room.member passes a types filter of m.room.message"
    body = assert_ok(context(user, room_id, anchor, filter={"lazy_load_members": True}, limit=2))
    assert {e["state_key"] for e in body["state"]} == {user.user_id, bob.user_id}
    assert all(e["type"] == "m.room.member" for e in body["state"])


def test_context_errors(user, new_user):
    room_id = create_room(user)
    other_room = create_room(user)
    elsewhere = send_message(user, other_room, "elsewhere")
    assert_error(context(user, room_id, "$nothere"), 404, "M_NOT_FOUND")
    assert_error(context(user, room_id, elsewhere), 404, "M_NOT_FOUND")
    assert_error(context(user, room_id, "not-an-id"), 400, "M_INVALID_PARAM")
    assert_error(context(user, "!nowhere:localhost", elsewhere), 404, "M_NOT_FOUND")
    assert_error(context(user, room_id, elsewhere, limit="x"), 400, "M_INVALID_PARAM")
    assert_error(context(user, room_id, elsewhere, filter="{"), 400, "M_NOT_JSON")


# ---------------------------------------------------------------------------------------------
# /timestamp_to_event


def test_timestamp_to_event_in_both_directions(user):
    room_id = create_room(user)
    first = send_message(user, room_id, "first")
    first_ts = assert_ok(user.get(room_path(room_id, "event", first)))["origin_server_ts"]
    time.sleep(0.05)
    second = send_message(user, room_id, "second")
    second_ts = assert_ok(user.get(room_path(room_id, "event", second)))["origin_server_ts"]
    assert second_ts > first_ts
    found = assert_ok(timestamp_to_event(user, room_id, first_ts + 1, "f"))
    assert found == {"event_id": second, "origin_server_ts": second_ts}
    found = assert_ok(timestamp_to_event(user, room_id, second_ts - 1, "b"))
    assert found["event_id"] == first and found["origin_server_ts"] == first_ts
    assert assert_ok(timestamp_to_event(user, room_id, second_ts, "f"))["event_id"] == second
    assert_error(timestamp_to_event(user, room_id, second_ts + 60_000, "f"), 404, "M_NOT_FOUND")
    assert_error(timestamp_to_event(user, room_id, 0, "b"), 404, "M_NOT_FOUND")
    path = f"{V1}/rooms/{path_quote(room_id)}/timestamp_to_event"
    assert_error(user.get(path, params={"dir": "f"}), 400, "M_MISSING_PARAM")
    assert_error(user.get(path, params={"ts": 5}), 400, "M_MISSING_PARAM")
    assert_error(user.get(path, params={"ts": "soon", "dir": "f"}), 400, "M_INVALID_PARAM")
    assert_error(user.get(path, params={"ts": 5, "dir": "up"}), 400, "M_INVALID_PARAM")
    assert_error(timestamp_to_event(user, "!nowhere:localhost", 0, "f"), 404, "M_NOT_FOUND")


def test_timestamp_to_event_skips_what_the_user_may_not_see(user, new_user):
    room_id = create_room(user, preset="public_chat")
    set_visibility(user, room_id, "joined")
    hidden = send_message(user, room_id, "before bob")
    hidden_ts = assert_ok(user.get(room_path(room_id, "event", hidden)))["origin_server_ts"]
    time.sleep(0.05)
    bob = new_user()
    join(bob, room_id)
    assert assert_ok(timestamp_to_event(user, room_id, hidden_ts, "f"))["event_id"] == hidden
    # Forward from the hidden message, bob's first visible event is his own join.
    found = assert_ok(timestamp_to_event(bob, room_id, hidden_ts, "f"))
    assert found["event_id"] != hidden
    join_event = assert_ok(bob.get(room_path(room_id, "event", found["event_id"])))
    assert join_event["type"] == "m.room.member" and join_event["state_key"] == bob.user_id
    # Backward from it he finds the setting change (visible on its shared side), never the message.
    found = assert_ok(timestamp_to_event(bob, room_id, hidden_ts, "b"))
    assert found["event_id"] != hidden
    assert assert_ok(bob.get(room_path(room_id, "event", found["event_id"])))["type"] == "m.room.history_visibility"
