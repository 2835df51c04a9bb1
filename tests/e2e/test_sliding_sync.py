"""Simplified sliding sync (MSC4186): lists, ranges and recency, filters (tags too), required_state,
subscriptions, the extensions, per-connection state (`M_UNKNOWN_POS`), long-polling, membership
changes, bundled aggregations, expanded timelines, and a first sync whose cost does not grow with
the rooms."""

from __future__ import annotations

import re
import threading
import time

from conftest import V3, assert_error, assert_ok, path_quote
from rooms import create_room, invite, join, leave, room_path, send_message, send_state

SLIDING = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"


def sliding(user, body: dict, pos: str | None = None, timeout: int = 0, token: str | None = None) -> dict:
    params = {"timeout": timeout}
    if pos is not None:
        params["pos"] = pos
    return assert_ok(user.post(SLIDING, params=params, json=body, token=token, timeout=90))


def all_rooms(ranges=((0, 19),), limit: int = 1, required_state=(), **extra) -> dict:
    return {"lists": {"all": {"ranges": [list(r) for r in ranges], "timeline_limit": limit,
                              "required_state": [list(s) for s in required_state], **extra}}}


def ids(events: list[dict]) -> list[str]:
    return [e["event_id"] for e in events]


def list_ids(response: dict, name: str = "all") -> list[str]:
    return [room for op in response["lists"][name]["ops"] for room in op["room_ids"]]


def test_versions_advertise_simplified_sliding_sync(client):
    versions = assert_ok(client.get("/_matrix/client/versions"))
    assert versions["unstable_features"]["org.matrix.simplified_msc3575"] is True


def test_lists_are_ordered_by_recency_and_cut_by_ranges(user):
    rooms = [create_room(user, name=f"room {n}") for n in range(3)]
    # The first room is bumped last: newest first is rooms[0], rooms[2], rooms[1].
    send_message(user, rooms[0], "bump")
    first = sliding(user, all_rooms(ranges=((0, 1),)))
    assert first["lists"]["all"]["count"] == 3
    assert first["lists"]["all"]["ops"] == [{"op": "SYNC", "range": [0, 1], "room_ids": [rooms[0], rooms[2]]}]
    assert set(first["rooms"]) == {rooms[0], rooms[2]}
    room = first["rooms"][rooms[0]]
    assert room["initial"] is True and room["name"] == "room 0"
    assert [e["content"].get("body") for e in room["timeline"]] == ["bump"]
    assert room["limited"] is True and room["num_live"] == 0
    assert room["joined_count"] == 1 and room["invited_count"] == 0
    assert room["bump_stamp"] > first["rooms"][rooms[2]]["bump_stamp"]
    # A message moves rooms[1] to the top; only it is sent, with only the new event.
    event_id = send_message(user, rooms[1], "now")
    second = sliding(user, all_rooms(ranges=((0, 1),)), pos=first["pos"])
    assert list_ids(second) == [rooms[1], rooms[0]]
    assert set(second["rooms"]) == {rooms[1]}
    room = second["rooms"][rooms[1]]
    assert room["initial"] is True, "first time this connection sends it"
    assert ids(room["timeline"]) == [event_id]
    # Non-bump events (state) do not reorder.
    send_state(user, rooms[2], "m.room.topic", {"topic": "quiet"})
    third = sliding(user, all_rooms(ranges=((0, 2),)), pos=second["pos"])
    assert list_ids(third) == [rooms[1], rooms[0], rooms[2]]
    update = third["rooms"][rooms[2]]
    assert "initial" not in update
    assert [e["type"] for e in update["timeline"]] == ["m.room.topic"]
    assert update["num_live"] == 1 and update["limited"] is False
    assert "bump_stamp" not in update, "a topic is no bump"


def test_incremental_responses_carry_only_changes(user):
    room_id = create_room(user)
    first = sliding(user, all_rooms(limit=5))
    assert room_id in first["rooms"]
    second = sliding(user, all_rooms(limit=5), pos=first["pos"])
    assert second["rooms"] == {}
    assert second["lists"]["all"]["count"] == 1
    event_id = send_message(user, room_id, "later")
    third = sliding(user, all_rooms(limit=5), pos=second["pos"])
    room = third["rooms"][room_id]
    assert ids(room["timeline"]) == [event_id] and room["num_live"] == 1 and room["limited"] is False
    # prev_batch continues through /messages.
    older = assert_ok(user.get(room_path(room_id, "messages"), params={"dir": "b", "from": room["prev_batch"],
                                                                       "limit": 1}))
    assert older["chunk"] and older["chunk"][0]["event_id"] != event_id


def test_unknown_pos_starts_over(user):
    create_room(user)
    assert_error(user.post(SLIDING, params={"pos": "999999"}, json=all_rooms()), 400, "M_UNKNOWN_POS")
    assert_error(user.post(SLIDING, params={"pos": "garbage"}, json=all_rooms()), 400, "M_UNKNOWN_POS")
    first = sliding(user, all_rooms())
    # A position belongs to its connection.
    assert_error(user.post(SLIDING, params={"pos": first["pos"]}, json={**all_rooms(), "conn_id": "other"}), 400,
                 "M_UNKNOWN_POS")
    # Continuing from a position forgets the ones before it, but a retry of the same one works.
    room_id = create_room(user)
    second = sliding(user, all_rooms(), pos=first["pos"])
    assert room_id in second["rooms"] and second["pos"] != first["pos"]
    retry = sliding(user, all_rooms(), pos=first["pos"])
    assert room_id in retry["rooms"]
    send_message(user, room_id, "x")
    third = sliding(user, all_rooms(), pos=second["pos"])
    assert third["pos"] not in (first["pos"], second["pos"], retry["pos"])
    assert_error(user.post(SLIDING, params={"pos": first["pos"]}, json=all_rooms()), 400, "M_UNKNOWN_POS")
    # With nothing new, the position stays.
    assert sliding(user, all_rooms(), pos=third["pos"])["pos"] == third["pos"]


def test_bad_requests_are_refused(user):
    assert_error(user.post(SLIDING, json={"lists": {"a": {"ranges": [[5, 1]], "timeline_limit": 1}}}), 400,
                 "M_INVALID_PARAM")
    assert_error(user.post(SLIDING, json={"room_subscriptions": {"not a room": {"timeline_limit": 1}}}), 400,
                 "M_INVALID_PARAM")
    assert_error(user.post(SLIDING, json={"lists": []}), 400, "M_BAD_JSON")


def test_required_state_rules(user, new_user):
    other = new_user()
    room_id = create_room(user, name="state", topic="t")
    invite(user, room_id, other)
    join(other, room_id)
    send_message(other, room_id, "from other")
    send_state(user, room_id, "org.example.thing", {"n": 1}, state_key="a")
    send_state(user, room_id, "org.example.thing", {"n": 2}, state_key="b")

    def state_of(required_state, limit=1) -> set:
        room = sliding(user, all_rooms(limit=limit, required_state=required_state))["rooms"][room_id]
        return {(e["type"], e["state_key"]) for e in room["required_state"]}

    assert state_of([("m.room.name", ""), ("m.room.topic", "")]) == {("m.room.name", ""), ("m.room.topic", "")}
    assert state_of([("m.room.member", "$ME")]) == {("m.room.member", user.user_id)}
    assert state_of([("org.example.thing", "*")]) == {("org.example.thing", "a"), ("org.example.thing", "b")}
    # $LAZY: the members of the timeline's senders (the newest event is user's state event).
    assert state_of([("m.room.member", "$LAZY")], limit=1) == {("m.room.member", user.user_id)}
    assert state_of([("m.room.member", "$LAZY")], limit=3) == {("m.room.member", user.user_id),
                                                             ("m.room.member", other.user_id)}
    everything = state_of([("*", "*")])
    assert {("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.member", other.user_id),
            ("org.example.thing", "a")} <= everything
    assert state_of([]) == set()


def test_changed_required_state_is_sent_again(user):
    room_id = create_room(user, name="again")
    body = all_rooms(required_state=[("m.room.name", "")])
    first = sliding(user, body)
    assert [e["type"] for e in first["rooms"][room_id]["required_state"]] == ["m.room.name"]
    # Unchanged config, unchanged room: nothing.
    second = sliding(user, body, pos=first["pos"])
    assert second["rooms"] == {}
    # Asking for more state sends it (and only the room's state, no initial).
    wider = all_rooms(required_state=[("m.room.name", ""), ("m.room.create", "")])
    third = sliding(user, wider, pos=second["pos"])
    assert {e["type"] for e in third["rooms"][room_id]["required_state"]} == {"m.room.name", "m.room.create"}
    # A changed name comes as a state change and a new name.
    send_state(user, room_id, "m.room.name", {"name": "renamed"})
    fourth = sliding(user, wider, pos=third["pos"])
    room = fourth["rooms"][room_id]
    assert room["name"] == "renamed"
    assert [e["content"]["name"] for e in room["required_state"]] == ["renamed"]


def test_room_subscriptions(user):
    subscribed = create_room(user, name="subscribed")
    sent = [send_message(user, subscribed, f"m{n}") for n in range(4)]
    newer = create_room(user, name="newer")
    send_message(user, newer, "newest")
    body = {**all_rooms(ranges=((0, 0),), limit=1),
            "room_subscriptions": {subscribed: {"timeline_limit": 3, "required_state": [["m.room.create", ""]]},
                                   "!unknown:localhost": {"timeline_limit": 1}}}
    response = sliding(user, body)
    assert list_ids(response) == [newer]
    assert set(response["rooms"]) == {newer, subscribed}
    room = response["rooms"][subscribed]
    assert ids(room["timeline"]) == sent[1:] and room["limited"] is True
    assert [e["type"] for e in room["required_state"]] == ["m.room.create"]
    # A room in a list and a subscription takes the larger limit and both required states.
    both = {**all_rooms(ranges=((0, 1),), limit=1, required_state=[("m.room.name", "")]),
            "room_subscriptions": {subscribed: {"timeline_limit": 2, "required_state": [["m.room.create", ""]]}}}
    room = sliding(user, both)["rooms"][subscribed]
    assert ids(room["timeline"]) == sent[2:]
    assert {e["type"] for e in room["required_state"]} == {"m.room.name", "m.room.create"}


def test_filters(user, new_user):
    other = new_user()
    plain = create_room(user, name="plain")
    encrypted = create_room(user, initial_state=[{"type": "m.room.encryption", "state_key": "",
                                                  "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
    space = create_room(user, creation_content={"type": "m.space"})
    send_state(user, space, "m.space.child", {"via": ["localhost"]}, state_key=plain)
    dm = create_room(other, is_direct=True, invite=[user.user_id])
    assert_ok(user.put(f"{V3}/user/{path_quote(user.user_id)}/account_data/m.direct",
                       json={other.user_id: [encrypted]}))

    def listed(filters: dict) -> set:
        return set(list_ids(sliding(user, all_rooms(ranges=((0, 50),), filters=filters))))

    assert listed({}) == {plain, encrypted, space, dm}
    assert listed({"is_invite": True}) == {dm}
    assert listed({"is_invite": False}) == {plain, encrypted, space}
    assert listed({"is_encrypted": True}) == {encrypted}
    assert listed({"is_dm": True}) == {encrypted, dm}, "m.direct, or an invite's is_direct"
    assert listed({"room_types": ["m.space"]}) == {space}
    assert listed({"not_room_types": ["m.space"]}) == {plain, encrypted, dm}
    assert listed({"room_types": [None]}) == {plain, encrypted, dm}
    assert listed({"spaces": [space]}) == {plain}
    response = sliding(user, all_rooms(ranges=((0, 50),)))
    assert response["rooms"][dm]["is_dm"] is True and response["rooms"][plain]["is_dm"] is False


def test_tag_filters(user):
    favourite, work, both, untagged = (create_room(user) for _ in range(4))

    def tag(room_id, name):
        assert_ok(user.put(f"{V3}/user/{path_quote(user.user_id)}/rooms/{path_quote(room_id)}/tags/{name}",
                           json={"order": 0.5}))

    tag(favourite, "m.favourite")
    tag(work, "u.work")
    tag(both, "m.favourite")
    tag(both, "u.work")
    # A removed tag no longer counts.
    tag(untagged, "u.work")
    assert_ok(user.delete(f"{V3}/user/{path_quote(user.user_id)}/rooms/{path_quote(untagged)}/tags/u.work"))

    def listed(filters: dict) -> set:
        return set(list_ids(sliding(user, all_rooms(ranges=((0, 50),), filters=filters))))

    assert listed({"tags": ["m.favourite"]}) == {favourite, both}
    assert listed({"tags": ["m.favourite", "u.work"]}) == {favourite, work, both}
    assert listed({"not_tags": ["m.favourite"]}) == {work, untagged}
    assert listed({"tags": ["u.work"], "not_tags": ["m.favourite"]}) == {work}, "not_tags wins"
    assert listed({"tags": []}) == set()
    # Each list filters on its own.
    response = sliding(user, {"lists": {
        "favourites": {"ranges": [[0, 9]], "timeline_limit": 1, "filters": {"tags": ["m.favourite"]}},
        "rest": {"ranges": [[0, 9]], "timeline_limit": 1, "filters": {"not_tags": ["m.favourite"]}},
    }})
    assert set(list_ids(response, "favourites")) == {favourite, both}
    assert set(list_ids(response, "rest")) == {work, untagged}
    assert set(response["rooms"]) == {favourite, work, both, untagged}


def test_invite_join_and_leave(user, new_user):
    other = new_user()
    room_id = create_room(other, name="membership")
    send_message(other, room_id, "before")
    body = all_rooms(limit=5, required_state=[("m.room.member", "$ME")])
    first = sliding(user, body)
    assert room_id not in first["rooms"]
    invite(other, room_id, user)
    second = sliding(user, body, pos=first["pos"])
    room = second["rooms"][room_id]
    assert room["initial"] is True and "timeline" not in room
    stripped = {(e["type"], e["state_key"]) for e in room["invite_state"]}
    assert {("m.room.name", ""), ("m.room.create", ""), ("m.room.member", user.user_id)} <= stripped
    assert all(set(e) == {"type", "state_key", "sender", "content"} for e in room["invite_state"])
    assert room["name"] == "membership"
    join(user, room_id)
    third = sliding(user, body, pos=second["pos"])
    room = third["rooms"][room_id]
    assert room["initial"] is True, "a join starts the room over"
    assert [e["content"].get("membership") for e in room["timeline"] if e["type"] == "m.room.member"][-1] == "join"
    assert [e["content"]["membership"] for e in room["required_state"]] == ["join"]
    assert room["joined_count"] == 2
    leave(user, room_id)
    send_message(other, room_id, "after")
    send_state(other, room_id, "m.room.name", {"name": "renamed after"})
    invite(other, room_id, new_user())
    fourth = sliding(user, body, pos=third["pos"])
    room = fourth["rooms"][room_id]
    last = room["timeline"][-1]
    assert last["type"] == "m.room.member" and last["state_key"] == user.user_id
    assert last["content"]["membership"] == "leave"
    assert "after" not in [e["content"].get("body") for e in room["timeline"]], "nothing after leaving"
    # The room as it was when the user left: its name then, their own leave, no counts of now.
    assert room["name"] == "membership"
    assert [e["content"]["membership"] for e in room["required_state"]] == ["leave"]
    assert "joined_count" not in room and "invited_count" not in room
    # A new connection no longer lists a room the user left themselves.
    assert room_id not in list_ids(sliding(user, {**body, "conn_id": "fresh"}))


def test_unread_counts_match_sync(user, new_user):
    other = new_user()
    room_id = create_room(user)
    invite(user, room_id, other)
    join(other, room_id)
    for n in range(3):
        send_message(other, room_id, f"hello {n}")
    send_message(other, room_id, f"hi {user.localpart}")
    synced = assert_ok(user.get(f"{V3}/sync"))["rooms"]["join"][room_id]["unread_notifications"]
    room = sliding(user, all_rooms())["rooms"][room_id]
    assert synced["notification_count"] >= 3
    assert room["notification_count"] == synced["notification_count"]
    assert room["highlight_count"] == synced["highlight_count"]
    # A read receipt clears them, and the room comes again with the new counts.
    first = sliding(user, all_rooms())
    latest = send_message(other, room_id, "last")
    assert_ok(user.post(room_path(room_id, "receipt", "m.read", latest), json={}))
    room = sliding(user, all_rooms(), pos=first["pos"])["rooms"][room_id]
    assert room["notification_count"] == 0 and room["highlight_count"] == 0


def test_heroes_for_rooms_without_a_name(user, new_user):
    other = new_user()
    assert_ok(other.put(f"{V3}/profile/{path_quote(other.user_id)}/displayname", json={"displayname": "Otto"}))
    room_id = create_room(user)
    invite(user, room_id, other)
    join(other, room_id)
    room = sliding(user, all_rooms())["rooms"][room_id]
    assert "name" not in room
    assert room["heroes"] == [{"user_id": other.user_id, "displayname": "Otto"}]


def test_to_device_extension(user, new_user):
    sender = new_user()
    body = {**all_rooms(), "extensions": {"to_device": {"enabled": True}}}
    first = sliding(user, body)
    assert first["extensions"]["to_device"]["events"] == []
    content = {"messages": {user.user_id: {user.device_id: {"n": 1}}}}
    assert_ok(sender.put(f"{V3}/sendToDevice/org.example.test/t1", json=content))
    second = sliding(user, body, pos=first["pos"])
    to_device = second["extensions"]["to_device"]
    assert [(m["type"], m["content"], m["sender"]) for m in to_device["events"]] == \
        [("org.example.test", {"n": 1}, sender.user_id)]
    # Without `since` past it the message is sent again; with it, it is gone.
    again = sliding(user, body, pos=second["pos"])
    assert len(again["extensions"]["to_device"]["events"]) == 1
    acked = {**body, "extensions": {"to_device": {"enabled": True, "since": to_device["next_batch"]}}}
    third = sliding(user, acked, pos=again["pos"])
    assert third["extensions"]["to_device"]["events"] == []


def test_e2ee_extension(user, new_user):
    other = new_user()
    room_id = create_room(user)
    invite(user, room_id, other)
    join(other, room_id)
    body = {**all_rooms(), "extensions": {"e2ee": {"enabled": True}}}
    first = sliding(user, body)
    e2ee = first["extensions"]["e2ee"]
    assert e2ee["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert e2ee["device_unused_fallback_key_types"] == []
    keys = {"one_time_keys": {f"signed_curve25519:K{n}": {"key": "x" * 43, "signatures": {}} for n in range(2)}}
    assert_ok(user.post(f"{V3}/keys/upload", json=keys))
    other.login()  # a new device: other's device list changes
    second = sliding(user, body, pos=first["pos"])
    e2ee = second["extensions"]["e2ee"]
    assert other.user_id in e2ee["device_lists"]["changed"]
    assert e2ee["device_one_time_keys_count"]["signed_curve25519"] == 2


def test_account_data_extension(user):
    room_id = create_room(user)
    other_room = create_room(user)
    assert_ok(user.put(f"{V3}/user/{path_quote(user.user_id)}/account_data/org.example.global", json={"g": 1}))
    assert_ok(user.put(f"{V3}/user/{path_quote(user.user_id)}/rooms/{path_quote(room_id)}/account_data/org.example.r",
                       json={"r": 1}))
    body = {**all_rooms(ranges=((0, 0),)), "room_subscriptions": {room_id: {"timeline_limit": 0}},
            "extensions": {"account_data": {"enabled": True, "lists": [], "rooms": [room_id]}}}
    first = sliding(user, body)
    data = first["extensions"]["account_data"]
    kinds = [e["type"] for e in data["global"]]
    assert "org.example.global" in kinds and "m.push_rules" in kinds
    assert data["rooms"] == {room_id: [{"type": "org.example.r", "content": {"r": 1}}]}
    # Later, only changes.
    assert_ok(user.put(f"{V3}/user/{path_quote(user.user_id)}/account_data/org.example.global", json={"g": 2}))
    assert_ok(user.put(
        f"{V3}/user/{path_quote(user.user_id)}/rooms/{path_quote(other_room)}/account_data/org.example.r",
        json={"r": 2}))
    second = sliding(user, body, pos=first["pos"])
    data = second["extensions"]["account_data"]
    assert data["global"] == [{"type": "org.example.global", "content": {"g": 2}}]
    assert data["rooms"] == {}, "the other room is outside the extension's scope"


def test_receipts_and_typing_extensions_follow_their_scope(user, new_user):
    other = new_user()
    rooms = []
    for _ in range(2):
        room_id = create_room(user)
        invite(user, room_id, other)
        join(other, room_id)
        rooms.append(room_id)
    event_ids = [send_message(other, r, "read me") for r in rooms]
    body = {"lists": {"a": {"ranges": [[0, 0]], "timeline_limit": 1, "filters": {}},
                      "b": {"ranges": [[1, 1]], "timeline_limit": 1}},
            "extensions": {"receipts": {"enabled": True, "lists": ["a"]},
                           "typing": {"enabled": True, "lists": ["b"]}}}
    first = sliding(user, body)
    in_a, in_b = list_ids(first, "a")[0], list_ids(first, "b")[0]
    for room_id, event_id in zip(rooms, event_ids):
        assert_ok(other.post(room_path(room_id, "receipt", "m.read", event_id), json={}))
        assert_ok(other.put(room_path(room_id, "typing", other.user_id), json={"typing": True, "timeout": 30000}))
    second = sliding(user, body, pos=first["pos"])
    receipts = second["extensions"]["receipts"]["rooms"]
    assert set(receipts) == {in_a}
    assert receipts[in_a]["type"] == "m.receipt"
    event_id = event_ids[rooms.index(in_a)]
    assert other.user_id in receipts[in_a]["content"][event_id]["m.read"]
    typing = second["extensions"]["typing"]["rooms"]
    assert typing == {in_b: {"type": "m.typing", "content": {"user_ids": [other.user_id]}}}


def test_a_waiting_sliding_sync_is_woken(user, new_user):
    other = new_user()
    room_id = create_room(user)
    invite(user, room_id, other)
    join(other, room_id)
    body = all_rooms(limit=3)
    first = sliding(user, body)
    # Nothing new: the wait runs out, and the position stays.
    started = time.monotonic()
    idle = sliding(user, body, pos=first["pos"], timeout=1000)
    assert idle["rooms"] == {} and time.monotonic() - started >= 0.9
    assert idle["pos"] == first["pos"]
    sent: list[str] = []

    def send_later():
        time.sleep(1.5)
        sent.append(send_message(other, room_id, "wake up"))

    thread = threading.Thread(target=send_later)
    thread.start()
    started = time.monotonic()
    pos = idle["pos"]
    woken = None
    # A client polls on; a wake-up may need a second poll (see MAX_PASSES).
    while woken is None and time.monotonic() - started < 30:
        response = sliding(user, body, pos=pos, timeout=20000)
        pos = response["pos"]
        woken = response["rooms"].get(room_id)
    thread.join()
    assert woken is not None, "the message woke the sync"
    assert ids(woken["timeline"]) == sent
    assert time.monotonic() - started < 15, "woken, not timed out"


def test_an_encryption_connection_waits_for_its_extensions_only(user, new_user):
    other = new_user()
    room_id = create_room(user)
    invite(user, room_id, other)
    join(other, room_id)
    body = {"conn_id": "encryption", "extensions": {"to_device": {"enabled": True}}}
    first = sliding(user, body)
    assert first["lists"] == {} and first["rooms"] == {}
    sliding(user, body, pos=first["pos"], timeout=200)  # a fresh UserSync object answers at once
    # A room message is nothing to this connection: it waits on.
    threading.Timer(0.3, lambda: send_message(other, room_id, "not for encryption")).start()
    started = time.monotonic()
    quiet = sliding(user, body, pos=first["pos"], timeout=2000)
    assert quiet["pos"] == first["pos"] and quiet["extensions"]["to_device"]["events"] == []
    assert time.monotonic() - started >= 1.9
    # A to-device message wakes it.
    content = {"messages": {user.user_id: {user.device_id: {"k": "v"}}}}
    threading.Timer(0.5, lambda: other.put(f"{V3}/sendToDevice/org.example.key/t1", json=content)).start()
    started = time.monotonic()
    woken = sliding(user, body, pos=first["pos"], timeout=20000)
    assert [m["content"] for m in woken["extensions"]["to_device"]["events"]] == [{"k": "v"}]
    assert time.monotonic() - started < 15


def test_ignored_inviters_and_forgotten_rooms_are_not_listed(user, new_user):
    pest, friend = new_user(), new_user()
    assert_ok(user.put(f"{V3}/user/{path_quote(user.user_id)}/account_data/m.ignored_user_list",
                       json={"ignored_users": {pest.user_id: {}}}))
    unwanted = create_room(pest, invite=[user.user_id])
    wanted = create_room(friend, invite=[user.user_id])
    left = create_room(user)
    leave(user, left)
    assert_ok(user.post(room_path(left, "forget"), json={}))
    listed = list_ids(sliding(user, all_rooms()))
    assert wanted in listed
    assert unwanted not in listed and left not in listed


def relate(user, room_id, parent, rel_type, body="child") -> str:
    content = {"msgtype": "m.text", "body": body, "m.relates_to": {"rel_type": rel_type, "event_id": parent}}
    if rel_type == "m.replace":
        content["m.new_content"] = {"msgtype": "m.text", "body": body}
    return send_message(user, room_id, **content)


def relations_of(response: dict, room_id: str) -> dict[str, dict]:
    return {e["event_id"]: e["unsigned"].get("m.relations", {}) for e in response["rooms"][room_id]["timeline"]}


def test_limited_timelines_carry_bundled_aggregations(user):
    # Two rooms in one response, each with its own aggregations: they are read for all rooms at once.
    first_room, second_room = create_room(user), create_room(user)
    root = send_message(user, first_room, "root")
    edit = relate(user, first_room, root, "m.replace", "root, edited")
    reply = relate(user, first_room, root, "m.thread", "in thread")
    reference = relate(user, first_room, root, "m.reference")
    # A reference from another room is no reference of this room's event.
    relate(user, second_room, root, "m.reference")
    other = send_message(user, second_room, "other")
    other_edit = relate(user, second_room, other, "m.replace", "other, edited")
    first = sliding(user, all_rooms(limit=4))
    assert first["rooms"][first_room]["limited"] is True and first["rooms"][second_room]["limited"] is True
    bundled = relations_of(first, first_room)[root]
    assert bundled["m.replace"]["event_id"] == edit
    assert bundled["m.replace"]["content"]["m.new_content"]["body"] == "root, edited"
    assert bundled["m.thread"]["count"] == 1 and bundled["m.thread"]["latest_event"]["event_id"] == reply
    assert bundled["m.thread"]["current_user_participated"] is True
    assert bundled["m.reference"] == {"chunk": [{"event_id": reference}]}
    assert relations_of(first, first_room)[reply] == {}
    other_bundled = relations_of(first, second_room)[other]
    assert set(other_bundled) == {"m.replace"} and other_bundled["m.replace"]["event_id"] == other_edit
    # An unlimited timeline holds the children themselves, so its events carry none, as in /sync.
    plain = send_message(user, first_room, "plain")
    relate(user, first_room, plain, "m.replace", "plain, edited")
    later = sliding(user, all_rooms(limit=4), pos=first["pos"])
    assert later["rooms"][first_room]["limited"] is False
    assert all(r == {} for r in relations_of(later, first_room).values())


def test_a_larger_timeline_limit_expands_the_timeline(user):
    room_id = create_room(user)
    messages = [send_message(user, room_id, f"m{n}") for n in range(4)]
    small = all_rooms(limit=1)
    with_subscription = {**small, "room_subscriptions": {room_id: {"timeline_limit": 3}}}
    first = sliding(user, small)
    assert ids(first["rooms"][room_id]["timeline"]) == messages[-1:]
    # Subscribing with a larger limit sends the room at once, with that many of its newest events.
    second = sliding(user, with_subscription, pos=first["pos"])
    room = second["rooms"][room_id]
    assert ids(room["timeline"]) == messages[-3:]
    assert room["unstable_expanded_timeline"] is True and room["limited"] is True and room["num_live"] == 0
    assert "initial" not in room
    # The client has them now: neither the same request nor going back to 1 and up to 3 again
    # sends them again.
    third = sliding(user, with_subscription, pos=second["pos"])
    assert third["rooms"] == {}
    fourth = sliding(user, small, pos=third["pos"])
    assert fourth["rooms"] == {}
    assert sliding(user, with_subscription, pos=fourth["pos"])["rooms"] == {}
    # A gap at the smaller limit (two new events, one sent) makes the larger one expand again.
    later = [send_message(user, room_id, f"later {n}") for n in range(2)]
    fifth = sliding(user, small, pos=fourth["pos"])
    assert ids(fifth["rooms"][room_id]["timeline"]) == later[-1:] and fifth["rooms"][room_id]["limited"] is True
    sixth = sliding(user, with_subscription, pos=fifth["pos"])
    room = sixth["rooms"][room_id]
    assert ids(room["timeline"]) == [messages[-1], *later] and room["unstable_expanded_timeline"] is True


def d1_queries(resp) -> int:
    timing = re.search(r'd1;desc="(\d+) queries', resp.headers.get("server-timing", ""))
    assert timing, "the suite's server sends its costs"
    return int(timing[1])


def test_the_first_sync_costs_the_same_for_3_rooms_as_for_20(new_user):
    """Every per-room read, the aggregations' too, covers all the rooms of a response at once."""
    body = all_rooms(limit=5, required_state=[("m.room.member", "$LAZY"), ("m.room.name", "")])
    costs = []
    for rooms in (3, 20):
        user = new_user()
        for n in range(rooms):
            room_id = create_room(user, name=f"room {n}")
            root = send_message(user, room_id, "root")
            for rel_type in ("m.replace", "m.thread", "m.reference"):
                relate(user, room_id, root, rel_type)
            send_message(user, room_id, "tail")
        resp = user.post(SLIDING, params={"timeout": 0}, json=body)
        response = assert_ok(resp)
        assert len(response["rooms"]) == rooms
        assert all(set(relations_of(response, r)[e["event_id"]]) == {"m.replace", "m.thread", "m.reference"}
                   for r in response["rooms"] for e in response["rooms"][r]["timeline"][:1])
        costs.append(d1_queries(resp))
    assert costs[0] == costs[1] and costs[1] <= 50, costs
