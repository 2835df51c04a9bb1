"""Sync through a real client library: matrix-nio's initial and incremental `sync`, and its view of
rooms, members, timelines and presence afterwards."""

import asyncio

from nio import (
    JoinResponse,
    PresenceEvent,
    PresenceGetResponse,
    PresenceSetResponse,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)

from test_client_nio import expect
from test_rooms_nio import registered


async def sync_path(base_url):
    alice, bob = await registered(base_url), await registered(base_url)
    try:
        room_id = expect(await alice.room_create(name="nio sync", topic="views"), RoomCreateResponse).room_id
        await alice.room_invite(room_id, bob.user_id)
        first = expect(await bob.sync(timeout=0, full_state=True), SyncResponse)
        assert room_id in first.rooms.invite
        assert room_id in bob.invited_rooms
        expect(await bob.join(room_id), JoinResponse)
        sent = [expect(await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"hi {n}"}),
                       RoomSendResponse).event_id for n in range(3)]

        initial = expect(await alice.sync(timeout=0, full_state=True), SyncResponse)
        room = alice.rooms[room_id]
        assert room.name == "nio sync" and room.topic == "views"
        assert set(room.users) == {alice.user_id, bob.user_id}
        texts = [e for e in initial.rooms.join[room_id].timeline.events if isinstance(e, RoomMessageText)]
        assert [e.event_id for e in texts] == sent

        incremental = expect(await bob.sync(timeout=0, since=first.next_batch), SyncResponse)
        assert room_id in incremental.rooms.join and room_id not in bob.invited_rooms
        assert bob.rooms[room_id].member_count == 2
        more = expect(await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "later"}),
                      RoomSendResponse).event_id
        # A long poll that a message wakes.
        woken = expect(await bob.sync(timeout=10_000, since=incremental.next_batch), SyncResponse)
        events = woken.rooms.join[room_id].timeline.events
        assert [e.event_id for e in events] == [more] and events[0].body == "later"

        # Presence: set by one, seen by the other in sync and on request.
        expect(await alice.set_presence("unavailable", "nio away"), PresenceSetResponse)
        seen = expect(await bob.sync(timeout=10_000, since=woken.next_batch, set_presence="offline"), SyncResponse)
        mine = [e for e in seen.presence_events if isinstance(e, PresenceEvent) and e.user_id == alice.user_id]
        assert [(e.presence, e.status_msg) for e in mine] == [("unavailable", "nio away")]
        assert bob.rooms[room_id].users[alice.user_id].presence == "unavailable"
        status = expect(await bob.get_presence(alice.user_id), PresenceGetResponse)
        assert (status.presence, status.status_msg) == ("unavailable", "nio away")
    finally:
        await alice.close()
        await bob.close()


def test_sync_through_nio(base_url):
    asyncio.run(sync_path(base_url))
