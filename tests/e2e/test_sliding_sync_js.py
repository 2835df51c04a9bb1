"""matrix-js-sdk's sliding sync (MSC4186) against Stratus: its room list shows the names, unread
counts and latest events that `/sync` reports, and a live message arrives (`tests/js/sliding.mjs`)."""

from conftest import V3, assert_ok, path_quote
from js import run_js
from rooms import create_room, join, send_message


def test_js_sdk_room_list_matches_sync(base_url, new_user):
    alice, bob = new_user(), new_user()
    assert_ok(bob.put(f"{V3}/profile/{path_quote(bob.user_id)}/displayname", json={"displayname": "Bobby"}))
    named = create_room(bob, name="Named room", invite=[alice.user_id])
    direct = create_room(bob, is_direct=True, invite=[alice.user_id])
    mine = create_room(alice, name="Alice alone")
    for room_id in (named, direct):
        join(alice, room_id)
    for n in range(3):
        send_message(bob, named, f"news {n}")
    send_message(bob, direct, "hey alice", **{"m.mentions": {"user_ids": [alice.user_id]}})
    send_message(alice, mine, "note to self")
    rooms = [named, direct, mine]

    synced = assert_ok(alice.get(f"{V3}/sync"))["rooms"]["join"]
    seen = run_js("sliding.mjs", base_url, {"alice": alice, "bob": bob}, "room_list", server=base_url,
                  room_ids=rooms, live_room_id=named)
    assert seen["count"] == 3
    for room_id in rooms:
        room = seen["rooms"][room_id]
        assert room is not None, room_id
        assert room["membership"] == "join"
        unread = synced[room_id]["unread_notifications"]
        assert room["notification_count"] == unread["notification_count"], room_id
        assert room["highlight_count"] == unread["highlight_count"], room_id
        assert room["latest_event_id"] == synced[room_id]["timeline"]["events"][-1]["event_id"], room_id
    assert seen["rooms"][named]["name"] == "Named room"
    assert seen["rooms"][mine]["name"] == "Alice alone"
    assert seen["rooms"][direct]["name"] == "Bobby", "named after its hero"
    assert seen["rooms"][named]["notification_count"] == 3
    assert seen["rooms"][direct]["highlight_count"] == 1
    assert seen["live_event_id"] == seen["sent_live_event_id"]
