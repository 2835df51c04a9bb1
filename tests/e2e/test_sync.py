"""`GET /sync`: initial and incremental syncs of joined, invited and left rooms, the timeline's
`limited` and `prev_batch`, state deltas, waiting and waking through the UserSync object."""

from __future__ import annotations

import json
import threading
import time

import pytest

from conftest import V3, assert_error, assert_ok
from rooms import create_room, invite, join, leave, room_path, send_message, send_state


def sync(user, since: str | None = None, timeout: int = 0, **params) -> dict:
    query = {"timeout": timeout, **params}
    if since:
        query["since"] = since
    return assert_ok(user.get(f"{V3}/sync", params=query))


def timeline_filter(limit: int) -> str:
    return json.dumps({"room": {"timeline": {"limit": limit}}})


def joined(response: dict, room_id: str) -> dict | None:
    return response["rooms"]["join"].get(room_id)


def test_initial_sync_shows_joined_rooms_with_state_and_recent_timeline(user):
    room_id = create_room(user, name="initial")
    sent = [send_message(user, room_id, f"m{n}") for n in range(3)]
    response = sync(user, filter=timeline_filter(2))
    room = joined(response, room_id)
    assert [e["event_id"] for e in room["timeline"]["events"]] == sent[1:]
    assert room["timeline"]["limited"] is True
    state = {(e["type"], e["state_key"]) for e in room["state"]["events"]}
    assert {("m.room.create", ""), ("m.room.name", ""), ("m.room.member", user.user_id)} <= state
    assert room["summary"]["m.joined_member_count"] == 1
    # prev_batch continues the timeline through /messages.
    older = assert_ok(user.get(room_path(room_id, "messages"),
                               params={"dir": "b", "from": room["timeline"]["prev_batch"], "limit": 1}))
    assert older["chunk"][0]["event_id"] == sent[0]
    assert response["next_batch"]


def test_incremental_sync_has_only_what_is_new(user):
    room_id = create_room(user)
    first = sync(user)
    assert joined(sync(user, first["next_batch"]), room_id) is None, "nothing new"
    event_id = send_message(user, room_id, "new")
    second = sync(user, first["next_batch"])
    room = joined(second, room_id)
    assert [e["event_id"] for e in room["timeline"]["events"]] == [event_id]
    assert room["timeline"]["limited"] is False
    assert room["state"]["events"] == []
    assert room["timeline"]["events"][0]["unsigned"]["transaction_id"]


def test_the_dendrite_readme_example(user):
    """15 events; since=14&limit=5 gives 1 event, since=9&limit=5 the last 5 with the gap's state."""
    room_id = create_room(user, room_version="12")
    response = sync(user)
    count = len(joined(response, room_id)["timeline"]["events"]) + len(joined(response, room_id)["state"]["events"])
    tokens = {}
    events = []
    # Number the room's events 1..15, noting the token after each.
    n = count
    token = response["next_batch"]
    while n < 15:
        n += 1
        if n == 10:
            events.append(send_state(user, room_id, "m.room.topic", {"topic": "ten"}))
        else:
            events.append(send_message(user, room_id, f"event {n}"))
        token = sync(user, token)["next_batch"]
        tokens[n] = token
    limit = timeline_filter(5)
    one = joined(sync(user, tokens[14], filter=limit), room_id)
    assert [e["event_id"] for e in one["timeline"]["events"]] == [events[-1]]
    assert one["timeline"]["limited"] is False
    five = joined(sync(user, tokens[9], filter=limit), room_id)
    assert [e["event_id"] for e in five["timeline"]["events"]] == events[-5:]
    assert five["timeline"]["limited"] is True
    assert [e["content"] for e in five["state"]["events"]] == [{"topic": "ten"}], "the gap's state change"


def test_membership_transitions(user, new_user):
    bob = new_user()
    room_id = create_room(user, name="moves")
    token = sync(bob)["next_batch"]
    invite(user, room_id, bob)
    invited = sync(bob, token)
    state = invited["rooms"]["invite"][room_id]["invite_state"]["events"]
    assert {"type": "m.room.name", "state_key": "", "content": {"name": "moves"}, "sender": user.user_id} in state
    assert any(e["type"] == "m.room.member" and e["content"]["membership"] == "invite" for e in state)
    token = invited["next_batch"]
    join(bob, room_id)
    joined_now = sync(bob, token)
    room = joined(joined_now, room_id)
    assert room["timeline"]["limited"] is True, "a newly joined room comes with limited: true"
    # The state at the timeline's start plus the timeline's state events: the room's full state.
    seen = {e["type"] for e in room["state"]["events"] + room["timeline"]["events"] if "state_key" in e}
    assert seen >= {"m.room.create", "m.room.name", "m.room.power_levels", "m.room.join_rules"}
    token = joined_now["next_batch"]
    # A new display name is a join after a join: no full state again.
    assert_ok(bob.put(f"{V3}/profile/{bob.user_id}/displayname", json={"displayname": "B"}))
    join(bob, room_id)
    again = joined(sync(bob, token), room_id)
    assert again["state"]["events"] == [] and again["timeline"]["limited"] is False
    token = sync(bob, token)["next_batch"]
    assert_ok(user.post(room_path(room_id, "kick"), json={"user_id": bob.user_id}))
    left = sync(bob, token)
    assert room_id in left["rooms"]["leave"] and joined(left, room_id) is None
    assert left["rooms"]["leave"][room_id]["timeline"]["events"][-1]["content"]["membership"] == "leave"


@pytest.mark.parametrize("membership", ["invite", "knock"])
def test_stripped_state_is_redacted(user, new_user, membership):
    room_id = create_room(user, name="Secret plans", topic="Classified", room_version="11")
    send_state(user, room_id, "m.room.join_rules", {"join_rule": "knock"})
    for event_type in ["m.room.name", "m.room.topic"]:
        event_id = state_event_id(user, room_id, event_type)
        assert_ok(user.put(room_path(room_id, "redact", event_id, f"r-{event_type}"), json={}))
    bob = new_user()
    if membership == "invite":
        invite(user, room_id, bob)
    else:
        assert_ok(bob.post(f"{V3}/knock/{room_id}", json={}))
    section = sync(bob)["rooms"][membership][room_id][f"{membership}_state"]["events"]
    assert "Secret" not in json.dumps(section) and "Classified" not in json.dumps(section)
    by_type = {e["type"]: e for e in section}
    assert by_type["m.room.name"]["content"] == {} and by_type["m.room.topic"]["content"] == {}
    assert by_type["m.room.join_rules"]["content"] == {"join_rule": "knock"}, "unredacted state is intact"


def state_event_id(user, room_id: str, event_type: str) -> str:
    resp = user.get(room_path(room_id, "state"))
    assert resp.status_code == 200, resp.text
    return next(e["event_id"] for e in resp.json() if e["type"] == event_type)


def test_left_rooms_only_with_include_leave_on_initial_sync(user, new_user):
    room_id = create_room(user, preset="public_chat")
    bob = new_user()
    join(bob, room_id)
    leave(bob, room_id)
    assert room_id not in sync(bob)["rooms"]["leave"]
    with_leave = sync(bob, filter=json.dumps({"room": {"include_leave": True}}))
    assert room_id in with_leave["rooms"]["leave"]


def test_a_newly_left_room_carries_only_what_changed_and_then_stays_away(user, new_user):
    room_id = create_room(user, preset="public_chat")
    other_room = create_room(user, preset="public_chat")
    bob = new_user()
    join(bob, room_id)
    join(bob, other_room)
    with_leave = json.dumps({"room": {"include_leave": True, "timeline": {"limit": 1}}})
    since = sync(bob, filter=with_leave)["next_batch"]
    leave(bob, room_id)
    left = sync(bob, since, filter=with_leave)
    room = left["rooms"]["leave"][room_id]
    assert [e["type"] for e in room["timeline"]["events"]] == ["m.room.member"]
    assert room["timeline"]["events"][0]["content"]["membership"] == "leave"
    assert room["state"]["events"] == [], "nothing changed before the leave"
    # Later changes by others and a gap elsewhere don't bring the left room back.
    send_state(user, room_id, "m.room.topic", {"topic": "after bob left"})
    for i in range(3):
        send_message(user, other_room, f"filler {i}")
    later = sync(bob, left["next_batch"], filter=with_leave)
    assert room_id not in later["rooms"]["leave"]
    # A full sync with include_leave still lists it.
    assert room_id in sync(bob, filter=with_leave)["rooms"]["leave"]


def test_a_room_joined_and_left_since_the_last_sync_comes_with_its_state(user, new_user):
    room_id = create_room(user, preset="public_chat", name="brief visit")
    bob = new_user()
    since = sync(bob)["next_batch"]
    join(bob, room_id)
    leave(bob, room_id)
    room = sync(bob, since)["rooms"]["leave"][room_id]
    assert any(e["type"] == "m.room.name" for e in room["state"]["events"]), "never shown before: whole state"


def test_timeline_limit_zero_is_accepted(user):
    room_id = create_room(user, name="limit zero")
    send_message(user, room_id, "not shown")
    room = sync(user, filter=json.dumps({"room": {"timeline": {"limit": 0}}}))["rooms"]["join"][room_id]
    assert room["timeline"]["events"] == [] and room["timeline"]["limited"] is True
    assert any(e["type"] == "m.room.name" for e in room["state"]["events"])


def test_lazy_loading_gappy_sync_includes_the_gaps_membership_changes(user, new_user):
    room_id = create_room(user, preset="public_chat")
    lazy = json.dumps({"room": {"timeline": {"limit": 2}, "state": {"lazy_load_members": True}}})
    since = sync(user, filter=lazy)["next_batch"]
    bob, carol = new_user(), new_user()
    join(bob, room_id)
    join(carol, room_id)
    leave(carol, room_id)
    for i in range(4):
        send_message(user, room_id, f"filler {i}")
    room = sync(user, since, filter=lazy)["rooms"]["join"][room_id]
    assert room["timeline"]["limited"] is True
    members = {e["state_key"]: e["content"]["membership"] for e in room["state"]["events"]
               if e["type"] == "m.room.member"}
    # Bob's join and Carol's leave happened in the gap: they come, though neither sent a message.
    assert members.get(bob.user_id) == "join" and members.get(carol.user_id) == "leave"


def test_bad_tokens_and_parameters(user):
    for token in ["nonsense", "s", "s1_2_3_4_5_6_7_8_9", "s-5", "x1"]:
        assert_error(user.get(f"{V3}/sync", params={"since": token}), 400, "M_INVALID_PARAM")
    assert_error(user.get(f"{V3}/sync", params={"set_presence": "busy"}), 400, "M_INVALID_PARAM")
    assert_error(user.get(f"{V3}/sync", params={"timeout": "soon"}), 400, "M_INVALID_PARAM")
    assert_error(user.get(f"{V3}/sync", params={"filter": "{not json"}), 400, {"M_BAD_JSON", "M_NOT_JSON"})


def waiting_sync(user, since: str, timeout_ms: int, out: dict) -> threading.Thread:
    def run():
        started = time.perf_counter()
        out["response"] = sync(user, since, timeout=timeout_ms)
        out["returned"] = time.perf_counter()
        out["elapsed"] = out["returned"] - started

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_waiting_sync_is_woken_by_a_message(user, new_user):
    bob = new_user()
    room_id = create_room(user, preset="public_chat")
    join(bob, room_id)
    token = sync(bob)["next_batch"]
    sync(bob, token)  # warm up the path
    out = {}
    thread = waiting_sync(bob, token, 20_000, out)
    time.sleep(0.5)
    event_id = send_message(user, room_id, "wake up")
    sent = time.perf_counter()
    thread.join(timeout=25)
    room = joined(out["response"], room_id)
    assert [e["event_id"] for e in room["timeline"]["events"]] == [event_id]
    wake_ms = 1000 * (out["returned"] - sent)
    assert wake_ms < 100, f"woken {wake_ms:.0f} ms after the send returned"


def test_a_sync_is_not_woken_by_a_room_it_is_not_in(user, new_user):
    bob = new_user()
    create_room(bob)  # bob has a room of his own
    elsewhere = create_room(user)
    token = sync(bob)["next_batch"]
    out = {}
    thread = waiting_sync(bob, token, 1500, out)
    time.sleep(0.3)
    send_message(user, elsewhere, "not for bob")
    thread.join(timeout=10)
    assert out["elapsed"] >= 1.4, "it waited for its timeout"
    assert out["response"]["rooms"]["join"] == {}
    assert out["response"]["next_batch"], "a timeout is an empty, valid response"


def test_two_devices_sync_at_once(user, new_user):
    bob = new_user()
    room_id = create_room(user, preset="public_chat")
    join(bob, room_id)
    laptop = bob.login()["access_token"]
    token = sync(bob)["next_batch"]
    outs = [{}, {}]

    def run(out, access_token):
        out["response"] = assert_ok(bob.get(f"{V3}/sync", params={"since": token, "timeout": 20_000},
                                            token=access_token))

    threads = [threading.Thread(target=run, args=(outs[0], bob.access_token)),
               threading.Thread(target=run, args=(outs[1], laptop))]
    for t in threads:
        t.start()
    time.sleep(0.5)
    event_id = send_message(user, room_id, "both")
    for t in threads:
        t.join(timeout=25)
    for out in outs:
        assert [e["event_id"] for e in joined(out["response"], room_id)["timeline"]["events"]] == [event_id]


@pytest.mark.parametrize("visibility", ["joined", "shared"])
def test_history_visibility_on_a_new_join(user, new_user, visibility):
    room_id = create_room(user, preset="public_chat")
    send_state(user, room_id, "m.room.history_visibility", {"history_visibility": visibility})
    secret = send_message(user, room_id, "before bob")
    bob = new_user()
    join(bob, room_id)
    timeline = [e["event_id"] for e in joined(sync(bob), room_id)["timeline"]["events"]]
    assert (secret in timeline) == (visibility == "shared")


# ---------------------------------------------------------------------------------------------
# Filters, account data, ignored users, to-device


def test_filter_by_id_lazy_loading_rooms_and_event_fields(user, new_user):
    bob, carol = new_user(), new_user()
    room_id = create_room(user, preset="public_chat")
    other = create_room(user)
    for member in (bob, carol):
        join(member, room_id)
    send_message(bob, room_id, "from bob")
    body = {"room": {"rooms": [room_id], "timeline": {"limit": 1}, "state": {"lazy_load_members": True}},
            "event_fields": ["type", "content.body", "sender", "state_key"]}
    filter_id = assert_ok(user.post(f"{V3}/user/{user.user_id}/filter", json=body))["filter_id"]
    response = sync(user, filter=filter_id)
    assert other not in response["rooms"]["join"]
    room = joined(response, room_id)
    (event,) = room["timeline"]["events"]
    assert event == {"type": "m.room.message", "content": {"body": "from bob"}, "sender": bob.user_id}
    assert all(set(e) <= {"type", "content", "sender", "state_key"} for e in room["state"]["events"])
    members = {e["state_key"] for e in room["state"]["events"] if e.get("type") == "m.room.member"}
    assert members == {bob.user_id, user.user_id}, "only the timeline's senders and the reader"
    assert_error(user.get(f"{V3}/sync", params={"filter": "999999"}), 404, "M_NOT_FOUND")


def lazy(limit: int, redundant: bool = False) -> str:
    return json.dumps({"room": {"timeline": {"limit": limit},
                                "state": {"lazy_load_members": True, "include_redundant_members": redundant}}})


def state_members(room: dict) -> set[str]:
    return {e["state_key"] for e in room["state"]["events"] if e["type"] == "m.room.member"}


def test_lazy_loading_sends_a_devices_missing_members_once(user, new_user):
    bob, carol = new_user(), new_user()
    room_id = create_room(user, preset="public_chat")
    for member in (bob, carol):
        join(member, room_id)
    before = sync(user)["next_batch"]  # no lazy loading: nothing is noted as sent
    b1 = send_message(bob, room_id, "b1")
    first = sync(user, filter=lazy(1))
    assert [e["event_id"] for e in joined(first, room_id)["timeline"]["events"]] == [b1]
    assert state_members(joined(first, room_id)) == {bob.user_id, user.user_id}
    b2, c1 = send_message(bob, room_id, "b2"), send_message(carol, room_id, "c1")

    # Carol's member was never sent, though it did not change; Bob's was, so it is left out.
    room = joined(sync(user, first["next_batch"], filter=lazy(10)), room_id)
    assert [e["event_id"] for e in room["timeline"]["events"]] == [b2, c1]
    assert room["timeline"]["limited"] is False
    assert state_members(room) == {carol.user_id}
    carol_member = next(e for e in room["state"]["events"] if e["state_key"] == carol.user_id)
    assert carol_member["content"]["membership"] == "join"
    # include_redundant_members sends both again.
    room = joined(sync(user, first["next_batch"], filter=lazy(10, redundant=True)), room_id)
    assert state_members(room) == {bob.user_id, carol.user_id}
    # From a token older than the response that carried Bob's member, the device may lack it.
    room = joined(sync(user, before, filter=lazy(10)), room_id)
    assert [e["event_id"] for e in room["timeline"]["events"]] == [b1, b2, c1]
    assert state_members(room) == {bob.user_id, carol.user_id}
    # Another device of the same user was sent nothing.
    laptop = user.login()["access_token"]
    query = {"since": first["next_batch"], "filter": lazy(10)}
    room = joined(assert_ok(user.get(f"{V3}/sync", params=query, token=laptop)), room_id)
    assert state_members(room) == {bob.user_id, carol.user_id}

    # A new member event in the timeline counts as sent: Bob's next message needs nothing.
    token = sync(user, first["next_batch"], filter=lazy(10))["next_batch"]
    rename = send_state(bob, room_id, "m.room.member", {"membership": "join", "displayname": "Bobby"}, bob.user_id)
    room = joined(sync(user, token, filter=lazy(10)), room_id)
    assert [e["event_id"] for e in room["timeline"]["events"]] == [rename]
    token = sync(user, token, filter=lazy(10))["next_batch"]
    b3 = send_message(bob, room_id, "b3")
    response = sync(user, token, filter=lazy(10))
    room = joined(response, room_id)
    assert [e["event_id"] for e in room["timeline"]["events"]] == [b3]
    assert state_members(room) == set()


def test_account_data_global_and_per_room(user):
    room_id = create_room(user)
    token = sync(user)["next_batch"]
    assert_ok(user.put(f"{V3}/user/{user.user_id}/account_data/org.example.global", json={"a": 1}))
    assert_ok(user.put(f"{V3}/user/{user.user_id}/rooms/{room_id}/account_data/org.example.room", json={"b": 2}))
    response = sync(user, token)
    assert {"type": "org.example.global", "content": {"a": 1}} in response["account_data"]["events"]
    room = joined(response, room_id)
    assert room["account_data"]["events"] == [{"type": "org.example.room", "content": {"b": 2}}]
    assert room["timeline"]["events"] == [], "only account data changed"
    again = sync(user, response["next_batch"])
    assert again["account_data"]["events"] == [] and joined(again, room_id) is None
    initial = sync(user)
    assert {"type": "org.example.global", "content": {"a": 1}} in initial["account_data"]["events"]


def test_ignored_users_messages_and_invites_are_hidden(user, new_user):
    pest = new_user()
    room_id = create_room(user, preset="public_chat")
    join(pest, room_id)
    assert_ok(user.put(f"{V3}/user/{user.user_id}/account_data/m.ignored_user_list",
                       json={"ignored_users": {pest.user_id: {}}}))
    token = sync(user)["next_batch"]
    send_message(pest, room_id, "noise")
    own = send_message(user, room_id, "signal")
    timeline = joined(sync(user, token), room_id)["timeline"]["events"]
    assert [e["event_id"] for e in timeline] == [own]
    elsewhere = create_room(pest)
    invite(pest, elsewhere, user)
    assert elsewhere not in sync(user, token)["rooms"]["invite"]


def send_to_device(sender, messages: dict, txn: str, event_type: str = "org.example.ping"):
    assert_ok(sender.put(f"{V3}/sendToDevice/{event_type}/{txn}", json={"messages": messages}))


def test_to_device_is_delivered_once_and_survives_a_dropped_response(user, new_user):
    bob = new_user()
    laptop = bob.login()
    token = sync(bob)["next_batch"]
    send_to_device(user, {bob.user_id: {bob.device_id: {"n": 1}}}, "t1")
    send_to_device(user, {bob.user_id: {"*": {"n": 2}}}, "t2")
    send_to_device(user, {bob.user_id: {"*": {"n": 2}}}, "t2")  # a retry sends nothing again
    first = sync(bob, token)
    assert [(e["sender"], e["content"]) for e in first["to_device"]["events"]] == [
        (user.user_id, {"n": 1}), (user.user_id, {"n": 2})]
    # The response was "dropped": the same token gets the same messages again.
    assert sync(bob, token)["to_device"]["events"] == first["to_device"]["events"]
    # Past that token they are gone for good.
    assert sync(bob, first["next_batch"])["to_device"]["events"] == []
    assert sync(bob, token)["to_device"]["events"] == []
    on_laptop = assert_ok(bob.get(f"{V3}/sync", params={"timeout": 0}, token=laptop["access_token"]))
    assert [e["content"] for e in on_laptop["to_device"]["events"]] == [{"n": 2}], "`*` reached the laptop"


def test_to_device_wakes_a_waiting_sync(user, new_user):
    bob = new_user()
    token = sync(bob)["next_batch"]
    out = {}
    thread = waiting_sync(bob, token, 20_000, out)
    time.sleep(0.5)
    send_to_device(user, {bob.user_id: {bob.device_id: {"wake": True}}}, "w1")
    thread.join(timeout=25)
    assert out["elapsed"] < 10
    assert [e["content"] for e in out["response"]["to_device"]["events"]] == [{"wake": True}]


def test_large_to_device_messages_come_over_several_syncs(user, new_user):
    """A sync takes a bounded number of bytes from the device's queue, the rest comes in the next
    ones: in order, each message once."""
    bob = new_user()
    token = sync(bob)["next_batch"]
    blob = "x" * 60_000
    for i in range(6):
        send_to_device(user, {bob.user_id: {bob.device_id: {"i": i, "blob": blob}}}, f"big{i}")
    received, syncs = [], 0
    while len(received) < 6 and syncs < 6:
        response = sync(bob, token)
        events = response["to_device"]["events"]
        assert events, "a sync delivers at least one of the waiting messages"
        assert len(json.dumps(events)) < (256 + 64) * 1024, "at most the byte budget and one message"
        received += [e["content"]["i"] for e in events]
        token = response["next_batch"]
        syncs += 1
    assert received == list(range(6))
    assert syncs > 1
    assert sync(bob, token)["to_device"]["events"] == []


# ---------------------------------------------------------------------------------------------
# Ephemeral: receipts and typing


def ephemeral(response: dict, room_id: str, edu_type: str) -> list[dict]:
    room = joined(response, room_id)
    return [e["content"] for e in (room or {}).get("ephemeral", {}).get("events", []) if e["type"] == edu_type]


def test_receipts_reach_members_and_private_ones_only_their_owner(user, new_user):
    bob = new_user()
    room_id = create_room(user, preset="public_chat")
    join(bob, room_id)
    event_id = send_message(user, room_id, "read me")
    token_user, token_bob = sync(user)["next_batch"], sync(bob)["next_batch"]
    assert_ok(bob.post(room_path(room_id, "receipt", "m.read", event_id), json={}))
    (content,) = ephemeral(sync(user, token_user), room_id, "m.receipt")
    assert bob.user_id in content[event_id]["m.read"]
    assert_ok(user.post(room_path(room_id, "receipt", "m.read.private", event_id), json={}))
    assert ephemeral(sync(bob, token_bob), room_id, "m.receipt") == [content], "bob sees no private receipt"
    (mine,) = ephemeral(sync(user, token_user), room_id, "m.receipt")
    assert user.user_id in mine[event_id]["m.read.private"]
    initial = ephemeral(sync(bob), room_id, "m.receipt")
    assert initial and bob.user_id in initial[0][event_id]["m.read"]


def test_typing_wakes_members_and_stops(user, new_user):
    bob = new_user()
    room_id = create_room(user, preset="public_chat")
    join(bob, room_id)
    token = sync(bob)["next_batch"]
    out = {}
    thread = waiting_sync(bob, token, 20_000, out)
    time.sleep(0.5)
    assert_ok(user.put(room_path(room_id, "typing", user.user_id), json={"typing": True, "timeout": 20_000}))
    thread.join(timeout=25)
    assert out["elapsed"] < 10
    assert ephemeral(out["response"], room_id, "m.typing") == [{"user_ids": [user.user_id]}]
    token = out["response"]["next_batch"]
    assert_ok(user.put(room_path(room_id, "typing", user.user_id), json={"typing": False}))
    assert ephemeral(sync(bob, token), room_id, "m.typing") == [{"user_ids": []}]


def test_typing_that_runs_out_reaches_a_waiting_sync(user, new_user):
    bob = new_user()
    room_id = create_room(user, preset="public_chat")
    join(bob, room_id)
    token = sync(bob)["next_batch"]
    assert_ok(user.put(room_path(room_id, "typing", user.user_id), json={"typing": True, "timeout": 1500}))
    typing_now = sync(bob, token)
    assert ephemeral(typing_now, room_id, "m.typing") == [{"user_ids": [user.user_id]}]
    out = {}
    thread = waiting_sync(bob, typing_now["next_batch"], 15_000, out)
    thread.join(timeout=20)
    assert 0.5 < out["elapsed"] < 5, "woken when the typing ran out, not at the timeout"
    assert ephemeral(out["response"], room_id, "m.typing") == [{"user_ids": []}]


def test_full_state_and_summary(user, new_user):
    bob, carol = new_user(), new_user()
    room_id = create_room(user, preset="public_chat", invite=[carol.user_id])
    join(bob, room_id)
    token = sync(user)["next_batch"]
    send_message(user, room_id, "one")
    full = joined(sync(user, token, full_state="true"), room_id)
    types = {e["type"] for e in full["state"]["events"]}
    assert {"m.room.create", "m.room.power_levels", "m.room.join_rules", "m.room.member"} <= types
    assert not joined(sync(user, token), room_id)["state"]["events"], "without full_state, no state"
    summary = joined(sync(user), room_id)["summary"]
    assert summary["m.joined_member_count"] == 2 and summary["m.invited_member_count"] == 1
    assert set(summary["m.heroes"]) == {bob.user_id, carol.user_id}


def test_nothing_is_lost_when_every_object_is_evicted(server_factory):
    """A restart forgets every Durable Object; a sync from an old token still gets everything."""
    from conftest import User, make_client, register

    server = server_factory.launch({"STRATUS_TEST_SERVER": "sync-eviction"})
    server.wait_ready()

    def user_on(url):
        client = make_client(url)
        account = register(client)
        return User(client=client, user_id=account["user_id"], access_token=account["access_token"],
                    device_id=account["device_id"])

    alice, bob = user_on(server.url), user_on(server.url)
    room_id = create_room(alice, preset="public_chat")
    join(bob, room_id)
    token = sync(bob)["next_batch"]
    sent = [send_message(alice, room_id, f"before {n}") for n in range(3)]
    send_to_device(alice, {bob.user_id: {bob.device_id: {"kept": True}}}, "evict")
    url = server.restart()
    bob.client = make_client(url)
    response = sync(bob, token)
    assert [e["event_id"] for e in joined(response, room_id)["timeline"]["events"]] == sent
    assert [e["content"] for e in response["to_device"]["events"]] == [{"kept": True}]
    # And a waiting sync on the fresh object is still woken.
    out = {}
    alice.client = make_client(url)
    thread = waiting_sync(bob, response["next_batch"], 20_000, out)
    time.sleep(0.5)
    later = send_message(alice, room_id, "after")
    thread.join(timeout=25)
    assert out["elapsed"] < 10
    assert [e["event_id"] for e in joined(out["response"], room_id)["timeline"]["events"]] == [later]


@pytest.mark.parametrize("param", ["since", "filter", "timeout", "full_state", "set_presence"])
def test_bad_parameters_never_break_sync(user, param):
    values = ["", "x" * 5000, "-1", "99999999999999999999", "{bad", "{}", "[]", "null", "\u0000", "s1_2_3",
              '{"room": {"timeline": {"limit": -5}}}', '{"room": {"rooms": 5}}', "s" + "9" * 16]
    for value in values:
        resp = user.get(f"{V3}/sync", params={param: value, **({} if param == "timeout" else {"timeout": 0})})
        assert resp.status_code < 500, (value[:40], resp.text)
        if resp.status_code >= 400:
            assert resp.json()["errcode"].startswith("M_")
