"""Shared fixtures and helpers for the Stratus end-to-end suite: servers, HTTP clients and users."""

from __future__ import annotations

import os
import random
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from push_gateway import PushGateway

ROOT = Path(__file__).resolve().parents[2]
V3 = "/_matrix/client/v3"
SERVER_NAME = "localhost"
PASSWORD = "correct horse battery staple"
STARTUP_TIMEOUT_S = 120

# Servers with a configuration other than the suite's; tests ask for them by fixture name.
NAMED_SERVERS = {
    "registration_disabled_url": {"ENABLE_REGISTRATION": "false"},
    "guests_disabled_url": {"ALLOW_GUEST_ACCESS": "false"},
    "support_email_url": {"ADMIN_CONTACT": "admin@example.org"},
    "support_mxid_url": {"ADMIN_CONTACT": "@admin:example.org"},
    "presence_disabled_url": {"ENABLE_PRESENCE": "false"},
    "presence_timers_url": {"PRESENCE_IDLE_TIMEOUT_MS": "8000", "PRESENCE_SYNC_TIMEOUT_MS": "2000"},
    "presence_router_url": {
        "PRESENCE_ROUTER_ALWAYS_SEND_TO_USERS": "@gobbler:localhost",
        "PRESENCE_ROUTER_BLACKLISTED_USERS": "@hidden:localhost",
        "PRESENCE_ROUTERS": "docs_example,test_union",
        # No user goes offline while the tests run: every change would wake @gobbler.
        "PRESENCE_SYNC_TIMEOUT_MS": "600000",
        # Its admin asks for presence snapshots.
        "REGISTRATION_SHARED_SECRET": "stratus-e2e-shared-secret",
    },
    "to_device_limited_url": {"RC_TO_DEVICE_PER_SECOND": "0.01", "RC_TO_DEVICE_BURST": "3"},
    # Fan-out trees of many levels with few members.
    "narrow_fanout_url": {"FANOUT_WIDTH": "2"},
    "small_media_url": {"MAX_UPLOAD_BYTES": "1000", "MAX_THUMBNAIL_PIXELS": "100000"},
    # Big rooms (test_request_cost.py): accounts are written into this server's D1 directly.
    "big_rooms_server": {"BIG_ROOM_TESTS": "1"},
    # Thumbnails by the Images binding, which wrangler emulates locally with Sharp.
    "images_thumbnails_url": {"THUMBNAILER": "images"},
    # Application services register on a server of their own, so that their namespaces reserve
    # no user or alias of another test; its to-device limit is low, for `rate_limited`.
    "as_server": {"APPSERVICE_TESTS": "1", "RC_TO_DEVICE_PER_SECOND": "0.01", "RC_TO_DEVICE_BURST": "5",
                  "PRESENCE_SYNC_TIMEOUT_MS": "3000"},
}
# What the suite's own server adds to wrangler.toml (scripts/test starts it the same way): admins
# are made with this secret (`admin.py`), and server notices are on.
SUITE_CONFIG = {"ALLOW_GUEST_ACCESS": "true", "REGISTRATION_SHARED_SECRET": "stratus-e2e-shared-secret",
                "SERVER_NOTICES_LOCALPART": "notices"}


def pytest_configure(config):
    config.addinivalue_line("markers", "big: runs for minutes (rooms of 1,000); selected only by `-m big`")


def pytest_collection_modifyitems(config, items):
    """Leaves out `big` tests unless the `-m` expression names them."""
    if "big" in (config.getoption("markexpr") or ""):
        return
    big = [item for item in items if item.get_closest_marker("big")]
    if big:
        config.hook.pytest_deselected(items=big)
        items[:] = [item for item in items if not item.get_closest_marker("big")]


# ---------------------------------------------------------------------------------------------
# Small helpers


_used_ips: set[str] = set()


def random_ip() -> str:
    """A client address no other client of this session has used."""
    while True:
        ip = "10.{}.{}.{}".format(*(random.randrange(1, 255) for _ in range(3)))
        if ip not in _used_ips:
            _used_ips.add(ip)
            return ip


def unique_name(prefix: str = "user") -> str:
    """A localpart no other test uses."""
    return f"{prefix}-{secrets.token_hex(5)}"


def user_id_of(localpart: str) -> str:
    return f"@{localpart}:{SERVER_NAME}"


def path_quote(segment: str) -> str:
    """Percent-encodes one path segment (user IDs contain '@', ':' and maybe '/')."""
    return quote(segment, safe="")


def profile_path(user_id: str, key: str | None = None) -> str:
    path = f"{V3}/profile/{path_quote(user_id)}"
    return path if key is None else f"{path}/{path_quote(key)}"


def auth_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_client(base_url: str, ip: str | None = None) -> httpx.Client:
    """An HTTP client that presents itself as a client address of its own."""
    return httpx.Client(base_url=base_url, headers={"CF-Connecting-IP": ip or random_ip()}, timeout=30)


def describe(resp: httpx.Response) -> str:
    """The request and the response, for assertion messages."""
    return f"{resp.request.method} {resp.request.url} -> {resp.status_code} {resp.text[:600]}"


def error_body(resp: httpx.Response) -> dict:
    """The body of an error response, checked to be a standard Matrix error."""
    assert resp.headers.get("content-type", "").startswith("application/json"), describe(resp)
    try:
        body = resp.json()
    except ValueError:
        pytest.fail(f"error response is not JSON: {describe(resp)}")
    assert isinstance(body, dict), describe(resp)
    assert isinstance(body.get("errcode"), str), describe(resp)
    assert isinstance(body.get("error"), str), describe(resp)
    return body


def assert_error(resp: httpx.Response, status: int | set[int], errcode: str | set[str] | None = None) -> dict:
    """Checks a Matrix error response's status and errcode (each one value or a set of allowed
    ones); returns its body."""
    assert resp.status_code in ({status} if isinstance(status, int) else status), describe(resp)
    body = error_body(resp)
    if errcode is not None:
        allowed = {errcode} if isinstance(errcode, str) else errcode
        assert body["errcode"] in allowed, describe(resp)
    return body


def assert_ok(resp: httpx.Response) -> dict:
    """Checks a 200 response with a JSON object body; returns the body."""
    assert resp.status_code == 200, describe(resp)
    body = resp.json()
    assert isinstance(body, dict), describe(resp)
    return body


def assert_uia_challenge(resp: httpx.Response, stages: list[str]) -> dict:
    """Checks a user-interactive auth 401 offering exactly one flow of `stages`."""
    assert resp.status_code == 401, describe(resp)
    body = resp.json()
    assert body["flows"] == [{"stages": stages}], describe(resp)
    assert isinstance(body.get("params"), dict), describe(resp)
    assert isinstance(body.get("session"), str) and body["session"], describe(resp)
    return body


def assert_token_revoked(client: httpx.Client, token: str) -> None:
    """Checks that `token` is refused as unknown, with no soft logout."""
    body = assert_error(client.get(f"{V3}/account/whoami", headers=auth_header(token)), 401, "M_UNKNOWN_TOKEN")
    assert body.get("soft_logout", False) is False, body


def password_auth(user: str, password: str = PASSWORD, session: str | None = None) -> dict:
    """The `auth` object of an m.login.password stage."""
    auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password}
    if session is not None:
        auth["session"] = session
    return auth


# ---------------------------------------------------------------------------------------------
# Registration and login


def register(client: httpx.Client, username: str | None = None, password: str = PASSWORD, **fields) -> dict:
    """Registers an account through the m.login.dummy flow; returns the 200 body."""
    body = {"password": password, **fields}
    if username is not None:
        body["username"] = username
    first = client.post(f"{V3}/register", json=body)
    session = assert_uia_challenge(first, ["m.login.dummy"])["session"]
    done = client.post(f"{V3}/register", json={**body, "auth": {"type": "m.login.dummy", "session": session}})
    return assert_ok(done)


def register_guest(client: httpx.Client) -> dict:
    return assert_ok(client.post(f"{V3}/register", params={"kind": "guest"}, json={}))


def login_request(client: httpx.Client, user: str, password: str = PASSWORD, **fields) -> httpx.Response:
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password}
    return client.post(f"{V3}/login", json={**body, **fields})


def login(client: httpx.Client, user: str, password: str = PASSWORD, **fields) -> dict:
    """Logs in with a password; returns the 200 body."""
    return assert_ok(login_request(client, user, password, **fields))


@dataclass
class User:
    """A registered account, its first session, and the client (address) it registered from."""

    client: httpx.Client
    user_id: str
    access_token: str
    device_id: str
    password: str = PASSWORD
    is_guest: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0]

    def request(self, method: str, path: str, token: str | None = None, **kwargs) -> httpx.Response:
        """A request with this user's access token (or `token`)."""
        headers = {**auth_header(token or self.access_token), **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def with_password(self, method: str, path: str, body: dict | None = None, password: str | None = None,
                      token: str | None = None) -> httpx.Response:
        """Runs a user-interactive auth round: the challenge, then the password stage."""
        body = dict(body or {})
        first = self.request(method, path, token=token, json=body)
        session = assert_uia_challenge(first, ["m.login.password"])["session"]
        auth = password_auth(self.user_id, password or self.password, session)
        return self.request(method, path, token=token, json={**body, "auth": auth})

    def login(self, **fields) -> dict:
        """A new session for this user, from a fresh address; returns the login body."""
        with make_client(str(self.client.base_url)) as other:
            return login(other, self.user_id, self.password, **fields)

    def whoami(self, token: str | None = None) -> httpx.Response:
        return self.get(f"{V3}/account/whoami", token=token)


# ---------------------------------------------------------------------------------------------
# Servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `scripts/serve` process group with its own port and empty state."""

    def __init__(self, config: dict[str, str], workdir: Path):
        self.config = config
        self.workdir = workdir
        workdir.mkdir(parents=True)
        self.log_path = workdir / "server.log"
        self._launch()

    def _launch(self) -> None:
        port, inspector = free_port(), free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PORT": str(port), "STATE_DIR": str(self.workdir / "state"),
               "INSPECTOR_PORT": str(inspector)}
        settings = {"COST_HEADERS": "true", **self.config}
        args = [str(ROOT / "scripts" / "serve"), *(f"{k}={v}" for k, v in settings.items())]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.ready = False

    def restart(self) -> str:
        """Stops the server and starts it again on the same state (and a new port): every Durable
        Object loses its memory, D1 keeps everything. Returns the new base URL."""
        self.stop()
        self._launch()
        return self.wait_ready()

    def wait_ready(self) -> str:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self.ready:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server {self.config} did not start; log:\n{self.log_path.read_text()[-4000:]}")
            try:
                self.ready = httpx.get(f"{self.url}/_matrix/client/versions", timeout=2).status_code == 200
            except httpx.HTTPError:
                pass
            if not self.ready:
                time.sleep(0.3)
        return self.url

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class ServerFactory:
    """Starts servers with custom configuration, at most one per configuration, all stopped at the
    end of the session. `launch` does not wait, so that several servers start side by side."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.servers: dict[tuple, Server] = {}

    def launch(self, config: dict[str, str]) -> Server:
        key = tuple(sorted(config.items()))
        if key not in self.servers:
            if not (ROOT / "build" / "index.js").exists():
                pytest.fail("the worker is not built; run `npm test` or `source scripts/env.sh && build_worker`")
            self.servers[key] = Server(config, self.workdir / f"server{len(self.servers)}")
        return self.servers[key]

    def __call__(self, **config: str) -> str:
        """The base URL of a ready server with `config` over wrangler.toml's [vars]."""
        return self.launch(config).wait_ready()

    def stop_all(self) -> None:
        for server in self.servers.values():
            server.stop()


@pytest.fixture(scope="session")
def server_factory(request):
    with tempfile.TemporaryDirectory(prefix="stratus-e2e-") as workdir:
        factory = ServerFactory(Path(workdir))
        # Start every named server the selected tests need now, in parallel; they wait later.
        wanted = {name for item in request.session.items for name in getattr(item, "fixturenames", ())}
        for name, config in NAMED_SERVERS.items():
            if name in wanted:
                factory.launch(config)
        try:
            yield factory
        finally:
            factory.stop_all()


@pytest.fixture(scope="session")
def base_url(request) -> str:
    """The suite's server: STRATUS_BASE_URL, or one started here with guests allowed."""
    url = os.environ.get("STRATUS_BASE_URL")
    if url:
        return url.rstrip("/")
    return request.getfixturevalue("server_factory")(**SUITE_CONFIG)


@pytest.fixture(scope="session")
def registration_disabled_url(server_factory) -> str:
    return server_factory(**NAMED_SERVERS["registration_disabled_url"])


@pytest.fixture(scope="session")
def guests_disabled_url(server_factory) -> str:
    return server_factory(**NAMED_SERVERS["guests_disabled_url"])


@pytest.fixture(scope="session")
def support_email_url(server_factory) -> str:
    return server_factory(**NAMED_SERVERS["support_email_url"])


@pytest.fixture(scope="session")
def support_mxid_url(server_factory) -> str:
    return server_factory(**NAMED_SERVERS["support_mxid_url"])


@pytest.fixture(scope="session")
def presence_disabled_url(server_factory) -> str:
    return server_factory(**NAMED_SERVERS["presence_disabled_url"])


@pytest.fixture(scope="session")
def presence_timers_url(server_factory) -> str:
    return server_factory(**NAMED_SERVERS["presence_timers_url"])


@pytest.fixture(scope="session")
def presence_router_url(server_factory) -> str:
    return server_factory(**NAMED_SERVERS["presence_router_url"])


@pytest.fixture(scope="session")
def to_device_limited_url(server_factory) -> str:
    return server_factory(**NAMED_SERVERS["to_device_limited_url"])


@pytest.fixture(scope="session")
def narrow_fanout_url(server_factory) -> str:
    return server_factory(**NAMED_SERVERS["narrow_fanout_url"])


@pytest.fixture(scope="session")
def small_media_url(server_factory) -> str:
    return server_factory(**NAMED_SERVERS["small_media_url"])


@pytest.fixture(scope="session")
def images_thumbnails_url(server_factory) -> str:
    return server_factory(**NAMED_SERVERS["images_thumbnails_url"])


# ---------------------------------------------------------------------------------------------
# Clients and users


@pytest.fixture
def new_client(base_url):
    """Makes HTTP clients, each with an address of its own; `new_client(url)` for another server."""
    clients: list[httpx.Client] = []

    def make(url: str | None = None, ip: str | None = None) -> httpx.Client:
        clients.append(make_client(url or base_url, ip))
        return clients[-1]

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def client(new_client) -> httpx.Client:
    return new_client()


@pytest.fixture
def new_user(new_client):
    """Registers accounts, each from an address of its own: `new_user(username=None, **fields)`."""

    def make(username: str | None = None, password: str = PASSWORD, **fields) -> User:
        c = new_client()
        body = register(c, username or unique_name(), password, **fields)
        return User(c, body["user_id"], body.get("access_token", ""), body.get("device_id", ""), password, extra=body)

    return make


@pytest.fixture
def user(new_user) -> User:
    return new_user()


@pytest.fixture
def new_guest(new_client):
    """Registers guest accounts, each from an address of its own."""

    def make() -> User:
        c = new_client()
        body = register_guest(c)
        return User(c, body["user_id"], body["access_token"], body["device_id"], password="", is_guest=True)

    return make


@pytest.fixture
def guest(new_guest) -> User:
    return new_guest()


# ---------------------------------------------------------------------------------------------
# Push gateways


@pytest.fixture
def new_push_gateway():
    """Starts push gateways (`push_gateway.py`) on free ports of 127.0.0.1, stopped after the test."""
    gateways: list[PushGateway] = []

    def make() -> PushGateway:
        gateways.append(PushGateway(free_port()))
        return gateways[-1]

    yield make
    for gateway in gateways:
        gateway.stop()


@pytest.fixture
def push_gateway(new_push_gateway) -> PushGateway:
    return new_push_gateway()


@pytest.fixture(scope="session")
def as_server(server_factory):
    """The application services' server (a `Server`: tests may restart it)."""
    server = server_factory.launch(NAMED_SERVERS["as_server"])
    server.wait_ready()
    return server


@pytest.fixture(scope="session")
def big_rooms_server(server_factory):
    """The server of the big-room tests (a `Server`: `bulk.seed_users` writes to its state)."""
    server = server_factory.launch(NAMED_SERVERS["big_rooms_server"])
    server.wait_ready()
    return server


@pytest.fixture
def service(as_server, tmp_path):
    """A registered service with a fake behind it: (registration, fake)."""
    from appservices import FakeService, add_and_wait, registration

    reg = registration(f"as{secrets.token_hex(3)}", None)
    fake = FakeService(reg["hs_token"])
    reg["url"] = fake.url
    add_and_wait(as_server.url, as_server.workdir / "state", tmp_path, reg)
    yield reg, fake
    fake.stop()
