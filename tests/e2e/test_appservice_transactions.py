"""Application service transactions: the events a service is interested in reach it in order,
through its Appservice object's durable queue, and survive the service's outage and the
server's restart."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

from appservices import Client, FakeService, add_and_wait, new_user, registration
from conftest import V3, user_id_of
from rooms import room_path


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
    # The backoff grew while the 300 sends went to a service that was down (longer on a loaded
    # machine): the next attempt may be minutes away.
    fake.wait_for(lambda: any(t["status"] == 503 for t in fake.transactions()), timeout=300,
                  what="a failed attempt")
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


def test_hand_offs_survive_a_restart_right_after_the_sends(as_server, tmp_path):
    """The writer hands committed events to the services in the background, after the senders have
    their answers. A restart right after the last answer loses what was not handed off yet from
    memory, not from the room: the next commit hands the rest off first. Each of three services
    gets every event exactly once, in the room's order."""
    fakes, regs = [], []
    for _ in range(3):
        reg = registration(f"as{secrets.token_hex(3)}", None)
        fake = FakeService(reg["hs_token"])
        reg["url"] = fake.url
        add_and_wait(as_server.url, as_server.workdir / "state", tmp_path, reg)
        fakes.append(fake)
        regs.append(reg)
    try:
        alice = new_user(as_server.url)
        room = alice.call("POST", f"{V3}/createRoom", json={})["room_id"]
        for reg in regs:
            alice.call("POST", room_path(room, "invite"), json={"user_id": user_id_of(reg["sender_localpart"])})
            Client(as_server.url, reg["as_token"]).call("POST", room_path(room, "join"), json={})
        # Four senders side by side, so that commits come in batches and hand-offs queue up.
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: alice.send(room, f"burst {i}"), range(60)))
        url = as_server.restart()
        alice = Client(url, alice.token)
        last = alice.send(room, "after the restart")
        chunk = alice.call("GET", room_path(room, "messages"), params={"dir": "f", "limit": 200})["chunk"]
        in_room = [e["event_id"] for e in chunk if e["type"] == "m.room.message"]
        assert len(in_room) == 61 and in_room[-1] == last
        for fake in fakes:
            fake.wait_for(lambda: last in {e["event_id"] for e in delivered_events(fake)}, timeout=60,
                          what="the message after the restart")
            got = [e["event_id"] for e in delivered_events(fake) if e["type"] == "m.room.message"]
            assert got == in_room, "each message once, in the room's order"
    finally:
        for fake in fakes:
            fake.stop()
