"""Benchmarks a Stratus server: bundle size, cold start, request latency, the cost of a login,
room sends and creation (latency, and throughput with concurrent senders), sync, push delivery
to a push gateway on loopback, end-to-end encryption (key claims, device lists in sync), and
application services (delivery latency and throughput to services on loopback, and what three
interested services cost a sender)."""

import argparse
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote
from pathlib import Path

import httpx

VERSIONS = "/_matrix/client/versions"
GOAL_GZIPPED_BYTES = 1_000_000  # the size goal: the Wasm under 1 MB gzipped
FREE_PLAN_CPU_MS = 10  # the Workers free plan's CPU time limit per request


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="", help="the server to measure, on 127.0.0.1")
    parser.add_argument("--wasm", type=Path, help="build/index_bg.wasm, for the bundle size")
    parser.add_argument("--serve", help="scripts/serve, to measure cold starts (skipped without)")
    parser.add_argument("--cold-starts", type=int, default=2, help="server launches to time")
    parser.add_argument("--versions", type=int, default=500, help="GET /versions requests")
    parser.add_argument("--whoami", type=int, default=500, help="GET /account/whoami requests")
    parser.add_argument("--logins", type=int, default=200, help="POST /login requests")
    parser.add_argument("--warmup", type=int, default=20, help="uncounted requests before each")
    parser.add_argument("--sends", type=int, default=300, help="sends for the one-sender latency")
    parser.add_argument("--creates", type=int, default=50, help="createRoom requests")
    parser.add_argument("--throughput-sends", type=int, default=400, help="sends per throughput run")
    parser.add_argument("--wakeups", type=int, default=50, help="send-to-sync wake-ups to time")
    parser.add_argument("--sync-rooms", type=int, default=50, help="rooms of the initial-sync user")
    parser.add_argument("--sync-events", type=int, default=100, help="events per room of the initial-sync user")
    parser.add_argument("--fanout", type=int, default=200, help="members waiting in the fan-out room")
    parser.add_argument("--push-members", type=int, default=100, help="members with a pusher in the push room")
    parser.add_argument("--push-sends", type=int, default=50, help="sends for each push send latency")
    parser.add_argument("--claim-devices", type=int, default=50, help="devices named in one /keys/claim")
    parser.add_argument("--claims", type=int, default=30, help="/keys/claim requests to time")
    parser.add_argument("--device-list-rooms", type=int, default=50, help="rooms of the device-list sync user")
    parser.add_argument("--appservices", type=Path,
                        help="a folder of registrations made by --write-appservices and registered on the server")
    parser.add_argument("--write-appservices", type=Path, metavar="DIR",
                        help="only write the benchmark's registrations into DIR (one JSON file each) and exit")
    parser.add_argument("--as-sends", type=int, default=100, help="sends for each application service latency")
    parser.add_argument("--as-throughput-sends", type=int, default=300, help="sends for the delivery throughput")
    parser.add_argument("--no-presence", action="store_true",
                        help="skip the presence fan-out (for a server with presence off)")
    args = parser.parse_args()
    if args.write_appservices:
        write_appservices(args.write_appservices)
        raise SystemExit(0)
    if not args.url.startswith("http://127.0.0.1:"):
        parser.error("--url must be a loopback address, http://127.0.0.1:PORT")
    return args


def bundle_size(wasm: Path) -> None:
    """The Wasm module raw and gzipped (as `gzip -9` does), and its JavaScript shim."""
    print("Bundle size")
    if not wasm.exists():
        print(f"  skipped: no {wasm}")
        return
    gzipped = len(subprocess.run(["gzip", "-9", "-c", wasm], capture_output=True, check=True).stdout)
    verdict = "meets" if gzipped < GOAL_GZIPPED_BYTES else "MISSES"
    print(f"  {wasm.name}: {wasm.stat().st_size:,} bytes raw")
    print(f"  {wasm.name}: {gzipped:,} bytes gzipped (gzip -9); {verdict} the goal of < 1 MB gzipped")
    shim = wasm.with_name("index.js")
    if shim.exists():
        print(f"  {shim.name}: {shim.stat().st_size:,} bytes raw")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cold_start(serve: str) -> tuple[float, float, float]:
    """Launches a server with empty state; returns the ms until the first 200 from /versions,
    the latency of that first request and that of the next one."""
    with tempfile.TemporaryDirectory() as tmp, open(f"{tmp}/server.log", "w") as log:
        port = free_port()
        env = dict(os.environ, PORT=str(port), INSPECTOR_PORT=str(free_port()), STATE_DIR=f"{tmp}/state")
        url = f"http://127.0.0.1:{port}{VERSIONS}"
        launched = time.perf_counter()
        server = subprocess.Popen([serve], env=env, stdout=log, stderr=log, start_new_session=True)
        try:
            with httpx.Client(timeout=60) as client:
                while time.perf_counter() - launched < 120 and server.poll() is None:
                    sent = time.perf_counter()
                    try:
                        if client.get(url).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.01)
                else:
                    log.flush()
                    raise RuntimeError("the server did not start:\n" + Path(log.name).read_text())
                answered = time.perf_counter()
                second = timed(lambda: client.get(url))
            return 1000 * (answered - launched), 1000 * (answered - sent), 1000 * second
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def cold_starts(serve: str, launches: int) -> None:
    """Times `launches` fresh servers, one after the other."""
    print("Cold start (launch of scripts/serve with empty state, D1 migrations included)")
    for i in range(1, launches + 1):
        ready, first, second = cold_start(serve)
        print(f"  launch {i}: first 200 from GET /versions after {ready:,.0f} ms; "
              f"first request {first:.1f} ms, next {second:.1f} ms")
    print("  (the first request is sent as soon as the port accepts it, so it may also wait for "
          "the worker to load)")


def timed(request, status: int = 200) -> float:
    """Seconds that one request takes; fails unless it answers with `status`."""
    start = time.perf_counter()
    response = request()
    elapsed = time.perf_counter() - start
    if response.status_code != status:
        raise RuntimeError(f"expected {status}, got {response.status_code}: {response.text}")
    return elapsed


def latency(name: str, request, count: int, warmup: int, status: int = 200) -> dict[str, float]:
    """Times `count` sequential requests after `warmup` uncounted ones; prints and returns stats."""
    for _ in range(warmup):
        timed(request, status)
    ms = [1000 * timed(request, status) for _ in range(count)]
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    stats = {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "mean": statistics.fmean(ms)}
    figures = ", ".join(f"{key} {value:.2f} ms" for key, value in stats.items())
    print(f"  {name} ({count} requests): {figures}, {1000 * count / sum(ms):,.0f} req/s")
    return stats


def register(client: httpx.Client, username: str, password: str) -> str:
    """Registers through the dummy UIA stage; returns the access token."""
    body = {"username": username, "password": password}
    first = client.post("/_matrix/client/v3/register", json=body)
    session = first.json()["session"]
    auth = {"type": "m.login.dummy", "session": session}
    response = client.post("/_matrix/client/v3/register", json={**body, "auth": auth})
    response.raise_for_status()
    return response.json()["access_token"]


def latencies(url: str, args: argparse.Namespace) -> tuple[dict, dict]:
    """Sequential requests over one keep-alive connection. Returns the stats of a failed login
    of an unknown user and of a wrong password: the same D1 reads and writes, but only the
    second hashes a password."""
    print("Latency (sequential, one keep-alive connection over loopback, "
          f"after {args.warmup} uncounted requests)")
    with httpx.Client(base_url=url, timeout=30) as client:
        username, password = f"bench_{uuid.uuid4().hex[:12]}", "bench password"
        token = register(client, username, password)
        login_body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": username},
            "password": password,
        }
        bearer = {"Authorization": f"Bearer {token}"}
        latency("GET /versions", lambda: client.get(VERSIONS), args.versions, args.warmup)
        whoami = latency("GET /account/whoami",
                         lambda: client.get("/_matrix/client/v3/account/whoami", headers=bearer),
                         args.whoami, args.warmup)
        latency("POST /login",
                lambda: client.post("/_matrix/client/v3/login", json=login_body),
                args.logins, args.warmup)
        unknown_user = {**login_body, "identifier": {"type": "m.id.user", "user": "no_such_user"}}
        wrong_password = {**login_body, "password": "wrong password"}
        no_hash = latency("POST /login, unknown user (403)",
                          lambda: client.post("/_matrix/client/v3/login", json=unknown_user),
                          args.logins, args.warmup, status=403)
        hash_ = latency("POST /login, wrong password (403)",
                        lambda: client.post("/_matrix/client/v3/login", json=wrong_password),
                        args.logins, args.warmup, status=403)
    return no_hash, hash_


def send_path(room_id: str, txn: str) -> str:
    return f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/send/m.room.message/{txn}"


def throughput(url: str, rooms: list[str], tokens: list[str], senders: int, total: int) -> float:
    """Events per second with `senders` concurrent senders, sender i posting into
    rooms[i % len(rooms)] with tokens[i], each over its own keep-alive connection."""
    per_sender = total // senders

    def run(i: int) -> None:
        room_id, bearer = rooms[i % len(rooms)], {"Authorization": f"Bearer {tokens[i]}"}
        with httpx.Client(base_url=url, timeout=60) as client:
            for n in range(per_sender):
                body = {"msgtype": "m.text", "body": f"{i}:{n}"}
                response = client.put(send_path(room_id, f"t{i}-{n}-{uuid.uuid4().hex[:6]}"), json=body,
                                      headers=bearer)
                if response.status_code != 200:
                    raise RuntimeError(f"send failed: {response.status_code} {response.text}")

    start = time.perf_counter()
    with ThreadPoolExecutor(senders) as pool:
        list(pool.map(run, range(senders)))
    return senders * per_sender / (time.perf_counter() - start)


def rooms_bench(url: str, args: argparse.Namespace) -> None:
    """Send latency for one sender, createRoom latency, and send throughput into one room with
    1, 4 and 16 concurrent senders and across 16 rooms at once."""
    print("Rooms")
    counter = itertools.count()
    with httpx.Client(base_url=url, timeout=60) as client:
        tokens = [register(client, f"bench_{uuid.uuid4().hex[:12]}", "bench password") for _ in range(16)]
        owner = {"Authorization": f"Bearer {tokens[0]}"}

        def create() -> httpx.Response:
            return client.post("/_matrix/client/v3/createRoom", json={"preset": "public_chat"}, headers=owner)

        latency("POST /createRoom (public_chat, v12)", create, args.creates, min(args.warmup, 5))
        room_id = create().json()["room_id"]
        body = {"msgtype": "m.text", "body": "bench"}
        latency("PUT /send, one sender",
                lambda: client.put(send_path(room_id, f"l{next(counter)}"), json=body, headers=owner),
                args.sends, args.warmup)
        rooms = [create().json()["room_id"] for _ in range(16)]
        for token in tokens:
            bearer = {"Authorization": f"Bearer {token}"}
            for room in [room_id, *rooms]:
                client.post(f"/_matrix/client/v3/rooms/{quote(room, safe='')}/join", json={}, headers=bearer)
    for senders in (1, 4, 16):
        rate = throughput(url, [room_id], tokens, senders, args.throughput_sends)
        print(f"  send throughput into one room, {senders} concurrent senders: {rate:,.0f} events/s")
    rate = throughput(url, rooms, tokens, 16, args.throughput_sends)
    print(f"  send throughput across 16 rooms, one sender each: {rate:,.0f} events/s")


def sync_bench(url: str, args: argparse.Namespace) -> None:
    """Wake-up latency, initial and incremental sync times, and wake-up fan-out. Syncs pass
    `set_presence=offline`, so that presence is only measured where named."""
    print("Sync")
    with httpx.Client(base_url=url, timeout=120) as client:
        def new_user() -> dict:
            return {"Authorization": f"Bearer {register(client, f'bench_{uuid.uuid4().hex[:12]}', 'bench pw')}"}

        def sync(headers, since=None, timeout=0, client=client) -> dict:
            params = {"timeout": timeout, "set_presence": "offline", **({"since": since} if since else {})}
            response = client.get("/_matrix/client/v3/sync", params=params, headers=headers)
            response.raise_for_status()
            return response.json()

        def send(headers, room_id, body="bench") -> None:
            response = client.put(send_path(room_id, uuid.uuid4().hex), json={"msgtype": "m.text", "body": body},
                                  headers=headers)
            response.raise_for_status()

        def create(headers) -> str:
            return client.post("/_matrix/client/v3/createRoom", json={"preset": "public_chat"},
                               headers=headers).json()["room_id"]

        def whoami(headers) -> str:
            return client.get("/_matrix/client/v3/account/whoami", headers=headers).json()["user_id"]

        def join(headers, room_id) -> None:
            client.post(f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/join", json={},
                        headers=headers).raise_for_status()

        # Wake-up: a waiting sync of bob, a send of alice.
        alice, bob = new_user(), new_user()
        room_id = create(alice)
        join(bob, room_id)
        token = sync(bob)["next_batch"]
        samples = []
        with httpx.Client(base_url=url, timeout=60) as waiter:
            for _ in range(args.wakeups):
                box = {}

                def wait(since=token):
                    box["response"] = sync(bob, since, 30_000, client=waiter)
                    box["returned"] = time.perf_counter()

                with ThreadPoolExecutor(1) as pool:
                    future = pool.submit(wait)
                    time.sleep(0.05)
                    started = time.perf_counter()
                    send(alice, room_id)
                    future.result()
                samples.append(1000 * (box["returned"] - started))
                token = box["response"]["next_batch"]
        cuts = statistics.quantiles(samples, n=100, method="inclusive")
        print(f"  wake-up, PUT /send to the return of another user's waiting /sync ({args.wakeups} runs): "
              f"p50 {cuts[49]:.2f} ms, p95 {cuts[94]:.2f} ms")

        # Initial sync of a user in many rooms with many events each.
        carol = new_user()
        for _ in range(args.sync_rooms):
            room = create(carol)
            for n in range(args.sync_events):
                send(carol, room, f"e{n}")
        # Each request differs (its timeout, which an initial sync with data does not wait for), so
        # that a server's cache of identical sync responses (Synapse has one) is not what is timed.
        distinct = itertools.count(1)
        latency(f"GET /sync, initial, {args.sync_rooms} rooms x {args.sync_events} events",
                lambda: client.get("/_matrix/client/v3/sync", params={"set_presence": "offline",
                                                                      "timeout": next(distinct)}, headers=carol),
                10, 1)
        token = sync(carol)["next_batch"]
        # Distinct again: an inline filter whose timeline limit no empty response can show.
        latency("GET /sync, incremental, nothing new",
                lambda: client.get("/_matrix/client/v3/sync", params={
                    "since": token, "timeout": 0, "set_presence": "offline",
                    "filter": json.dumps({"room": {"timeline": {"limit": 10 + next(distinct)}}})}, headers=carol),
                50, 5)

        token_box = {"token": token}
        ms = []
        for _ in range(30):
            before = token_box["token"]
            send(carol, room)
            started = time.perf_counter()
            response = client.get("/_matrix/client/v3/sync", params={"since": before, "timeout": 0,
                                                                     "set_presence": "offline"}, headers=carol)
            ms.append(1000 * (time.perf_counter() - started))
            token_box["token"] = response.json()["next_batch"]
        cuts = statistics.quantiles(ms, n=100, method="inclusive")
        print(f"  GET /sync, incremental, one new event (30 requests): p50 {cuts[49]:.2f} ms, p95 {cuts[94]:.2f} ms")

        # Fan-out: every member of a big room waits; one message.
        owner = new_user()
        room_id = create(owner)
        members = [new_user() for _ in range(args.fanout)]
        for member in members:
            join(member, room_id)
        tokens = [sync(member)["next_batch"] for member in members]
        returned = [0.0] * len(members)

        def wait_member(i: int) -> None:
            with httpx.Client(base_url=url, timeout=120) as own:
                tokens[i] = sync(members[i], tokens[i], 60_000, client=own)["next_batch"]
            returned[i] = time.perf_counter()

        def fan_out(what: str, change) -> None:
            with ThreadPoolExecutor(len(members)) as pool:
                futures = [pool.submit(wait_member, i) for i in range(len(members))]
                time.sleep(3)
                started = time.perf_counter()
                change()
                for future in futures:
                    future.result()
            print(f"  fan-out: {what} of {args.fanout} waiting members; the last waiter "
                  f"returned after {1000 * (max(returned) - started):,.0f} ms")

        fan_out("one message into a room", lambda: send(owner, room_id, "to everyone"))
        if not args.no_presence:
            def set_presence() -> None:
                client.put(f"/_matrix/client/v3/presence/{quote(whoami(owner))}/status",
                           json={"presence": "unavailable", "status_msg": "bench"}, headers=owner).raise_for_status()
            fan_out("one presence change, seen by a room", set_presence)


class Gateway:
    """A push gateway on loopback that records when each notify arrives, per event ID."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                event_id = body["notification"].get("event_id", "")
                with gateway.lock:
                    gateway.arrivals.setdefault(event_id, []).append(time.perf_counter())
                reply = b'{"rejected": []}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/_matrix/push/v1/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, event_id: str, count: int, timeout: float = 120) -> float | None:
        """The arrival time of the `count`th notify of the event, None if it never came."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self.lock:
                times = sorted(self.arrivals.get(event_id, []))
            if len(times) >= count:
                return times[count - 1]
            time.sleep(0.005)
        return None


def push_bench(url: str, args: argparse.Namespace) -> None:
    """One message into a room whose members all have a pusher: the time until the last notify
    reaches the gateway; and the sender's send latency with and without the pushers."""
    print("Push")
    gateway = Gateway()
    with httpx.Client(base_url=url, timeout=120) as client:
        def new_user() -> dict:
            return {"Authorization": f"Bearer {register(client, f'bench_{uuid.uuid4().hex[:12]}', 'bench pw')}"}

        owner = new_user()
        room_id = client.post("/_matrix/client/v3/createRoom", json={"preset": "public_chat"},
                              headers=owner).json()["room_id"]
        members = [new_user() for _ in range(args.push_members)]
        for member in members:
            client.post(f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/join", json={},
                        headers=member).raise_for_status()
        counter = itertools.count()
        body = {"msgtype": "m.text", "body": "bench"}

        def send():
            return client.put(send_path(room_id, f"p{next(counter)}"), json=body, headers=owner)

        room = f"a room of {args.push_members + 1} members"
        latency(f"PUT /send into {room}, no pushers", send, args.push_sends, min(args.warmup, 5))
        for i, member in enumerate(members):
            pusher = {"kind": "http", "app_id": "org.stratus.bench", "pushkey": f"key-{i}",
                      "app_display_name": "bench", "device_display_name": "bench", "lang": "en",
                      "data": {"url": gateway.url}}
            client.post("/_matrix/client/v3/pushers/set", json=pusher, headers=member).raise_for_status()
        started = time.perf_counter()
        event_id = send().json()["event_id"]
        last = gateway.wait_for(event_id, len(members))
        if last is None:
            print(f"  push: one message into {room}, each member with a pusher: "
                  f"only {len(gateway.arrivals.get(event_id, []))} of {len(members)} notifies arrived")
        else:
            print(f"  push: one message into {room}, each member with a pusher; the last notify "
                  f"reached the gateway after {1000 * (last - started):,.0f} ms")
        latency(f"PUT /send into {room}, every member with a pusher", send, args.push_sends, min(args.warmup, 5))


def e2ee_bench(url: str, args: argparse.Namespace) -> None:
    """`/keys/claim` naming many devices at once, and what device lists add to an incremental sync
    of a user in many rooms."""
    print("End-to-end encryption")
    with httpx.Client(base_url=url, timeout=120) as client:
        def new_user() -> tuple[dict, str, str]:
            name = f"bench_{uuid.uuid4().hex[:12]}"
            headers = {"Authorization": f"Bearer {register(client, name, 'bench pw')}"}
            who = client.get("/_matrix/client/v3/account/whoami", headers=headers).json()
            return headers, who["user_id"], who["device_id"]

        def upload(headers, device_id, **keys) -> None:
            client.post("/_matrix/client/v3/keys/upload", json=keys, headers=headers).raise_for_status()

        # Claims: each device has fewer one-time keys than there are claims, so the later claims
        # hand out fallback keys.
        wanted: dict = {}
        per_device = args.claims // 2
        for _ in range(args.claim_devices):
            headers, user_id, device_id = new_user()
            keys = {f"signed_curve25519:{n:04d}": {"key": uuid.uuid4().hex, "signatures": {}}
                    for n in range(per_device)}
            fallback = {"signed_curve25519:fb": {"key": uuid.uuid4().hex, "fallback": True, "signatures": {}}}
            upload(headers, device_id, one_time_keys=keys, fallback_keys=fallback)
            wanted.setdefault(user_id, {})[device_id] = "signed_curve25519"
        claimer, _, _ = new_user()
        latency(f"POST /keys/claim naming {args.claim_devices} devices ({per_device} one-time keys each, then "
                "fallback keys)",
                lambda: client.post("/_matrix/client/v3/keys/claim", json={"one_time_keys": wanted},
                                    headers=claimer), args.claims, 0)

        # Device lists: a user in many rooms, one of whose members uploads device keys.
        reader, _, _ = new_user()
        friend, friend_id, friend_device = new_user()
        for _ in range(args.device_list_rooms):
            room_id = client.post("/_matrix/client/v3/createRoom", json={"preset": "public_chat"},
                                  headers=reader).json()["room_id"]
            client.post(f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/join", json={},
                        headers=friend).raise_for_status()

        def sync_since(token: str):
            return lambda: client.get("/_matrix/client/v3/sync", params={
                "since": token, "timeout": 0, "set_presence": "offline"}, headers=reader)

        before = client.get("/_matrix/client/v3/sync", params={"timeout": 0, "set_presence": "offline"},
                            headers=reader).json()["next_batch"]
        device_keys = {"user_id": friend_id, "device_id": friend_device, "algorithms": ["m.megolm.v1.aes-sha2"],
                       "keys": {f"ed25519:{friend_device}": uuid.uuid4().hex}, "signatures": {}}
        upload(friend, friend_device, device_keys=device_keys)
        after = sync_since(before)().json()["next_batch"]
        rooms = f"{args.device_list_rooms} rooms"
        latency(f"GET /sync, incremental, {rooms}, nothing new (no device list query)", sync_since(after), 30, 3)
        latency(f"GET /sync, incremental, {rooms}, a member's device keys changed", sync_since(before), 30, 3)


APPSERVICES = 3


def write_appservices(folder: Path) -> None:
    """The benchmark's services: each on a free loopback port, its bot `bench_asN` and its users
    `@bench_asN_*`. JSON is YAML, which both servers read."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(APPSERVICES):
        reg = {
            "id": f"bench_as{n}", "url": f"http://127.0.0.1:{free_port()}",
            "as_token": f"bench-as-{uuid.uuid4().hex}", "hs_token": f"bench-hs-{uuid.uuid4().hex}",
            "sender_localpart": f"bench_as{n}", "rate_limited": False,
            "namespaces": {"users": [{"exclusive": True, "regex": f"@bench_as{n}_.*"}], "aliases": [], "rooms": []},
        }
        (folder / f"bench_as{n}.yaml").write_text(json.dumps(reg, indent=2))
        print(folder / f"bench_as{n}.yaml")


class Receiver:
    """An application service on loopback that records when each event arrives."""

    def __init__(self, reg: dict) -> None:
        self.arrivals: dict[str, float] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                now = time.perf_counter()
                with receiver.lock:
                    for event in body.get("events", []):
                        receiver.arrivals.setdefault(event["event_id"], now)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_POST = do_GET = do_PUT

            def log_message(self, *args) -> None:
                pass

        port = int(reg["url"].rsplit(":", 1)[1])
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, event_ids: list[str], timeout: float = 120) -> float | None:
        """When the last of `event_ids` arrived, None if one never did."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self.lock:
                times = [self.arrivals.get(e) for e in event_ids]
            if all(t is not None for t in times):
                return max(times)
            time.sleep(0.002)
        return None


def appservice_bench(url: str, args: argparse.Namespace) -> None:
    """Delivery from a client's send to the services' receipt of the event (latency, and
    sustained throughput), and the sender's send latency with three interested services
    against none."""
    print("Application services")
    regs = [json.loads(p.read_text()) for p in sorted(args.appservices.glob("*.yaml"))]
    receivers = [Receiver(reg) for reg in regs]
    with httpx.Client(base_url=url, timeout=120) as client:
        owner = {"Authorization": f"Bearer {register(client, f'bench_{uuid.uuid4().hex[:12]}', 'bench pw')}"}

        def new_room() -> str:
            return client.post("/_matrix/client/v3/createRoom", json={"preset": "public_chat"},
                               headers=owner).json()["room_id"]

        quiet, watched = new_room(), new_room()
        for reg in regs:
            client.post(f"/_matrix/client/v3/rooms/{quote(watched, safe='')}/join", json={},
                        headers={"Authorization": f"Bearer {reg['as_token']}"}).raise_for_status()
        counter = itertools.count()
        body = {"msgtype": "m.text", "body": "bench"}

        def send(room_id: str):
            return lambda: client.put(send_path(room_id, f"as{next(counter)}"), json=body, headers=owner)

        latency("PUT /send, no interested application service", send(quiet), args.as_sends, min(args.warmup, 5))
        latency(f"PUT /send, {len(regs)} interested application services", send(watched), args.as_sends,
                min(args.warmup, 5))
        # Delivery latency: one event at a time, until the first service has it.
        delays = []
        for _ in range(args.as_sends):
            started = time.perf_counter()
            event_id = send(watched)().json()["event_id"]
            arrived = receivers[0].wait_for([event_id], timeout=60)
            if arrived is None:
                print(f"  delivery: {event_id} never reached the service")
                return
            delays.append(1000 * (arrived - started))
        cuts = statistics.quantiles(delays, n=100, method="inclusive")
        print(f"  delivery latency, from the send to the service's receipt ({args.as_sends} events, one at a "
              f"time): p50 {cuts[49]:.2f} ms, p95 {cuts[94]:.2f} ms")
        # Throughput: four senders into the room; until every service has every event.
        senders = [owner] + [{"Authorization": f"Bearer {register(client, f'bench_{uuid.uuid4().hex[:12]}', 'bench pw')}"}
                             for _ in range(3)]
        for headers in senders[1:]:
            client.post(f"/_matrix/client/v3/rooms/{quote(watched, safe='')}/join", json={},
                        headers=headers).raise_for_status()
        per_sender = args.as_throughput_sends // len(senders)

        def run(headers: dict) -> list[str]:
            ids = []
            with httpx.Client(base_url=url, timeout=60) as own:
                for n in range(per_sender):
                    response = own.put(send_path(watched, f"ast{uuid.uuid4().hex}"), json=body, headers=headers)
                    response.raise_for_status()
                    ids.append(response.json()["event_id"])
            return ids

        started = time.perf_counter()
        with ThreadPoolExecutor(len(senders)) as pool:
            sent = [e for ids in pool.map(run, senders) for e in ids]
        finished = [r.wait_for(sent, timeout=300) for r in receivers]
        if any(f is None for f in finished):
            print("  delivery throughput: some events never reached a service")
            return
        elapsed = max(finished) - started
        print(f"  delivery throughput, {len(sent)} events from {len(senders)} senders to each of {len(regs)} "
              f"services: {len(sent) / elapsed:,.0f} events/s per service")
        for r in receivers:
            r.server.shutdown()


def login_cost(no_hash: dict, hashed: dict) -> None:
    """workerd reports no per-request CPU time, so: what one password hash adds to a login."""
    cost = hashed["p50"] - no_hash["p50"]
    verdict = "within" if cost < FREE_PLAN_CPU_MS else "OVER"
    print("CPU cost of the password hash in a login, in Wasm (estimate)")
    print(f"  wrong-password p50 - unknown-user p50 = {cost:.2f} ms; {verdict} the free plan's "
          f"{FREE_PLAN_CPU_MS} ms CPU limit")
    print("  (wall time on this machine: both do the same D1 I/O, only the first hashes)")


def main() -> None:
    args = parse_args()
    print(f"Stratus benchmark, server {args.url}")
    if args.wasm:
        bundle_size(args.wasm)
    if args.serve and args.cold_starts > 0:
        cold_starts(args.serve, args.cold_starts)
    login_cost(*latencies(args.url, args))
    rooms_bench(args.url, args)
    sync_bench(args.url, args)
    push_bench(args.url, args)
    e2ee_bench(args.url, args)
    if args.appservices:
        appservice_bench(args.url, args)


if __name__ == "__main__":
    main()
