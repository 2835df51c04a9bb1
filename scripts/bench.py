"""Benchmarks a Stratus server: bundle size, cold start, request latency, the cost of a login,
room sends and creation (latency, and throughput with concurrent senders), sync, sliding sync, push delivery
to a push gateway on loopback, end-to-end encryption (key claims, device lists in sync), and
media (upload and download throughput, thumbnail latency and CPU), and what the monthly active
user limit costs an active user's requests, and application services (delivery latency and
throughput to services on loopback, and what three interested services cost a sender)."""

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
    parser.add_argument("--sliding-rooms", type=int, default=200, help="rooms of the sliding sync user")
    parser.add_argument("--fanout", type=int, default=200, help="members waiting in the fan-out room")
    parser.add_argument("--big-room", type=int, default=1000, help="members of the big fan-out room")
    parser.add_argument("--big-room-waiting", type=int, default=300, help="of them, members waiting")
    parser.add_argument("--many-rooms", type=int, default=200, help="rooms of the many-rooms initial sync")
    parser.add_argument("--push-members", type=int, default=100, help="members with a pusher in the push room")
    parser.add_argument("--push-sends", type=int, default=50, help="sends for each push send latency")
    parser.add_argument("--only", choices=["latency", "rooms", "sync", "sliding", "presence", "push", "e2ee", "media", "mau", "appservices"], action="append",
                        help="run only these sections (repeatable); all by default")
    parser.add_argument("--push-paced", type=int, default=10,
                        help="sends that each wait for the previous message's pushes (or, with no pushers, a pause)")
    parser.add_argument("--push-pause", type=float, default=1.0,
                        help="seconds between paced sends with no pushers: the previous message's fan-out is done")
    parser.add_argument("--claim-devices", type=int, default=50, help="devices named in one /keys/claim")
    parser.add_argument("--claims", type=int, default=30, help="/keys/claim requests to time")
    parser.add_argument("--device-list-rooms", type=int, default=50, help="rooms of the device-list sync user")
    parser.add_argument("--media-runs", type=int, default=5, help="5 MB uploads and downloads to time")
    parser.add_argument("--mau-syncs", type=int, default=200, help="syncs for the MAU limit's cost")
    parser.add_argument("--appservices", type=Path,
                        help="a folder of registrations made by --write-appservices and registered on the server")
    parser.add_argument("--write-appservices", type=Path, metavar="DIR",
                        help="only write the benchmark's registrations into DIR (one JSON file each) and exit")
    parser.add_argument("--as-sends", type=int, default=100, help="sends for each application service latency")
    parser.add_argument("--as-throughput-sends", type=int, default=300, help="sends for the delivery throughput")
    parser.add_argument("--no-presence", action="store_true",
                        help="skip the presence benchmarks (for a server with presence off)")
    parser.add_argument("--presence-rooms", type=int, default=20, help="rooms of the presence fan-out user")
    parser.add_argument("--presence-members", type=int, default=50, help="members of each of those rooms")
    parser.add_argument("--presence-changes", type=int, default=30, help="presence changes per router run")
    parser.add_argument("--router-url",
                        help="the same server with PRESENCE_ROUTER_ALWAYS_SEND_TO_USERS=@bench_gobbler:localhost")
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


# The `Server-Timing` header (Stratus with COST_HEADERS) of the last timed response.
last_cost: list[str] = [""]


def timed(request, status: int = 200) -> float:
    """Seconds that one request takes; fails unless it answers with `status`."""
    start = time.perf_counter()
    response = request()
    elapsed = time.perf_counter() - start
    if response.status_code != status:
        raise RuntimeError(f"expected {status}, got {response.status_code}: {response.text}")
    last_cost[0] = response.headers.get("server-timing", "")
    return elapsed


def latency(name: str, request, count: int, warmup: int, status: int = 200) -> dict[str, float]:
    """Times `count` sequential requests after `warmup` uncounted ones; prints and returns stats."""
    for _ in range(warmup):
        timed(request, status)
    last_cost[0] = ""
    stats = summarize(name, [1000 * timed(request, status) for _ in range(count)])
    if last_cost[0]:
        print(f"    cost of the last one: {last_cost[0]}")
    return stats


def summarize(name: str, ms: list[float]) -> dict[str, float]:
    """Prints and returns the percentiles of `ms`, one figure per request."""
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    stats = {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "mean": statistics.fmean(ms)}
    figures = ", ".join(f"{key} {value:.2f} ms" for key, value in stats.items())
    print(f"  {name} ({len(ms)} requests): {figures}, {1000 * len(ms) / sum(ms):,.0f} req/s")
    return stats


def wake_ups(runs: int, state, wait, trigger, advance) -> tuple[list[float], list[float]]:
    """Times `runs` wake-ups: `wait(state)`, a long poll, runs in a thread while `trigger(n)`, what
    should wake it, runs here. Returns, in ms, each trigger's own time and the time from its start
    to the poll's return. `advance(response)` is the state of the next wait."""
    triggered, woken = [], []
    for n in range(runs):
        box = {}

        def run(state=state):
            box["response"] = wait(state)
            box["returned"] = time.perf_counter()

        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(run)
            time.sleep(0.05)
            started = time.perf_counter()
            trigger(n)
            triggered.append(1000 * (time.perf_counter() - started))
            future.result()
        woken.append(1000 * (box["returned"] - started))
        state = advance(box["response"])
    return triggered, woken


def register(client: httpx.Client, username: str, password: str) -> str:
    """Registers through the dummy UIA stage; returns the access token."""
    body = {"username": username, "password": password}
    first = client.post("/_matrix/client/v3/register", json=body)
    if first.status_code != 401:
        raise RuntimeError(f"register: {first.status_code} {first.text[:300]}")
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
        with httpx.Client(base_url=url, timeout=60) as waiter:
            _, samples = wake_ups(args.wakeups, token, lambda since: sync(bob, since, 30_000, client=waiter),
                                  lambda _: send(alice, room_id), lambda response: response["next_batch"])
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
        dave = new_user()
        for _ in range(args.many_rooms):
            send(dave, create(dave))
        latency(f"GET /sync, initial, {args.many_rooms} rooms x 1 message",
                lambda: client.get("/_matrix/client/v3/sync", params={"set_presence": "offline",
                                                                      "timeout": next(distinct)}, headers=dave),
                5, 1)
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
        big_fan_out(url, args, new_user, create, join, sync, send)
        if not args.no_presence:
            def set_presence() -> None:
                client.put(f"/_matrix/client/v3/presence/{quote(whoami(owner))}/status",
                           json={"presence": "unavailable", "status_msg": "bench"}, headers=owner).raise_for_status()
            fan_out("one presence change, seen by a room", set_presence)


def big_fan_out(url: str, args: argparse.Namespace, new_user, create, join, sync, send) -> None:
    """One message into a room of `--big-room` members, `--big-room-waiting` of them waiting."""
    if args.big_room <= 0:
        return
    owner = new_user()
    room_id = create(owner)
    members = [new_user() for _ in range(args.big_room)]
    for member in members:
        join(member, room_id)
    waiting = members[:args.big_room_waiting]
    tokens = [sync(member)["next_batch"] for member in waiting]
    returned = [0.0] * len(waiting)

    def wait(i: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as own:
            sync(waiting[i], tokens[i], 60_000, client=own)
        returned[i] = time.perf_counter()

    with ThreadPoolExecutor(len(waiting)) as pool:
        futures = [pool.submit(wait, i) for i in range(len(waiting))]
        time.sleep(5)
        started = time.perf_counter()
        send(owner, room_id, "to everyone")
        for future in futures:
            future.result()
    print(f"  fan-out: one message into a room of {args.big_room} members, {len(waiting)} of them waiting; "
          f"the last waiter returned after {1000 * (max(returned) - started):,.0f} ms")


def presence_bench(url: str, args: argparse.Namespace) -> None:
    """Presence fan-out to the co-members of a user in many rooms, and the cost of the built-in
    router on a presence change."""
    print("Presence")
    with httpx.Client(base_url=url, timeout=120) as client:
        def new_user(name: str | None = None) -> tuple[str, dict]:
            name = name or f"bench_{uuid.uuid4().hex[:12]}"
            return f"@{name}:localhost", {"Authorization": f"Bearer {register(client, name, 'bench pw')}"}

        def sync(headers, since=None, timeout=0, own=client) -> dict:
            params = {"timeout": timeout, "set_presence": "offline", **({"since": since} if since else {})}
            response = own.get("/_matrix/client/v3/sync", params=params, headers=headers)
            response.raise_for_status()
            return response.json()

        owner_id, owner = new_user()
        members = []
        for _ in range(args.presence_rooms):
            room_id = client.post("/_matrix/client/v3/createRoom", json={"preset": "public_chat"},
                                  headers=owner).json()["room_id"]
            for _ in range(args.presence_members - 1):
                _, member = new_user()
                client.post(f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/join", json={},
                            headers=member).raise_for_status()
                members.append(member)
        tokens = [sync(member)["next_batch"] for member in members]
        # A member's first wait on a server finds its sync object fresh, and that sync reads
        # everything twice before it waits. Done here, one member at a time, so that the herd of
        # waiters below costs one pass each, and its time tells how long to let them settle.
        started = time.perf_counter()
        for i, member in enumerate(members):
            tokens[i] = sync(member, tokens[i], 1)["next_batch"]
        per_member = (time.perf_counter() - started) / len(members)
        returned = [0.0] * len(members)
        rewaits = [0]

        def wait_member(i: int) -> None:
            """Waits until the owner's change arrives; a wait that ends without it (the server
            took longer than its 60 s to get to it) waits again from where it ended."""
            since = tokens[i]
            with httpx.Client(base_url=url, timeout=120) as own:
                while True:
                    body = sync(members[i], since, 60_000, own)
                    since = body["next_batch"]
                    if any(e["sender"] == owner_id for e in body.get("presence", {}).get("events", [])):
                        break
                    rewaits[0] += 1
            returned[i] = time.perf_counter()

        settle = min(50.0, max(5.0, len(members) * per_member))
        with ThreadPoolExecutor(len(members)) as pool:
            futures = [pool.submit(wait_member, i) for i in range(len(members))]
            time.sleep(settle)
            started = time.perf_counter()
            change = client.put(f"/_matrix/client/v3/presence/{quote(owner_id)}/status",
                                json={"presence": "unavailable", "status_msg": "bench"}, headers=owner)
            change.raise_for_status()
            put_ms = 1000 * (time.perf_counter() - started)
            for future in futures:
                future.result()
        after = sorted(1000 * (r - started) for r in returned)
        print(f"  fan-out: one presence change of a user in {args.presence_rooms} rooms of "
              f"{args.presence_members} members; of its {len(members)} waiting co-members the first had it "
              f"after {after[0]:,.0f} ms, half after {after[len(after) // 2]:,.0f} ms, the last after "
              f"{after[-1]:,.0f} ms")
        cost = change.headers.get("server-timing")
        print(f"    PUT /presence {put_ms:,.0f} ms{f', cost {cost}' if cost else ''}; waiters settled "
              f"{settle:.0f} s ({1000 * per_member:.0f} ms per member's warm-up sync); {rewaits[0]} waits "
              "ended without the change and waited again")

    def router_run(server: str, label: str) -> None:
        """PUT /presence latency, and the time until a waiting co-member has the change."""
        with httpx.Client(base_url=server, timeout=120) as c:
            def user(name=None) -> tuple[str, dict]:
                name = name or f"bench_{uuid.uuid4().hex[:12]}"
                return f"@{name}:localhost", {"Authorization": f"Bearer {register(c, name, 'bench pw')}"}

            alice_id, alice = user()
            _, bob = user()
            room_id = c.post("/_matrix/client/v3/createRoom", json={"preset": "public_chat"}, headers=alice).json()["room_id"]
            c.post(f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/join", json={}, headers=bob).raise_for_status()
            token = sync(bob, own=c)["next_batch"]
            def change(n: int) -> None:
                c.put(f"/_matrix/client/v3/presence/{quote(alice_id)}/status",
                      json={"presence": "online", "status_msg": f"n{n}"}, headers=alice).raise_for_status()

            with httpx.Client(base_url=server, timeout=120) as waiter:
                puts, seen = wake_ups(args.presence_changes, token, lambda since: sync(bob, since, 30_000, waiter),
                                      change, lambda response: response["next_batch"])
            p, s = (statistics.quantiles(x, n=100, method="inclusive") for x in (puts, seen))
            print(f"  {label}: PUT /presence p50 {p[49]:.2f} ms, p95 {p[94]:.2f} ms; a waiting co-member has it "
                  f"after p50 {s[49]:.2f} ms, p95 {s[94]:.2f} ms ({args.presence_changes} changes)")

    router_run(url, "no router")
    if args.router_url:
        with httpx.Client(base_url=args.router_url, timeout=120) as c:
            register(c, "bench_gobbler", "bench pw")
        router_run(args.router_url, "always_send_to_users set")


class GatewayServer(ThreadingHTTPServer):
    """The standard server, with a listen backlog for a whole room's pushes: the default of 5
    drops connections when 100 pushes arrive at once, and both servers then back off."""
    request_queue_size = 1024


class Gateway:
    """A push gateway on loopback that records when each notify arrives, per event ID."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as real gateways: an HTTP/1.0 answer closes the connection, which
            # workerd's pool may reuse all the same ("Network connection lost"), a failed push.
            protocol_version = "HTTP/1.1"

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

        self.server = GatewayServer(("127.0.0.1", 0), Handler)
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


SLIDING_SYNC = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
# The room list as Element X asks for it: the newest rooms, their latest event and what a row shows.
ROOM_LIST = {"ranges": [[0, 19]], "timeline_limit": 1, "required_state": [
    ["m.room.name", ""], ["m.room.avatar", ""], ["m.room.create", ""], ["m.room.encryption", ""],
    ["m.room.canonical_alias", ""], ["m.room.member", "$ME"], ["m.room.member", "$LAZY"]]}


def sliding_sync_bench(url: str, args: argparse.Namespace) -> None:
    """The first sliding sync (MSC4186) of a user in many rooms with a list range of 0-19, and the
    wake-up latency of a waiting sliding sync (compare `/sync`'s above)."""
    print("Sliding sync (MSC4186)")
    with httpx.Client(base_url=url, timeout=120) as client:
        def new_user() -> dict:
            return {"Authorization": f"Bearer {register(client, f'bench_{uuid.uuid4().hex[:12]}', 'bench pw')}"}

        def sliding(headers, body, pos=None, timeout=0, client=client) -> httpx.Response:
            params = {"timeout": timeout, "set_presence": "offline", **({"pos": pos} if pos else {})}
            return client.post(SLIDING_SYNC, params=params, json=body, headers=headers)

        def send(headers, room_id) -> None:
            client.put(send_path(room_id, uuid.uuid4().hex), json={"msgtype": "m.text", "body": "bench"},
                       headers=headers).raise_for_status()

        dave = new_user()
        for _ in range(args.sliding_rooms):
            room_id = client.post("/_matrix/client/v3/createRoom", json={"name": "bench"},
                                  headers=dave).json()["room_id"]
            send(dave, room_id)
        # Each request starts a connection of its own: every one is a first sync.
        latency(f"POST sliding sync, first, {args.sliding_rooms} rooms, range 0-19",
                lambda: sliding(dave, {"conn_id": uuid.uuid4().hex[:16], "lists": {"all": ROOM_LIST}}), 20, 2)

        alice, bob = new_user(), new_user()
        room_id = client.post("/_matrix/client/v3/createRoom", json={"preset": "public_chat"},
                              headers=alice).json()["room_id"]
        client.post(f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/join", json={},
                    headers=bob).raise_for_status()
        body = {"lists": {"all": ROOM_LIST}}
        pos = sliding(bob, body).json()["pos"]
        with httpx.Client(base_url=url, timeout=60) as waiter:

            def wait(pos):
                # A wake-up may answer with the same pos (see MAX_PASSES); poll on until the event.
                while True:
                    response = sliding(bob, body, pos, 30_000, client=waiter).json()
                    if response["rooms"] or response["pos"] != pos:
                        return response

            _, samples = wake_ups(args.wakeups, pos, wait, lambda _: send(alice, room_id),
                                  lambda response: response["pos"])
        cuts = statistics.quantiles(samples, n=100, method="inclusive")
        print(f"  wake-up, PUT /send to the return of another user's waiting sliding sync ({args.wakeups} runs): "
              f"p50 {cuts[49]:.2f} ms, p95 {cuts[94]:.2f} ms")


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
        # Like for like with the paced sends with pushers below: each send after the previous
        # message's fan-out (push rules, wake-ups) is over, so that it shares no core with it.
        paced = []
        for _ in range(args.push_paced):
            time.sleep(args.push_pause)
            started = time.perf_counter()
            send().raise_for_status()
            paced.append(1000 * (time.perf_counter() - started))
        summarize(f"PUT /send into {room}, no pushers, each {args.push_pause:g} s after the last", paced)
        latency(f"PUT /send into {room}, no pushers, back to back", send, args.push_sends, min(args.warmup, 5))
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
        # The sender's latency with pushers, each message sent once the previous one's pushes
        # have all arrived: what a sender sees, apart from the machine's load (on one machine,
        # the server and the gateway share its cores with the pushes still in flight).
        sends, lasts = [], []
        for _ in range(args.push_paced):
            started = time.perf_counter()
            response = send()
            response.raise_for_status()
            sends.append(1000 * (time.perf_counter() - started))
            last = gateway.wait_for(response.json()["event_id"], len(members))
            if last is not None:
                lasts.append(1000 * (last - started))
        summarize(f"PUT /send into {room}, every member with a pusher, each after the last one's pushes", sends)
        if len(lasts) >= 2:
            summarize(f"the last of {len(members)} notifies reaching the gateway, per message", lasts)
        latency(f"PUT /send into {room}, every member with a pusher, back to back", send, args.push_sends,
                min(args.warmup, 5))


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


def media_bench(url: str, args: argparse.Namespace) -> None:
    """5 MB through R2 each way, and thumbnails of a 1600×1200 photo-like image in each source
    format: the first request makes one (decode, resize, encode in Wasm), later ones read it from
    R2. Their difference is the thumbnail's CPU time in Wasm, give or take one R2 read."""
    import io

    from PIL import Image

    print("Media")
    with httpx.Client(base_url=url, timeout=120) as client:
        token = register(client, f"bench-media-{uuid.uuid4().hex[:8]}", "bench password")
        headers = {"Authorization": f"Bearer {token}"}
        data = os.urandom(5 * 1024 * 1024)
        up, down = [], []
        for _ in range(args.media_runs):
            start = time.perf_counter()
            resp = client.post("/_matrix/media/v3/upload", content=data, headers=headers)
            up.append(time.perf_counter() - start)
            resp.raise_for_status()
            media_id = resp.json()["content_uri"].rsplit("/", 1)[1]
            path = f"/_matrix/client/v1/media/download/localhost/{media_id}"
            start = time.perf_counter()
            got = client.get(path, headers=headers)
            down.append(time.perf_counter() - start)
            if got.content != data:
                raise RuntimeError("the download differs from the upload")
        for name, times in (("upload", up), ("download", down)):
            print(f"  5 MB {name} ({args.media_runs} runs): p50 {1000 * statistics.median(times):.0f} ms, "
                  f"{5 / statistics.median(times):.1f} MB/s")
        width, height = 1600, 1200
        noise = Image.effect_noise((width, height), 40)
        photo = Image.merge("RGB", (noise, Image.linear_gradient("L").resize((width, height)),
                                    Image.radial_gradient("L").resize((width, height))))
        for fmt, content_type in (("JPEG", "image/jpeg"), ("PNG", "image/png"), ("GIF", "image/gif"),
                                  ("WEBP", "image/webp")):
            out = io.BytesIO()
            photo.save(out, format=fmt)
            resp = client.post("/_matrix/media/v3/upload", content=out.getvalue(),
                               headers={**headers, "Content-Type": content_type})
            resp.raise_for_status()
            media_id = resp.json()["content_uri"].rsplit("/", 1)[1]
            path = f"/_matrix/client/v1/media/thumbnail/localhost/{media_id}"
            for w, h, method in ((96, 96, "crop"), (800, 600, "scale")):
                params = {"width": w, "height": h, "method": method}
                first = 1000 * timed(lambda: client.get(path, params=params, headers=headers))
                time.sleep(0.2)  # the thumbnail is stored after its answer
                cached = statistics.median(
                    1000 * timed(lambda: client.get(path, params=params, headers=headers)) for _ in range(10))
                print(f"  thumbnail {w}x{h} {method} of a {width}x{height} {fmt} ({len(out.getvalue()) // 1024} KiB): "
                      f"first {first:.0f} ms, cached p50 {cached:.1f} ms; CPU estimate {first - cached:.0f} ms")
class Launched:
    """A server started with `scripts/serve` and extra settings, on empty state; a context manager."""

    def __init__(self, serve: str, **config: str):
        self.serve, self.config = serve, config

    def __enter__(self) -> str:
        self.tmp = tempfile.TemporaryDirectory()
        port = free_port()
        env = dict(os.environ, PORT=str(port), INSPECTOR_PORT=str(free_port()), STATE_DIR=f"{self.tmp.name}/state")
        self.log = open(f"{self.tmp.name}/server.log", "w")
        args = [self.serve, *(f"{k}={v}" for k, v in self.config.items())]
        self.server = subprocess.Popen(args, env=env, stdout=self.log, stderr=self.log, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline and self.server.poll() is None:
            try:
                if httpx.get(f"{url}{VERSIONS}", timeout=5).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the server did not start:\n" + Path(self.log.name).read_text())

    def __exit__(self, *exc) -> None:
        os.killpg(self.server.pid, signal.SIGTERM)
        self.server.wait(timeout=30)
        self.log.close()
        self.tmp.cleanup()


def mau_bench(serve: str, args: argparse.Namespace) -> None:
    """An active user's whoami and incremental sync, with the monthly active user limit off and
    on: the limit reads its facts with the token, so it should add no D1 round trip."""
    print("Monthly active user limit (an active user's requests, limit off vs on)")
    limits = {"RC_REGISTRATION_PER_SECOND": "100000", "RC_REGISTRATION_BURST": "100000"}
    for label, config in (("LIMIT_USAGE_BY_MAU=false", {}),
                          ("LIMIT_USAGE_BY_MAU=true", {"LIMIT_USAGE_BY_MAU": "true", "MAX_MAU_VALUE": "1000"})):
        with Launched(serve, **limits, **config) as url, httpx.Client(base_url=url, timeout=30) as client:
            bearer = {"Authorization": f"Bearer {register(client, f'bench_{uuid.uuid4().hex[:12]}', 'pw')}"}
            since = client.get("/_matrix/client/v3/sync", headers=bearer).json()["next_batch"]
            print(f"  {label}")
            latency("GET /account/whoami", lambda: client.get("/_matrix/client/v3/account/whoami", headers=bearer),
                    args.whoami, args.warmup)
            latency("GET /sync (incremental, nothing new)",
                    lambda: client.get("/_matrix/client/v3/sync", params={"since": since, "timeout": "0"},
                                       headers=bearer), args.mau_syncs, args.warmup)


def main() -> None:
    args = parse_args()
    print(f"Stratus benchmark, server {args.url}")
    if args.wasm:
        bundle_size(args.wasm)
    if args.serve and args.cold_starts > 0:
        cold_starts(args.serve, args.cold_starts)
    def wanted(section: str) -> bool:
        return not args.only or section in args.only

    if wanted("latency"):
        login_cost(*latencies(args.url, args))
    sections = [("rooms", rooms_bench), ("sync", sync_bench), ("sliding", sliding_sync_bench),
                ("presence", presence_bench), ("push", push_bench), ("e2ee", e2ee_bench), ("media", media_bench)]
    for section, bench in sections:
        if wanted(section) and not (section == "presence" and args.no_presence):
            bench(args.url, args)
    if args.serve and wanted("mau"):
        mau_bench(args.serve, args)
    if args.appservices and wanted("appservices"):
        appservice_bench(args.url, args)


if __name__ == "__main__":
    main()
