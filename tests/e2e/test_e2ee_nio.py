"""End-to-end encryption through a real crypto client: matrix-nio with vodozemac (Olm and Megolm).
Two users in an encrypted room exchange a message that the server only ever sees encrypted; a
new device of the recipient is found through the device lists and gets the room key; a new
device of the sender restores the room key from the server-side key backup and reads history."""

from __future__ import annotations

import asyncio
import json
from base64 import b64decode, b64encode

from nio import (
    AsyncClient, AsyncClientConfig, JoinResponse, LoginResponse, MegolmEvent, RoomCreateResponse,
    RoomMessagesResponse, RoomMessageText, RoomSendResponse, SyncResponse,
)
from nio.crypto.key_export import decrypt_and_read, encrypt_and_save
from vodozemac import Curve25519PublicKey, Message, PkDecryption, PkEncryption

from conftest import PASSWORD, V3, make_client, random_ip, register, unique_name

ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
BACKUP_ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"


def expect(resp, kind):
    assert isinstance(resp, kind), f"expected {kind.__name__}, got {resp!r}"
    return resp


async def device(base_url: str, user_id: str, store, name: str) -> AsyncClient:
    """A freshly logged-in device with its own crypto store."""
    store.mkdir(parents=True, exist_ok=True)
    config = AsyncClientConfig(custom_headers={"CF-Connecting-IP": random_ip()}, max_limit_exceeded=0,
                               encryption_enabled=True, store_sync_tokens=False)
    client = AsyncClient(base_url, user_id, store_path=str(store), config=config)
    expect(await client.login(PASSWORD, device_name=name), LoginResponse)
    return client


async def settle(client: AsyncClient) -> SyncResponse:
    """One sync, then what a client does after it: upload missing keys, query outdated devices."""
    resp = expect(await client.sync(timeout=0, full_state=not client.next_batch), SyncResponse)
    if client.should_upload_keys:
        await client.keys_upload()
    if client.should_query_keys:
        await client.keys_query()
    return resp


def texts(resp: SyncResponse, room_id: str) -> list:
    room = resp.rooms.join.get(room_id)
    return [e for e in room.timeline.events if isinstance(e, (RoomMessageText, MegolmEvent))] if room else []


async def send(client: AsyncClient, room_id: str, body: str) -> str:
    content = {"msgtype": "m.text", "body": body}
    resp = await client.room_send(room_id, "m.room.message", content, ignore_unverified_devices=True)
    return expect(resp, RoomSendResponse).event_id


def new_account(base_url: str) -> str:
    with make_client(base_url) as c:
        return register(c, unique_name("crypto"))["user_id"]


async def conversation(base_url: str, tmp_path) -> None:
    alice_id, bob_id = new_account(base_url), new_account(base_url)
    alice = await device(base_url, alice_id, tmp_path / "alice", "alice laptop")
    bob = await device(base_url, bob_id, tmp_path / "bob", "bob phone")
    clients = [alice, bob]
    try:
        for c in clients:
            await settle(c)
        room_id = expect(await alice.room_create(invite=[bob_id], initial_state=[ENCRYPTION]),
                         RoomCreateResponse).room_id
        await settle(bob)
        expect(await bob.join(room_id), JoinResponse)
        await settle(bob)
        await settle(alice)
        assert bob.device_id in alice.device_store[bob_id], "alice found bob's device through /keys/query"

        first = await send(alice, room_id, "the eagle lands at dawn")
        raw = assert_raw_is_encrypted(base_url, bob, room_id, first)
        assert "the eagle" not in json.dumps(raw)
        received = texts(await settle(bob), room_id)
        assert [(e.event_id, getattr(e, "body", None)) for e in received] == [(first, "the eagle lands at dawn")]

        # Bob logs in on a tablet: alice hears of it through her device lists and shares the key.
        tablet = await device(base_url, bob_id, tmp_path / "bob-tablet", "bob tablet")
        clients.append(tablet)
        await settle(tablet)
        sync = await settle(alice)
        assert bob_id in sync.device_list.changed
        assert tablet.device_id in alice.device_store[bob_id], "the new device was queried"
        second = await send(alice, room_id, "second message")
        await settle(bob)
        received = texts(await settle(tablet), room_id)
        by_id = {e.event_id: getattr(e, "body", None) for e in received}
        assert by_id.get(second) == "second message", received

        await restore_from_backup(base_url, alice, tmp_path, room_id, first, clients)
    finally:
        for c in clients:
            await c.close()


def assert_raw_is_encrypted(base_url: str, reader: AsyncClient, room_id: str, event_id: str) -> dict:
    """What the server stored and serves: an m.room.encrypted event."""
    with make_client(base_url) as c:
        resp = c.get(f"{V3}/rooms/{room_id}/event/{event_id}",
                     headers={"Authorization": f"Bearer {reader.access_token}"})
        raw = resp.json()
    assert raw["type"] == "m.room.encrypted" and raw["content"]["algorithm"] == "m.megolm.v1.aes-sha2", raw
    return raw


async def restore_from_backup(base_url, alice: AsyncClient, tmp_path, room_id: str, event_id: str, clients) -> None:
    """Alice backs her room keys up, encrypted to a backup key; her new device, holding only the
    backup's private key (as secret storage would give it), restores them and reads history."""
    backup_key = PkDecryption()
    auth_data = {"public_key": backup_key.public_key.to_base64()}
    http = make_client(base_url)
    headers = {"Authorization": f"Bearer {alice.access_token}"}
    try:
        version = http.post(f"{V3}/room_keys/version", headers=headers,
                            json={"algorithm": BACKUP_ALGORITHM, "auth_data": auth_data}).json()["version"]
        export = tmp_path / "alice-keys.txt"
        await alice.export_keys(str(export), "export passphrase")
        exported = json.loads(decrypt_and_read(str(export), "export passphrase"))
        sessions = [s for s in exported if s["room_id"] == room_id]
        assert sessions
        encrypt = PkEncryption.from_key(Curve25519PublicKey.from_base64(auth_data["public_key"]))
        rooms: dict = {}
        for s in sessions:
            plain = {k: v for k, v in s.items() if k not in ("room_id", "session_id")}
            message = encrypt.encrypt(json.dumps(plain).encode())
            session_data = {"ciphertext": unpadded(message.ciphertext), "mac": unpadded(message.mac),
                            "ephemeral": unpadded(message.ephemeral_key)}
            rooms.setdefault(s["room_id"], {"sessions": {}})["sessions"][s["session_id"]] = {
                "first_message_index": 0, "forwarded_count": 0, "is_verified": True, "session_data": session_data}
        put = http.put(f"{V3}/room_keys/keys", params={"version": version}, headers=headers, json={"rooms": rooms})
        assert put.json()["count"] == len(sessions), put.text

        laptop = await device(base_url, alice.user_id, tmp_path / "alice-new", "alice new laptop")
        clients.append(laptop)
        await settle(laptop)
        latest = http.get(f"{V3}/room_keys/version", headers={"Authorization": f"Bearer {laptop.access_token}"})
        assert latest.json()["version"] == version
        backed_up = http.get(f"{V3}/room_keys/keys", params={"version": version},
                             headers={"Authorization": f"Bearer {laptop.access_token}"}).json()
        restored = []
        for room, room_data in backed_up["rooms"].items():
            for session_id, data in room_data["sessions"].items():
                sd = data["session_data"]
                message = Message(padded(sd["ciphertext"]), padded(sd["mac"]), padded(sd["ephemeral"]))
                plain = json.loads(backup_key.decrypt(message))
                restored.append({**plain, "room_id": room, "session_id": session_id})
        before = expect(await laptop.room_messages(room_id, start=laptop.next_batch, limit=20), RoomMessagesResponse)
        assert any(isinstance(e, MegolmEvent) and e.event_id == event_id for e in before.chunk), "no key yet"
        import_file = tmp_path / "restored.txt"
        encrypt_and_save(json.dumps(restored).encode(), str(import_file), "import passphrase")
        await laptop.import_keys(str(import_file), "import passphrase")

        history = expect(await laptop.room_messages(room_id, start=laptop.next_batch, limit=20), RoomMessagesResponse)
        decrypted = {e.event_id: e.body for e in history.chunk if isinstance(e, RoomMessageText)}
        assert decrypted.get(event_id) == "the eagle lands at dawn", history.chunk
    finally:
        http.close()


def unpadded(data: bytes) -> str:
    return b64encode(data).decode().rstrip("=")


def padded(text: str) -> bytes:
    return b64decode(text + "=" * (-len(text) % 4))


def test_an_encrypted_conversation_new_devices_and_a_restored_backup(base_url, tmp_path):
    asyncio.run(conversation(base_url, tmp_path))
