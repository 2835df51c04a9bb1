"""Concurrent senders into one room get one total order: no gaps, no duplicates, strictly
increasing stream positions, and each sender's own order kept. And a writer that loses its memory
(a restart evicts every Durable Object) loses nothing acknowledged."""

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import User, assert_ok, make_client, register
from rooms import create_room, join, room_path, send_message

SENDERS = 5
MESSAGES = 50


@pytest.fixture(scope="module")
def own_server(server_factory):
    """A server of this module's own, so that its D1 file holds only this test's rooms."""
    server = server_factory.launch({"STRATUS_TEST_SERVER": "concurrency"})
    server.wait_ready()
    return server


def d1_rows(server, sql: str, *params) -> list[tuple]:
    files = [f for f in (server.workdir / "state" / "v3" / "d1").rglob("*.sqlite") if f.name != "metadata.sqlite"]
    assert len(files) == 1, files
    with sqlite3.connect(f"file:{files[0]}?mode=ro", uri=True) as db:
        return db.execute(sql, params).fetchall()


def new_user(url) -> User:
    client = make_client(url)
    account = register(client)
    return User(client=client, user_id=account["user_id"], access_token=account["access_token"],
                device_id=account["device_id"])


def test_five_senders_fifty_messages_each(own_server):
    url = own_server.url
    owner = new_user(url)
    room_id = create_room(owner, preset="public_chat")
    senders = [new_user(url) for _ in range(SENDERS)]
    for sender in senders:
        join(sender, room_id)

    def send_all(index: int) -> list[str]:
        sender = senders[index]
        return [send_message(sender, room_id, f"{index}:{n}", txn=f"c{n}") for n in range(MESSAGES)]

    with ThreadPoolExecutor(SENDERS) as pool:
        sent = list(pool.map(send_all, range(SENDERS)))

    all_ids = [event_id for ids in sent for event_id in ids]
    assert len(set(all_ids)) == SENDERS * MESSAGES, "every send made its own event"

    # Over HTTP: each message exactly once, and each sender's messages in the order sent.
    chunk = assert_ok(owner.get(room_path(room_id, "messages"),
                                params={"dir": "f", "limit": 1000}))["chunk"]
    messages = [e for e in chunk if e["type"] == "m.room.message"]
    assert sorted(e["event_id"] for e in messages) == sorted(all_ids)
    for index, ids in enumerate(sent):
        seen = [e["event_id"] for e in messages if e["sender"] == senders[index].user_id]
        assert seen == ids, f"sender {index}'s order"
        assert [e["content"]["body"] for e in messages if e["sender"] == senders[index].user_id] == [
            f"{index}:{n}" for n in range(MESSAGES)]

    # In D1: one chain (depth 1..N without gaps) whose stream positions strictly increase.
    rows = d1_rows(own_server, "SELECT depth, stream_ordering, event_id, prev_events FROM ("
                   "SELECT depth, stream_ordering, event_id, json_extract(json, '$.prev_events') AS prev_events "
                   "FROM events WHERE room_id = ?) ORDER BY depth", room_id)
    depths = [r[0] for r in rows]
    assert depths == list(range(1, len(rows) + 1)), "no gaps, no duplicates in the room's order"
    positions = [r[1] for r in rows]
    assert all(a < b for a, b in zip(positions, positions[1:])), "stream positions strictly increase"
    for previous, row in zip(rows, rows[1:]):
        assert row[3] == f'["{previous[2]}"]', "each event follows the one before it"
    assert set(all_ids) <= {r[2] for r in rows}


def test_a_restarted_writer_loses_nothing_and_keeps_transaction_ids(own_server):
    owner = new_user(own_server.url)
    room_id = create_room(owner, preset="public_chat")
    before = [send_message(owner, room_id, f"b{n}", txn=f"r{n}") for n in range(5)]
    url = own_server.restart()
    owner.client = make_client(url)
    # The retry of an acknowledged transaction finds its event in D1, not a second event.
    assert send_message(owner, room_id, "b4", txn="r4") == before[4]
    after = [send_message(owner, room_id, f"a{n}", txn=f"s{n}") for n in range(3)]
    chunk = assert_ok(owner.get(room_path(room_id, "messages"), params={"dir": "f", "limit": 100}))["chunk"]
    assert [e["event_id"] for e in chunk if e["type"] == "m.room.message"] == before + after
    rows = d1_rows(own_server, "SELECT depth FROM events WHERE room_id = ? ORDER BY depth", room_id)
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1)), "the chain continues without a fork"
