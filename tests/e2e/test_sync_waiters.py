"""The waiters of long-polling syncs: a client that disconnects frees its waiter, and a device
holds at most MAX_WAITERS_PER_DEVICE (durable_objects/user_sync.rs) at once, its oldest giving way.

wrangler dev puts a proxy in front of the worker that does not pass a client's disconnect on, so
the disconnecting client here talks to the worker's own socket (found among the server's
listening sockets), as the edge does in production. workerd notices a reset connection."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from urllib.parse import urlparse

import httpx
import pytest

from conftest import V3, assert_ok, register

MAX_WAITERS_PER_DEVICE = 8


@pytest.fixture(scope="module")
def server(server_factory):
    server = server_factory.launch({"ALLOW_GUEST_ACCESS": "false"})
    server.wait_ready()
    return server


def listening_ports(process_group: int) -> set[int]:
    """The TCP ports that the processes of a process group listen on (from /proc)."""
    inodes = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) != process_group:
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    ports = set()
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].split(":")[1], 16))
    return ports


def worker_port(server) -> int:
    """The port where the worker itself (not wrangler's proxy) answers."""
    public = urlparse(server.url).port
    for port in sorted(listening_ports(server.proc.pid) - {public}):
        try:
            resp = httpx.get(f"http://127.0.0.1:{port}/_matrix/client/versions", timeout=2)
        except httpx.HTTPError:
            continue
        if resp.status_code == 200 and "versions" in resp.text:
            return port
    pytest.fail("no socket of the worker itself was found")


class LongPoll:
    """A /sync that waits in a thread."""

    def __init__(self, url: str, token: str, since: str):
        self.response: dict | None = None
        self.returned_at: float | None = None
        self.thread = threading.Thread(target=self._run, args=(url, token, since), daemon=True)
        self.thread.start()

    def _run(self, url: str, token: str, since: str) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            resp = client.get(f"{V3}/sync", params={"since": since, "timeout": 30_000, "set_presence": "offline"},
                              headers={"Authorization": f"Bearer {token}"})
        self.response = assert_ok(resp)
        self.returned_at = time.monotonic()

    @property
    def done(self) -> bool:
        return self.returned_at is not None


def abandoned_sync(port: int, token: str, since: str) -> None:
    """A sync whose client goes away while it waits: the connection is reset."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"GET {V3}/sync?since={since}&timeout=30000&set_presence=offline HTTP/1.1\r\n"
                 f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    time.sleep(0.5)  # long enough to be waiting
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_a_disconnected_client_frees_its_waiter_and_a_device_holds_a_bounded_number(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        account = register(client)
        token = account["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        since = assert_ok(client.get(f"{V3}/sync", params={"set_presence": "offline"}, headers=auth))["next_batch"]
        polls = []
        for _ in range(MAX_WAITERS_PER_DEVICE - 1):
            polls.append(LongPoll(server.url, token, since))
            time.sleep(0.3)  # registered in this order
        # One more of the device's syncs, from a client that then disconnects.
        abandoned_sync(worker_port(server), token, since)
        time.sleep(0.5)
        polls.append(LongPoll(server.url, token, since))
        time.sleep(1.5)
        assert not any(p.done for p in polls), "the abandoned waiter was freed, so no live one gave way"

        # One over the limit: the device's oldest waiter gives way at once, with a valid response.
        polls.append(LongPoll(server.url, token, since))
        time.sleep(1.5)
        assert [p.done for p in polls] == [True] + [False] * MAX_WAITERS_PER_DEVICE
        assert polls[0].response["next_batch"] and polls[0].response["rooms"]["join"] == {}

        # The others still wake on a change.
        body = {"woken": True}
        assert_ok(client.put(f"{V3}/user/{account['user_id']}/account_data/org.example.wake", json=body, headers=auth))
        for poll in polls[1:]:
            poll.thread.join(timeout=10)
            assert poll.done
            assert {"type": "org.example.wake", "content": body} in poll.response["account_data"]["events"]
