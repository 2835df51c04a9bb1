"""A push gateway for the tests: a threaded HTTP server on 127.0.0.1 that records every
`POST /_matrix/push/v1/notify` and answers as the test says (200, an error status, rejected
pushkeys). It can be stopped and started again on the same port, to play a gateway that is down."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NOTIFY_PATH = "/_matrix/push/v1/notify"


@dataclass
class Push:
    """One request the gateway received, and the status it answered."""

    path: str
    body: dict
    status: int

    @property
    def notification(self) -> dict:
        return self.body["notification"]

    @property
    def pushkey(self) -> str:
        return self.notification["devices"][0]["pushkey"]


class PushGateway:
    def __init__(self, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}{NOTIFY_PATH}"
        # What the next requests get: a status, and which of their pushkeys a 200 rejects.
        self.status = 200
        self.rejected: set[str] = set()
        self._received: list[Push] = []
        self._changed = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"unparsable": raw.decode(errors="replace")}
                status, rejected = gateway.status, gateway.rejected
                answer = {}
                if status == 200:
                    devices = body.get("notification", {}).get("devices", [])
                    answer = {"rejected": [d["pushkey"] for d in devices if d.get("pushkey") in rejected]}
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                with gateway._changed:
                    gateway._received.append(Push(self.path, body, status))
                    gateway._changed.notify_all()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Closes the port: requests fail to connect until `start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def received(self, pushkey: str | None = None, status: int | None = 200) -> list[Push]:
        """The requests so far (for `pushkey`, answered with `status`; None for any)."""
        with self._changed:
            return [p for p in self._received
                    if (pushkey is None or p.pushkey == pushkey) and (status is None or p.status == status)]

    def wait_for(self, count: int, pushkey: str | None = None, status: int | None = 200,
                 timeout: float = 20) -> list[Push]:
        """Waits until at least `count` matching requests have come; returns them all."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matching = [p for p in self._received
                            if (pushkey is None or p.pushkey == pushkey) and (status is None or p.status == status)]
                remaining = deadline - time.monotonic()
                if len(matching) >= count or remaining <= 0:
                    return matching
                self._changed.wait(remaining)
