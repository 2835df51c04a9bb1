"""Application services built with the JavaScript frameworks, under the Node 22 of tests/js:
matrix-bot-sdk's `Appservice` (bots) and matrix-appservice-bridge's `Bridge` (the Node bridges).
Each scenario (`tests/js-appservice/*.mjs`) runs the framework's service on loopback and acts as
the user through the client API; the test then checks through HTTP what the service did."""

from __future__ import annotations

import json
import os
import secrets
import subprocess

import pytest

from appservices import Client, add_and_wait, new_user, registration
from conftest import ROOT, V3, free_port, make_client, path_quote, user_id_of
from js import NODE
from rooms import room_path

JS_DIR = ROOT / "tests" / "js-appservice"
TIMEOUT_S = 60
PING_EVENT = "org.matrix.bridge.ping"


def run_scenario(script: str, base_url: str, reg: dict, port: int, user: Client, user_id: str, room_id: str) -> dict:
    if not (JS_DIR / "node_modules" / "matrix-bot-sdk").exists() or not NODE.exists():
        pytest.fail("the js appservice frameworks are not installed: run `npm test`, or "
                    "`source scripts/env.sh; ensure_js_tests`")
    payload = {"base_url": base_url, "registration": reg, "port": port, "room_id": room_id,
               "user": {"user_id": user_id, "access_token": user.token}, "timeout_ms": TIMEOUT_S * 1000}
    env = {**os.environ, "STRATUS_JS_INPUT": json.dumps(payload)}
    try:
        done = subprocess.run([str(NODE), str(JS_DIR / script)], cwd=JS_DIR, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S + 10)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{script} hung\nstderr:\n{e.stderr}", pytrace=False)
    if done.returncode != 0:
        pytest.fail(f"{script} exited with {done.returncode}\n{done.stderr[-12000:]}", pytrace=False)
    return json.loads(done.stdout)


def messages(user: Client, room_id: str) -> list[dict]:
    return user.call("GET", room_path(room_id, "messages"), params={"dir": "b", "limit": 50})["chunk"]


@pytest.fixture
def setting(as_server, tmp_path):
    """A registered service on a free port (the scenario serves it), and a user with a public room."""
    port = free_port()
    reg = registration(f"as{secrets.token_hex(3)}", f"http://127.0.0.1:{port}", receive_ephemeral=True,
                       **{"de.sorunome.msc2409.push_ephemeral": True})
    add_and_wait(as_server.url, as_server.workdir / "state", tmp_path, reg)
    user = new_user(as_server.url)
    user_id = user.call("GET", f"{V3}/account/whoami")["user_id"]
    room_id = user.call("POST", f"{V3}/createRoom", json={"preset": "public_chat"})["room_id"]
    return reg, port, user, user_id, room_id


def test_matrix_bot_sdk_appservice(as_server, setting):
    reg, port, user, user_id, room_id = setting
    out = run_scenario("botsdk.mjs", as_server.url, reg, port, user, user_id, room_id)
    assert out["bot"] == user_id_of(reg["sender_localpart"])
    # The service saw the user's message once, and in the room's order after the bot's join.
    ids = [e["event_id"] for e in out["events"] if e["room_id"] == room_id]
    assert ids.count(out["sent"]) == 1
    bot_join = next(e["event_id"] for e in out["events"] if e["type"] == "m.room.member"
                    and e["state_key"] == out["bot"] and e["sender"] == out["bot"])
    assert ids.index(bot_join) < ids.index(out["sent"])
    # What the bot did is what the room holds.
    chunk = messages(user, room_id)
    echo = [e for e in chunk if e["type"] == "m.room.message" and e["content"]["body"] == "echoed hello"]
    assert [e["sender"] for e in echo] == [out["puppet"]], chunk
    assert any(e["type"] == "m.typing" and user_id in e["content"]["user_ids"] for e in out["ephemeral"])
    # The ghost was made by the query, with the display name the bot gave it.
    assert out["profile"]["displayname"] == "A ghost"
    # The lobby was made by the alias query, and the user is in it.
    joined = user.call("GET", f"{V3}/joined_rooms")["joined_rooms"]
    assert out["lobby"] in joined
    alias = user.call("GET", f"{V3}/directory/room/{path_quote('#' + reg['id'] + '-lobby:localhost')}")
    assert alias["room_id"] == out["lobby"]


def test_matrix_appservice_bridge(as_server, setting):
    reg, port, user, user_id, room_id = setting
    out = run_scenario("bridge.mjs", as_server.url, reg, port, user, user_id, room_id)
    assert out["bot"] == user_id_of(reg["sender_localpart"])
    # Its transactions brought the bot's invite and the user's message, once each.
    assert [e["event_id"] for e in out["events"]].count(out["sent"]) == 1
    assert any(e["type"] == "m.room.member" and e["state_key"] == out["bot"] for e in out["events"])
    chunk = messages(user, room_id)
    relayed = [e for e in chunk if e["type"] == "m.room.message" and e["content"]["body"] == "relayed hi"]
    assert [e["sender"] for e in relayed] == [out["ghost"]], chunk
    # The bridge's own ping event went through the room and came back in a transaction.
    assert out["ping_ms"] >= 0
    assert any(e["type"] == PING_EVENT and e["sender"] == out["bot"] for e in chunk), chunk
    assert out["profile"]["displayname"] == f"Remote {reg['id']}-remote"
    with make_client(as_server.url) as c:
        assert c.get(f"{V3}/profile/{path_quote(out['remote'])}").status_code == 200
