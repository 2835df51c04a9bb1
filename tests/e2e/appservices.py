"""Application service helpers: a server of their own, registrations through `npm run appservice`,
and fake services (plain HTTP servers on loopback) that record what the homeserver sends them."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from conftest import ROOT, SERVER_NAME, V3, assert_ok, auth_header, describe, make_client, register, unique_name
from rooms import room_path

def appservice_command(state_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """Runs `npm run appservice -- ARGS` against a server's state."""
    # The command finds the server that serves the state through the port it noted there.
    env = {k: v for k, v in os.environ.items() if k != "PORT"} | {"STATE_DIR": str(state_dir)}
    return subprocess.run([str(ROOT / "scripts" / "appservice"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def registration(prefix: str, url: str | None, **extra) -> dict:
    """A registration whose users are `@PREFIX-…` and aliases `#PREFIX-…`, exclusive."""
    return {
        "id": prefix,
        "url": url,
        "as_token": f"as-{secrets.token_hex(16)}",
        "hs_token": f"hs-{secrets.token_hex(16)}",
        "sender_localpart": f"{prefix}-bot",
        "namespaces": {
            "users": [{"exclusive": True, "regex": f"@{prefix}-.*:{SERVER_NAME}"}],
            "aliases": [{"exclusive": True, "regex": f"#{prefix}-.*:{SERVER_NAME}"}],
            "rooms": [],
        },
        "rate_limited": False,
        **extra,
    }


def to_yaml(reg: dict) -> str:
    # JSON is YAML; bridges write block style, which the unit tests of the command cover.
    return json.dumps(reg, indent=2)


def add(state_dir: Path, tmp_path: Path, reg: dict) -> subprocess.CompletedProcess:
    path = tmp_path / f"{reg['id']}-{secrets.token_hex(4)}.yaml"
    path.write_text(to_yaml(reg))
    return appservice_command(state_dir, "add", str(path))


def add_and_wait(base_url: str, state_dir: Path, tmp_path: Path, reg: dict) -> None:
    """Adds a registration and waits until the running server accepts its token."""
    done = add(state_dir, tmp_path, reg)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 15
    while True:
        resp = httpx.get(f"{base_url}{V3}/account/whoami", headers={"Authorization": f"Bearer {reg['as_token']}"})
        if resp.status_code == 200:
            return
        assert time.monotonic() < deadline, describe(resp)
        time.sleep(0.3)


class FakeService:
    """An application service on 127.0.0.1: it records every request, answers `status` (or what
    `answer(method, path)` returns, when it returns a (status, body) pair), and can be stopped
    and started again on the same port."""

    def __init__(self, hs_token: str):
        self.hs_token = hs_token
        self.requests: list[dict] = []
        self.status = 200
        self.answer = lambda method, path: None
        self.lock = threading.Lock()
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                custom = service.answer(self.command, self.path)
                with service.lock:
                    status, body = custom if custom else (service.status, {})
                    service.requests.append({
                        "method": self.command, "path": self.path, "status": status,
                        "authorization": self.headers.get("Authorization"),
                        "body": json.loads(raw) if raw else None, "raw": raw,
                    })
                body = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_PUT = do_POST = do_GET = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def transactions(self) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"].startswith("/_matrix/app/v1/transactions/")]

    def delivered(self) -> list[dict]:
        """The bodies of the transactions the service accepted, each transaction ID once."""
        seen, bodies = set(), []
        for txn in self.transactions():
            if txn["status"] == 200 and txn["path"] not in seen:
                seen.add(txn["path"])
                bodies.append(txn["body"])
        return bodies

    def wait_for(self, predicate, timeout: float = 20.0, what: str = "requests") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}; got {self.requests[-5:]}"
            time.sleep(0.2)


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
