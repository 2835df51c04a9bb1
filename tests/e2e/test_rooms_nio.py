"""Rooms through a real client library, matrix-nio's AsyncClient: create with each preset, invite,
join, kick, ban, redact and paginate."""

import asyncio

from nio import (
    JoinResponse, RoomBanResponse, RoomCreateError, RoomCreateResponse, RoomInviteResponse, RoomKickError,
    RoomKickResponse, RoomMessagesResponse, RoomPreset, RoomRedactResponse, RoomSendResponse, RoomVisibility,
    RoomMessageText, RedactedEvent, JoinError, RoomLeaveResponse,
)

from conftest import PASSWORD, unique_name
from test_client_nio import expect, nio_client


async def registered(base_url):
    client = nio_client(base_url)
    await client.register(unique_name("nio"), PASSWORD)
    assert client.access_token
    return client


async def rooms_path(base_url):
    alice, bob, carol = [await registered(base_url) for _ in range(3)]
    try:
        # Each preset.
        public = expect(await alice.room_create(visibility=RoomVisibility.public, name="Public",
                                                preset=RoomPreset.public_chat), RoomCreateResponse).room_id
        private = expect(await alice.room_create(preset=RoomPreset.private_chat, topic="secret"),
                         RoomCreateResponse).room_id
        trusted = expect(await alice.room_create(preset=RoomPreset.trusted_private_chat, invite=[bob.user_id],
                                                 is_direct=True), RoomCreateResponse).room_id
        old = expect(await alice.room_create(room_version="10"), RoomCreateResponse).room_id
        assert len({public, private, trusted, old}) == 4
        expect(await alice.room_create(room_version="13"), RoomCreateError)

        # Invite and join; a public room needs no invite.
        expect(await bob.join(public), JoinResponse)
        expect(await bob.join(private), JoinError)
        expect(await alice.room_invite(private, bob.user_id), RoomInviteResponse)
        expect(await bob.join(private), JoinResponse)
        expect(await bob.join(trusted), JoinResponse)

        # Talk, redact, paginate.
        sent = []
        for n in range(12):
            resp = expect(await bob.room_send(public, "m.room.message", {"msgtype": "m.text", "body": f"m{n}"}),
                          RoomSendResponse)
            sent.append(resp.event_id)
        redaction = expect(await alice.room_redact(public, sent[3], reason="rude"), RoomRedactResponse).event_id
        page = expect(await alice.room_messages(public, limit=5), RoomMessagesResponse)
        assert [e.event_id for e in page.chunk] == [redaction, *sent[::-1][:4]]
        seen = list(page.chunk)
        while page.end:
            page = expect(await alice.room_messages(public, start=page.end, limit=5), RoomMessagesResponse)
            seen.extend(page.chunk)
        texts = [e for e in seen if isinstance(e, RoomMessageText)]
        assert [e.body for e in texts][::-1] == [f"m{n}" for n in range(12) if n != 3]
        redacted = [e for e in seen if isinstance(e, RedactedEvent)]
        assert [e.event_id for e in redacted] == [sent[3]]

        # Kick and ban; the kicked may come back, the banned may not.
        expect(await carol.join(public), JoinResponse)
        expect(await bob.room_kick(public, carol.user_id), RoomKickError)
        expect(await alice.room_kick(public, carol.user_id, reason="bye"), RoomKickResponse)
        expect(await carol.join(public), JoinResponse)
        expect(await alice.room_ban(public, carol.user_id, reason="gone"), RoomBanResponse)
        expect(await carol.join(public), JoinError)
        expect(await bob.room_leave(public), RoomLeaveResponse)
    finally:
        for client in (alice, bob, carol):
            await client.close()


def test_rooms_through_nio(base_url):
    asyncio.run(rooms_path(base_url))
