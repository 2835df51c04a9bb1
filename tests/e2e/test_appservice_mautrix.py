"""A real application service framework against the server: mautrix-python's `AppService` (the
library of the mautrix Python bridges), with ephemeral events and MSC3202 on. It pings itself
through the server, registers puppets, creates and joins rooms, sends with a massaged timestamp,
answers a user query by creating the user, and receives room events, typing, receipts,
presence, to-device messages, device list changes and key counts in its transactions."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time

import pytest
from mautrix.appservice import AppService
from mautrix.appservice.state_store import FileASStateStore
from mautrix.types import EventType

from appservices import add_and_wait, new_user, registration
from conftest import V3, User, assert_ok, free_port, make_client, path_quote, user_id_of
from e2ee import Device
from rooms import room_path

# mautrix 0.21 still hands aiohttp the event loop it runs on.
pytestmark = pytest.mark.filterwarnings("ignore:loop argument is deprecated:DeprecationWarning")


class Mautrix:
    """mautrix's AppService on its own event loop in a thread; it records what it receives."""

    def __init__(self, reg: dict, server_url: str, port: int, state_path: str):
        self.received: list = []
        self.to_device: list = []
        self.device_lists: list = []
        self.otk_counts: list = []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.az: AppService = self.run(self._start(reg, server_url, port, state_path))

    def run(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self, reg: dict, server_url: str, port: int, state_path: str) -> AppService:
        az = AppService(server=server_url, domain="localhost", as_token=reg["as_token"], hs_token=reg["hs_token"],
                        bot_localpart=reg["sender_localpart"], id=reg["id"], loop=self.loop,
                        state_store=FileASStateStore(path=state_path, binary=False),
                        query_user=self._query_user, ephemeral_events=True, encryption_events=True)
        az.matrix_event_handler(self._record(self.received))
        az.to_device_handler = self._record(self.to_device)
        az.device_list_handler = self._record(self.device_lists)
        az.otk_handler = self._record(self.otk_counts)
        await az.start("127.0.0.1", port)
        return az

    def _record(self, into: list):
        async def handler(item):
            with self.lock:
                into.append(item)
        return handler

    async def _query_user(self, user_id: str):
        # A bridge creates the ghost of a remote user when the homeserver asks about it.
        if "-ghost" not in user_id:
            return None
        await self.az.intent.user(user_id).ensure_registered()
        return {"user_id": user_id}

    def wait_for(self, predicate, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if predicate():
                    return
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.2)

    def stop(self) -> None:
        self.run(self.az.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def mautrix(as_server, tmp_path):
    port = free_port()
    reg = registration(f"as{secrets.token_hex(3)}", f"http://127.0.0.1:{port}", receive_ephemeral=True,
                       **{"org.matrix.msc3202": True})
    service = Mautrix(reg, as_server.url, port, str(tmp_path / "mx-state.json"))
    add_and_wait(as_server.url, as_server.workdir / "state", tmp_path, reg)
    yield reg, service
    service.stop()


def test_mautrix_appservice(as_server, mautrix):
    reg, mx = mautrix
    prefix = reg["id"]
    az = mx.az
    assert mx.run(az.ping_self("mautrix-ping")) >= 0
    # A puppet registers itself; the bot creates a room and invites it and a real user.
    puppet = az.intent.user(user_id_of(f"{prefix}-puppet"))
    mx.run(puppet.ensure_registered())
    alice = new_user(as_server.url)
    alice_id = alice.call("GET", f"{V3}/account/whoami")["user_id"]
    room = mx.run(az.intent.create_room(name="bridged", invitees=[puppet.mxid, alice_id]))
    mx.run(puppet.ensure_joined(room))
    alice.call("POST", room_path(room, "join"), json={})
    sent = mx.run(puppet.send_text(room, "from the remote network", timestamp=1_600_000_000_000))
    assert alice.call("GET", room_path(room, "event", sent))["origin_server_ts"] == 1_600_000_000_000

    # What the user does reaches the bridge: a message, typing, a receipt and presence.
    message = alice.send(room, "hello bridge")
    alice.call("PUT", room_path(room, "typing", alice_id), json={"typing": True, "timeout": 10000})
    alice.call("POST", room_path(room, "receipt", "m.read", message), json={})
    alice.call("PUT", f"{V3}/presence/{path_quote(alice_id)}/status", json={"presence": "unavailable"})

    def seen(kind: EventType, test) -> bool:
        return any(e.type == kind and test(e) for e in mx.received)

    mx.wait_for(lambda: seen(EventType.ROOM_MESSAGE, lambda e: e.event_id == message), "the message")
    mx.wait_for(lambda: seen(EventType.TYPING, lambda e: e.room_id == room and alice_id in e.content.user_ids),
                "typing")
    mx.wait_for(lambda: seen(EventType.RECEIPT, lambda e: e.room_id == room and message in e.content), "the receipt")
    mx.wait_for(lambda: seen(EventType.PRESENCE, lambda e: e.sender == alice_id), "presence")

    # The user asks for the profile of a ghost that does not exist yet: the bridge creates it.
    ghost = user_id_of(f"{prefix}-ghost1")
    with make_client(as_server.url) as c:
        assert_ok(c.get(f"{V3}/profile/{path_quote(ghost)}"))

    # An encrypting bridge's device: its keys' counts and device list changes, and to-device.
    with make_client(as_server.url) as c:
        login = assert_ok(c.post(f"{V3}/login", headers={"Authorization": f"Bearer {reg['as_token']}"},
                                 json={"type": "m.login.application_service", "device_id": "MAUTRIX",
                                       "identifier": {"type": "m.id.user", "user": puppet.mxid}}))
    device = Device(User(make_client(as_server.url), puppet.mxid, login["access_token"], "MAUTRIX"))
    device.upload_ok(device_keys=device.device_keys(), one_time_keys=device.one_time_keys(3))
    alice.call("PUT", f"{V3}/sendToDevice/m.test/{secrets.token_hex(4)}",
               json={"messages": {puppet.mxid: {"MAUTRIX": {"hi": "there"}}}})
    mx.wait_for(lambda: any(e.to_user_id == puppet.mxid and e.to_device_id == "MAUTRIX" for e in mx.to_device),
                "the to-device message")
    mx.wait_for(lambda: any(puppet.mxid in d.changed for d in mx.device_lists), "the device list change")
    mx.wait_for(lambda: any(c.get(puppet.mxid, {}).get("MAUTRIX") is not None
                            and c[puppet.mxid]["MAUTRIX"].signed_curve25519 == 3 for c in mx.otk_counts),
                "the one-time key count")
