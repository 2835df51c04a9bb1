"""Batch helpers for tests of big rooms: accounts written straight into a server's local D1 in
one `wrangler d1 execute` (registering a thousand users over HTTP takes minutes on a loaded
machine), and joins sent side by side, which the room's writer commits in groups."""

from __future__ import annotations

import hashlib
import secrets
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from conftest import ROOT, V3, User, describe, make_client, unique_name, user_id_of

# Requests side by side: enough for the writer to commit joins in groups, few enough for
# `wrangler dev` on two cores.
PARALLEL = 12


def seed_users(base_url: str, state_dir: Path, count: int, tmp_dir: Path) -> list[User]:
    """`count` accounts with one device and access token each, made directly in D1: no
    password, as the admin API makes them. Every other request of theirs goes over HTTP."""
    now = int(time.time() * 1000)
    users, rows = [], {"users": [], "devices": [], "tokens": []}
    for _ in range(count):
        user_id, token = user_id_of(unique_name("bulk")), f"syt_{secrets.token_hex(16)}"
        device = f"BULK{secrets.token_hex(4).upper()}"
        digest = hashlib.sha256(token.encode()).hexdigest()
        rows["users"].append(f"('{user_id}', {now})")
        rows["devices"].append(f"('{user_id}', '{device}', {now})")
        rows["tokens"].append(f"('{digest}', '{user_id}', '{device}', {now})")
        users.append(User(make_client(base_url), user_id, token, device))
    # D1 refuses a statement over 100 KB: a hundred rows each.
    statements = [
        f"INSERT INTO {table} VALUES {', '.join(rows[key][i:i + 100])};"
        for key, table in [("users", "users (user_id, created_ms)"),
                           ("devices", "devices (user_id, device_id, created_ms)"),
                           ("tokens", "access_tokens (token_hash, user_id, device_id, created_ms)")]
        for i in range(0, count, 100)
    ]
    sql = tmp_dir / f"seed-{secrets.token_hex(4)}.sql"
    sql.write_text("\n".join(statements))
    done = subprocess.run(
        [str(ROOT / "node_modules" / ".bin" / "wrangler"), "d1", "execute", "DB", "--local", "--persist-to",
         str(state_dir), "--file", str(sql)],
        cwd=ROOT, capture_output=True, text=True, input="y\n", timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    return users


def post_retrying(user: User, path: str, body: dict) -> httpx.Response:
    """An idempotent POST, sent again when `wrangler dev`'s proxy drops it: its 503 "worker
    restarted mid-request" comes from the dev proxy losing the connection (workers-sdk#14641),
    not from the worker."""
    for _ in range(5):
        try:
            resp = user.post(path, json=body, timeout=120)
        except httpx.TransportError:
            continue
        if resp.status_code != 503:
            return resp
    return resp


def join_all(users: list[User], room_id: str) -> None:
    def join(user: User) -> None:
        resp = post_retrying(user, f"{V3}/join/{room_id}", {})
        assert resp.status_code == 200, describe(resp)

    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(join, users))
