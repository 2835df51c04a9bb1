"""Application service transactions: the events a service is interested in reach it in order,
through its Appservice object's durable queue, and survive the service's outage and the
server's restart."""

from __future__ import annotations

import secrets

import pytest

from appservices import CONFIG, FakeService, add_and_wait, registration
from conftest import V3, assert_ok, auth_header, make_client, register, unique_name, user_id_of
from rooms import room_path


@pytest.fixture(scope="module")
def as_server(server_factory):
    server = server_factory.launch(CONFIG)
    server.wait_ready()
    return server


@pytest.fixture
def service(as_server, tmp_path):
    reg = registration(f"as{secrets.token_hex(3)}", None)
    fake = FakeService(reg["hs_token"])
    reg["url"] = fake.url
    add_and_wait(as_server.url, as_server.workdir / "state", tmp_path, reg)
    yield reg, fake
    fake.stop()


class Client:
    def __init__(self, url: str, token: str):
        self.url, self.token = url, token

    def call(self, method: str, path: str, **kwargs):
        with make_client(self.url) as c:
            return assert_ok(c.request(method, path, headers=auth_header(self.token), **kwargs))

    def send(self, room_id: str, body: str) -> str:
        path = room_path(room_id, "send", "m.room.message", secrets.token_hex(8))
        return self.call("PUT", path, json={"msgtype": "m.text", "body": body})["event_id"]


def new_user(url: str) -> Client:
    with make_client(url) as c:
        return Client(url, register(c, unique_name())["access_token"])


def delivered_events(fake: FakeService) -> list[dict]:
    """The events of the transactions the service accepted, each transaction ID counted once."""
    seen, events = set(), []
    for txn in fake.transactions():
        if txn["status"] == 200 and txn["path"] not in seen:
            seen.add(txn["path"])
            events.extend(txn["body"]["events"])
    return events


def test_interested_events_are_delivered_in_order(as_server, service):
    reg, fake = service
    alice = new_user(as_server.url)
    watched = alice.call("POST", f"{V3}/createRoom", json={})["room_id"]
    other = alice.call("POST", f"{V3}/createRoom", json={})["room_id"]
    # The service's sender joins one room: everything there concerns the service from then on.
    bot = Client(as_server.url, reg["as_token"])
    alice.call("POST", room_path(watched, "invite"), json={"user_id": user_id_of(reg["sender_localpart"])})
    bot.call("POST", room_path(watched, "join"), json={})
    sent = [alice.send(watched, f"m{i}") for i in range(5)]
    alice.send(other, "not for the service")
    fake.wait_for(lambda: set(sent) <= {e["event_id"] for e in delivered_events(fake)}, what="the messages")
    events = delivered_events(fake)
    ids = [e["event_id"] for e in events]
    assert [i for i in ids if i in sent] == sent
    assert all(e["room_id"] == watched for e in events), events
    # The invite concerns the service (its user is the state key), and the join too.
    members = [(e["state_key"], e["content"]["membership"]) for e in events if e["type"] == "m.room.member"]
    assert members == [(user_id_of(reg["sender_localpart"]), "invite"), (user_id_of(reg["sender_localpart"]), "join")]
    message = next(e for e in events if e["event_id"] == sent[0])
    assert message["content"]["body"] == "m0" and message["sender"].startswith("@user-")
    for txn in fake.transactions():
        assert txn["method"] == "PUT" and txn["authorization"] == f"Bearer {reg['hs_token']}"
    assert len({t["path"] for t in fake.transactions()}) == len(fake.transactions())


def test_outage_and_restart_lose_nothing_and_retry_the_same_transaction(as_server, service):
    reg, fake = service
    alice = new_user(as_server.url)
    rooms = []
    for _ in range(3):
        room = alice.call("POST", f"{V3}/createRoom", json={})["room_id"]
        alice.call("POST", room_path(room, "invite"), json={"user_id": user_id_of(reg["sender_localpart"])})
        Client(as_server.url, reg["as_token"]).call("POST", room_path(room, "join"), json={})
        rooms.append(room)
    fake.wait_for(lambda: len(delivered_events(fake)) >= 3, what="the joins")
    # The service fails: first down, then answering 503.
    fake.stop()
    sent = {room: [] for room in rooms}
    for i in range(300):
        room = rooms[i % 3]
        sent[room].append(alice.send(room, f"n{i}"))
    fake.status = 503
    fake.start()
    fake.wait_for(lambda: len([t for t in fake.transactions() if t["status"] == 503]) >= 2, timeout=60,
                  what="two failed attempts")
    # The server restarts mid-queue: the Appservice object loses its memory, not its queue.
    url = as_server.restart()
    fake.status = 200
    fake.wait_for(lambda: len([e for e in delivered_events(fake) if e["type"] == "m.room.message"]) >= 300,
                  timeout=300, what="all 300 messages")
    messages = [e for e in delivered_events(fake) if e["type"] == "m.room.message"]
    assert len(messages) == 300, "each event exactly once"
    for room in rooms:
        assert [e["event_id"] for e in messages if e["room_id"] == room] == sent[room]
    # A retried transaction has the same ID and the same body.
    by_path: dict[str, set[bytes]] = {}
    for txn in fake.transactions():
        by_path.setdefault(txn["path"], set()).add(txn["raw"])
    assert all(len(bodies) == 1 for bodies in by_path.values())
    failed = {t["path"] for t in fake.transactions() if t["status"] == 503}
    assert failed and failed <= {t["path"] for t in fake.transactions() if t["status"] == 200}
    assert all(len(t["body"]["events"]) <= 100 for t in fake.transactions())
    assert url
