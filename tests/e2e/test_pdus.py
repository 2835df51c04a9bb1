"""Events are real PDUs: the stored JSON of each event has the spec's content hash, this server's
ed25519 signature (checked against the key it publishes at `/_matrix/key/v2/server`) and the
reference-hash event ID of its room version; v12 room IDs name the create event. The signing key
is created once and survives a restart."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import time

import httpx
import pytest
from nacl.signing import VerifyKey

from conftest import SERVER_NAME, User, make_client, register
from rooms import create_room, join, room_path, send_message, send_state


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def unpadded(data: bytes, urlsafe: bool = False) -> str:
    encoded = base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)
    return encoded.decode().rstrip("=")


def b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


# The redaction algorithm of room versions 10 to 12, as far as the events of these rooms need it.
KEPT_TOP_LEVEL = {"event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures", "depth",
                  "prev_events", "auth_events", "origin_server_ts"}


def kept_content(event_type: str, content: dict, version: str) -> dict:
    if event_type == "m.room.create":
        return dict(content) if version != "10" else {k: v for k, v in content.items() if k == "creator"}
    keys = {
        "m.room.member": {"membership"} | ({"join_authorised_via_users_server"}),
        "m.room.join_rules": {"join_rule", "allow"},
        "m.room.history_visibility": {"history_visibility"},
        "m.room.power_levels": {"ban", "events", "events_default", "kick", "redact", "state_default", "users",
                                "users_default"} | ({"invite"} if version != "10" else set()),
        "m.room.redaction": {"redacts"} if version != "10" else set(),
    }.get(event_type, set())
    return {k: v for k, v in content.items() if k in keys}


def redacted(pdu: dict, version: str) -> dict:
    out = {k: v for k, v in pdu.items() if k in KEPT_TOP_LEVEL}
    out["content"] = kept_content(pdu["type"], pdu["content"], version)
    return out


@pytest.fixture(scope="module")
def own_server(server_factory):
    server = server_factory.launch({"STRATUS_TEST_SERVER": "pdus"})
    server.wait_ready()
    return server


def d1_file(state_dir):
    files = [f for f in (state_dir / "v3" / "d1").rglob("*.sqlite") if f.name != "metadata.sqlite"]
    assert len(files) == 1, files
    return files[0]


def stored_events(server, room_id: str) -> list[tuple[str, dict]]:
    with sqlite3.connect(f"file:{d1_file(server.workdir / 'state')}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT event_id, json FROM events WHERE room_id = ? ORDER BY depth", (room_id,)).fetchall()
    return [(event_id, json.loads(text)) for event_id, text in rows]


def published_key(url: str) -> tuple[str, VerifyKey, dict]:
    body = httpx.get(f"{url}/_matrix/key/v2/server").json()
    assert body["server_name"] == SERVER_NAME
    assert body["valid_until_ts"] > time.time() * 1000
    (key_id, key), = body["verify_keys"].items()
    assert key_id.startswith("ed25519:")
    verify_key = VerifyKey(b64decode(key["key"]))
    signature = b64decode(body["signatures"][SERVER_NAME][key_id])
    unsigned = {k: v for k, v in body.items() if k not in ("signatures", "unsigned")}
    verify_key.verify(canonical(unsigned), signature)  # raises if the self-signature is wrong
    return key_id, verify_key, body


def user_on(url: str) -> User:
    client = make_client(url)
    account = register(client)
    return User(client=client, user_id=account["user_id"], access_token=account["access_token"],
                device_id=account["device_id"])


@pytest.mark.parametrize("version", ["10", "11", "12"])
def test_every_stored_event_is_a_signed_pdu_of_its_room_version(own_server, version):
    key_id, verify_key, _ = published_key(own_server.url)
    alice, bob = user_on(own_server.url), user_on(own_server.url)
    room_id = create_room(alice, room_version=version, name="pdus", invite=[bob.user_id])
    join(bob, room_id)
    message = send_message(bob, room_id, "signed")
    send_state(alice, room_id, "m.room.topic", {"topic": "t"})
    assert alice.put(room_path(room_id, "redact", message, "r"), json={"reason": "x"}).status_code == 200

    events = stored_events(own_server, room_id)
    assert len(events) >= 9
    ids = set()
    for depth, (event_id, pdu) in enumerate(events, start=1):
        assert pdu["depth"] == depth
        assert "event_id" not in pdu, "v4+ PDUs carry no event_id"
        # Content hash: SHA-256 of the canonical JSON without unsigned, signatures and hashes.
        stripped = {k: v for k, v in pdu.items() if k not in ("unsigned", "signatures", "hashes")}
        assert pdu["hashes"]["sha256"] == unpadded(hashlib.sha256(canonical(stripped)).digest())
        # Signature: over the redacted event without signatures and unsigned.
        signed_part = {k: v for k, v in redacted(pdu, version).items() if k not in ("signatures", "unsigned")}
        verify_key.verify(canonical(signed_part), b64decode(pdu["signatures"][SERVER_NAME][key_id]))
        # Event ID: the reference hash, URL-safe.
        assert event_id == "$" + unpadded(hashlib.sha256(canonical(signed_part)).digest(), urlsafe=True)
        # Chained to the event before, authorized by events already in the room.
        assert pdu["prev_events"] == ([] if depth == 1 else [events[depth - 2][0]])
        assert set(pdu["auth_events"]) <= ids
        if version == "12":
            assert "m.room.create" not in [dict(events)[a]["type"] for a in pdu["auth_events"]]
        elif depth > 1:
            assert events[0][0] in pdu["auth_events"], "v10/v11 events cite the create event"
        ids.add(event_id)

    create_id, create = events[0]
    assert create["type"] == "m.room.create"
    if version == "12":
        assert "room_id" not in create
        assert room_id == "!" + create_id[1:], "a v12 room ID is its create event's hash"
    else:
        assert create["room_id"] == room_id


def test_the_signing_key_is_stable_and_survives_a_restart(own_server):
    key_id, _, first = published_key(own_server.url)
    assert published_key(own_server.url)[0] == key_id
    create_room(user_on(own_server.url))  # the key is in use
    url = own_server.restart()
    again_id, _, again = published_key(url)
    assert again_id == key_id
    assert again["verify_keys"] == first["verify_keys"]
