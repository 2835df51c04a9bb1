"""Error handling: unknown routes and methods, body limits, CORS, and bad inputs on every endpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx
import pytest

from conftest import (
    V3, assert_error, assert_ok, auth_header, describe, error_body, login, make_client, password_auth,
    profile_path, random_ip, register, unique_name,
)

MAX_REQUEST_BYTES = 1048576


# ---------------------------------------------------------------------------------------------
# Routing and body limits


@pytest.mark.parametrize("path", [
    f"{V3}/nonsense", f"{V3}/account/whoami/extra", f"{V3}/devices/", "/_matrix/client/v3", "/", "/favicon.ico",
    "/_matrix/client/r0/account/whoami", "/_matrix/federation/v1/version",
])
def test_unknown_endpoint(client, path):
    assert_error(client.get(path), 404, "M_UNRECOGNIZED")


@pytest.mark.parametrize("method,path", [
    ("DELETE", f"{V3}/account/whoami"), ("GET", f"{V3}/register"), ("PUT", f"{V3}/login"),
    ("POST", "/_matrix/client/versions"), ("GET", f"{V3}/logout"), ("PATCH", f"{V3}/devices"),
    ("POST", f"{V3}/profile/@someone:localhost"),
])
def test_wrong_method(client, method, path):
    assert_error(client.request(method, path), 405, "M_UNRECOGNIZED")


def test_body_over_the_limit(client):
    resp = client.post(f"{V3}/register", content=b" " * (MAX_REQUEST_BYTES + 1),
                       headers={"Content-Type": "application/json"})
    assert_error(resp, 413, "M_TOO_LARGE")


def test_body_over_the_limit_without_content_length(client):
    def chunks():
        for _ in range(17):
            yield b" " * 65536

    resp = client.post(f"{V3}/register", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in resp.request.headers
    assert_error(resp, 413, "M_TOO_LARGE")


def test_body_at_the_limit_is_read(client):
    body = json.dumps({"username": unique_name(), "password": "pw"}).encode()
    resp = client.post(f"{V3}/register", content=body + b" " * (MAX_REQUEST_BYTES - len(body)),
                       headers={"Content-Type": "application/json"})
    assert resp.status_code == 401, describe(resp)


# ---------------------------------------------------------------------------------------------
# CORS


def assert_cors(resp: httpx.Response) -> None:
    def listed(name):
        return {item.strip().lower() for item in resp.headers.get(name, "").split(",")}

    assert resp.headers.get("access-control-allow-origin") == "*", describe(resp)
    assert {"get", "post", "put", "delete", "options"} <= listed("access-control-allow-methods"), describe(resp)
    allowed_headers = listed("access-control-allow-headers")
    assert {"authorization", "content-type", "x-requested-with"} <= allowed_headers, describe(resp)


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/_matrix/client/versions", None),
    ("GET", "/.well-known/matrix/client", None),
    ("GET", f"{V3}/login", None),
    ("GET", f"{V3}/account/whoami", None),
    ("GET", f"{V3}/nonsense", None),
    ("DELETE", f"{V3}/login", None),
    ("POST", f"{V3}/login", b"{not json"),
    ("POST", f"{V3}/register", b"{}"),
])
def test_cors_headers_on_every_response(client, method, path, body):
    assert_cors(client.request(method, path, content=body))


@pytest.mark.parametrize("path", [
    f"{V3}/login", f"{V3}/register", f"{V3}/account/whoami", f"{V3}/account/deactivate",
    f"{V3}/profile/%40a%3Alocalhost/displayname", f"{V3}/no/such/endpoint", "/",
])
def test_preflight(client, path):
    resp = client.options(path, headers={"Origin": "https://app.example.org", "Access-Control-Request-Method": "POST",
                                         "Access-Control-Request-Headers": "Authorization, Content-Type"})
    assert resp.status_code in (200, 204), describe(resp)
    assert_cors(resp)


def test_preflight_runs_no_endpoint_logic(user):
    for path in (f"{V3}/logout", f"{V3}/logout/all"):
        assert user.request("OPTIONS", path).status_code in (200, 204)
    assert_ok(user.whoami())


# ---------------------------------------------------------------------------------------------
# The barrage: bad inputs on every endpoint


@dataclass(frozen=True)
class Expect:
    """What a request must get. Always: no 5xx, and a well-formed error body for any 4xx.
    status/errcode narrow that down when the spec is clear; `valid` marks a well-formed request."""

    status: frozenset[int] | None = None
    errcode: frozenset[str] | None = None
    valid: bool = False


def expect(status: int | set[int] | None = None, errcode: str | set[str] | None = None) -> Expect:
    def as_set(value, scalar_type):
        return None if value is None else frozenset({value} if isinstance(value, scalar_type) else value)

    return Expect(as_set(status, int), as_set(errcode, str))


ANY = Expect()
REFUSED = expect(set(range(400, 500)))
VALID = Expect(valid=True)  # the endpoint's answer to a well-formed body (Endpoint.valid)
BAD_JSON = expect(400, "M_BAD_JSON")
NOT_JSON = expect(400, "M_NOT_JSON")
CHALLENGE = expect(401)
FORBIDDEN = expect(403, "M_FORBIDDEN")

HUGE = "x" * 200_000
UNICODE = {
    "emoji": "\U0001F600\U0001F389 party",
    "rtl": "\u202eevil \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",
    "nul": "nul\u0000inside",
    "combining": "e\u0301\u0302\u0303\u0304" * 10,
}
LONE_SURROGATE = "\ud800"

# For each field kind: what a huge, a unicode and a lone-surrogate string get.
KINDS = {
    "username": (expect(400, "M_INVALID_USERNAME"), expect(400, "M_INVALID_USERNAME"),
                 expect(400, {"M_NOT_JSON", "M_BAD_JSON", "M_INVALID_USERNAME"})),
    "new_password": (expect(400, "M_INVALID_PARAM"), VALID, ANY),
    "device_name": (expect(400, "M_INVALID_PARAM"), VALID, ANY),
    "displayname": (expect(400, {"M_PROFILE_TOO_LARGE", "M_INVALID_PARAM", "M_TOO_LARGE"}), VALID, ANY),
    "login_type": (expect(400, "M_UNKNOWN"), expect(400, "M_UNKNOWN"),
                   expect(400, {"M_NOT_JSON", "M_BAD_JSON", "M_UNKNOWN"})),
    "uia_session": (expect(400, "M_UNKNOWN"), expect(400, "M_UNKNOWN"),
                    expect(400, {"M_NOT_JSON", "M_BAD_JSON", "M_UNKNOWN"})),
    "refused": (REFUSED, REFUSED, REFUSED),
    "opaque": (ANY, ANY, ANY),
}
WRONG_TYPES = {
    str: [42, 1.5, True, ["x"], {"x": 1}],
    bool: ["true", 1, ["x"], {"x": 1}],
    dict: ["text", 42, ["x"], True],
    list: ["DEVICE", 42, {"x": 1}, [1, 2], [None]],
}

FRESH = "<fresh name>"  # replaced by a new unique name in every request


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str  # may use {me}, {my_device}, {victim}
    body: dict | None  # a well-formed body; None for endpoints that take none
    valid: Expect  # what that body gets
    fields: dict = field(default_factory=dict)  # field path ("a.b") -> (type, kind)
    missing: Expect | None = None  # what the body {} gets
    empty: Expect = NOT_JSON  # what an empty body gets
    authed: bool = True
    readback: tuple | None = None  # (path, key): where an accepted value can be read back


ENDPOINTS = [
    Endpoint("register", "POST", f"{V3}/register", {"username": FRESH, "password": "pw"}, CHALLENGE, {
        "username": (str, "username"), "password": (str, "new_password"), "device_id": (str, "opaque"),
        "initial_device_display_name": (str, "opaque"), "inhibit_login": (bool, None), "auth": (dict, None),
        "auth.session": (str, "uia_session"),
    }, missing=CHALLENGE, authed=False),
    Endpoint("login", "POST", f"{V3}/login",
             {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": FRESH}, "password": "pw"},
             FORBIDDEN, {
                 "type": (str, "login_type"), "identifier": (dict, None), "identifier.user": (str, "refused"),
                 "identifier.type": (str, "refused"), "password": (str, "refused"), "device_id": (str, "refused"),
                 "initial_device_display_name": (str, "refused"),
             }, missing=expect(400, "M_MISSING_PARAM"), authed=False),
    Endpoint("password", "POST", f"{V3}/account/password", {"new_password": "new pw"}, CHALLENGE, {
        "new_password": (str, "new_password"), "logout_devices": (bool, None), "auth": (dict, None),
    }, missing=CHALLENGE),
    Endpoint("deactivate", "POST", f"{V3}/account/deactivate", {}, CHALLENGE, {
        "auth": (dict, None), "erase": (bool, None), "id_server": (str, "opaque"),
    }, missing=CHALLENGE),
    Endpoint("update_device", "PUT", f"{V3}/devices/{{my_device}}", {"display_name": "phone"}, expect(200), {
        "display_name": (str, "device_name"),
    }, missing=expect(200), readback=(f"{V3}/devices/{{my_device}}", "display_name")),
    Endpoint("delete_device", "DELETE", f"{V3}/devices/{{my_device}}", {}, CHALLENGE, {"auth": (dict, None)},
             missing=CHALLENGE, empty=CHALLENGE),
    Endpoint("delete_devices", "POST", f"{V3}/delete_devices", {"devices": ["X"]}, CHALLENGE, {
        "devices": (list, None), "auth": (dict, None),
    }, missing=expect(400, "M_MISSING_PARAM")),
    Endpoint("set_displayname", "PUT", f"{V3}/profile/{{me}}/displayname", {"displayname": "Fuzzy"}, expect(200), {
        "displayname": (str, "displayname"),
    }, missing=expect(400, "M_MISSING_PARAM"), readback=(f"{V3}/profile/{{me}}/displayname", "displayname")),
]

# Endpoints that read no body: only their tokens and path parameters matter.
BODYLESS = [
    ("GET", f"{V3}/account/whoami"), ("GET", f"{V3}/capabilities"), ("GET", f"{V3}/devices"),
    ("GET", f"{V3}/devices/{{my_device}}"), ("POST", f"{V3}/logout"), ("POST", f"{V3}/logout/all"),
    ("DELETE", f"{V3}/profile/{{me}}/org.example.scratch"),
]


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    expect: Expect
    body: bytes | None = None
    params: dict | None = None
    token: str = "mine"  # "mine", "none", or a literal token
    endpoint: Endpoint | None = None
    value: object = None  # the string under test, for readback


def with_field(body: dict, dotted: str, value) -> dict:
    """A deep copy of `body` with the field at `dotted` set (parents created as needed)."""
    body = json.loads(json.dumps(body))
    *parents, last = dotted.split(".")
    target = body
    for p in parents:
        if not isinstance(target.get(p), dict):
            target[p] = {}
        target = target[p]
    target[last] = value
    return body


def encode(body) -> bytes:
    # ASCII-escaped, so that lone surrogates travel as JSON escapes.
    return json.dumps(body).encode()


def endpoint_cases(ep: Endpoint) -> list[Case]:
    def case(label, body, exp, value=None):
        return Case(f"{ep.name}-{label}", ep.method, ep.path, exp, body, endpoint=ep, value=value,
                    token="mine" if ep.authed else "none")

    cases = [
        case("well-formed", encode(ep.body), VALID),
        case("truncated", encode(ep.body)[:-3] if ep.body else b'{"a": "b', NOT_JSON),
        case("invalid-utf8", b'{"x": "\xff\xfe"}', NOT_JSON),
        case("empty-body", b"", ep.empty),
        case("array-body", b'[{"a": 1}]', BAD_JSON),
        case("string-body", b'"text"', BAD_JSON),
        case("null-body", b"null", BAD_JSON),
        case("number-body", b"42", BAD_JSON),
        case("deep-nesting", b"[" * 10_000 + b"]" * 10_000, expect(400, {"M_NOT_JSON", "M_BAD_JSON"})),
        case("trailing-garbage", encode(ep.body) + b" x", NOT_JSON),
    ]
    if ep.missing is not None:
        cases.append(case("missing-fields", b"{}", ep.missing))
    for dotted, (kind_type, kind) in ep.fields.items():
        for i, wrong in enumerate(WRONG_TYPES[kind_type]):
            cases.append(case(f"{dotted}-wrong-type-{i}", encode(with_field(ep.body, dotted, wrong)), BAD_JSON))
        cases.append(case(f"{dotted}-null", encode(with_field(ep.body, dotted, None)), ANY))
        if kind is None:
            continue
        huge, unicode, surrogate = KINDS[kind]
        cases.append(case(f"{dotted}-huge", encode(with_field(ep.body, dotted, HUGE)), huge, HUGE))
        for label, text in UNICODE.items():
            cases.append(case(f"{dotted}-{label}", encode(with_field(ep.body, dotted, text)), unicode, text))
        cases.append(case(f"{dotted}-lone-surrogate", encode(with_field(ep.body, dotted, LONE_SURROGATE)), surrogate))
    return cases


def token_cases() -> list[Case]:
    cases = []
    for method, path in BODYLESS + [(ep.method, ep.path) for ep in ENDPOINTS if ep.authed]:
        name = f"{method} {path}"
        cases.append(Case(f"{name}-no-token", method, path, expect(401, "M_MISSING_TOKEN"), b"{}", token="none"))
        cases.append(Case(f"{name}-unknown-token", method, path, expect(401, "M_UNKNOWN_TOKEN"), b"{}",
                          token="syt_bogus"))
        cases.append(Case(f"{name}-huge-token", method, path, expect(401, "M_UNKNOWN_TOKEN"), b"{}", token="t" * 8000))
    whoami = f"{V3}/account/whoami"
    for label, text in UNICODE.items():
        cases.append(Case(f"whoami-query-token-{label}", "GET", whoami, expect(401, "M_UNKNOWN_TOKEN"), token="none",
                          params={"access_token": text}))
    return cases


def query_and_path_cases() -> list[Case]:
    available = f"{V3}/register/available"
    invalid_username = expect(400, "M_INVALID_USERNAME")
    missing_or_bad = expect({400, 404}, {"M_NOT_FOUND", "M_INVALID_PARAM"})
    cases = [
        Case("available-missing", "GET", available, expect(400, "M_MISSING_PARAM"), token="none"),
        Case("available-huge", "GET", available, invalid_username, token="none", params={"username": "u" * 8000}),
        Case("available-invalid-utf8", "GET", f"{available}?username=%FF%FE", invalid_username, token="none"),
        Case("available-surrogate-bytes", "GET", f"{available}?username=%ED%A0%80", invalid_username, token="none"),
        Case("available-bad-escape", "GET", f"{available}?username=%zz", invalid_username, token="none"),
        *(Case(f"available-{label}", "GET", available, invalid_username, token="none", params={"username": text})
          for label, text in UNICODE.items()),
        Case("register-kind-empty", "POST", f"{V3}/register", expect(400, "M_INVALID_PARAM"), b"{}", token="none",
             params={"kind": ""}),
        Case("register-kind-huge", "POST", f"{V3}/register", expect(400, "M_INVALID_PARAM"), b"{}", token="none",
             params={"kind": "k" * 8000}),
        Case("register-guest-truncated", "POST", f"{V3}/register", NOT_JSON, b'{"initial_device', token="none",
             params={"kind": "guest"}),
        Case("register-guest-array", "POST", f"{V3}/register", BAD_JSON, b"[]", token="none", params={"kind": "guest"}),
    ]
    for label, segment in [("emoji", "%F0%9F%98%80"), ("nul", "%00"), ("invalid-utf8", "%FF"),
                           ("huge", "d" * 4000), ("encoded-slash", "a%2Fb")]:
        cases.append(Case(f"get-device-{label}", "GET", f"{V3}/devices/{segment}", missing_or_bad))
        cases.append(Case(f"put-device-{label}", "PUT", f"{V3}/devices/{segment}", missing_or_bad,
                          encode({"display_name": "x"})))
    for label, user in [("not-an-id", "nobody"), ("emoji", "%40%F0%9F%98%80%3Alocalhost"),
                        ("nul", "%40a%00b%3Alocalhost"),
                        ("invalid-utf8", "%40%FF%3Alocalhost"), ("huge", "%40" + "u" * 4000 + "%3Alocalhost"),
                        ("other-server", "%40someone%3Aexample.org"), ("no-localpart", "%40%3Alocalhost")]:
        cases.append(Case(f"get-profile-{label}", "GET", f"{V3}/profile/{user}", missing_or_bad, token="none"))
        cases.append(Case(f"get-profile-field-{label}", "GET", f"{V3}/profile/{user}/displayname", missing_or_bad,
                          token="none"))
        cases.append(Case(f"put-profile-{label}", "PUT", f"{V3}/profile/{user}/displayname",
                          expect({400, 403}, {"M_FORBIDDEN", "M_INVALID_PARAM"}), encode({"displayname": "x"})))
    return cases


def cross_user_cases() -> list[Case]:
    """The fuzzer's token on the victim's resources."""
    forbidden_paths = ["displayname", "avatar_url", "m.tz", "org.example.secret"]
    cases = []
    for key in forbidden_paths:
        value = "mxc://example.org/pwned" if key == "avatar_url" else "pwned"
        cases.append(Case(f"put-victim-{key}", "PUT", f"{V3}/profile/{{victim}}/{key}", FORBIDDEN,
                          encode({key: value})))
        cases.append(Case(f"delete-victim-{key}", "DELETE", f"{V3}/profile/{{victim}}/{key}", FORBIDDEN))
    not_found = expect(404, "M_NOT_FOUND")
    cases.append(Case("get-victim-device", "GET", f"{V3}/devices/{{victim_device}}", not_found))
    cases.append(Case("put-victim-device", "PUT", f"{V3}/devices/{{victim_device}}", not_found,
                      encode({"display_name": "pwned"})))
    return cases


ALL_CASES = [case for ep in ENDPOINTS for case in endpoint_cases(ep)] + token_cases() + query_and_path_cases() \
    + cross_user_cases()

VICTIM_PROFILE = {
    "displayname": "Victim Original",
    "avatar_url": "mxc://example.org/victim",
    "m.tz": "Europe/Berlin",
    "org.example.secret": {"keep": [1, 2, 3], "text": "\U0001F512"},
}


@dataclass
class Parties:
    """The fuzzer sends the barrage as itself; the victim is only ever named or targeted."""

    fuzzer: dict
    victim: dict
    client: httpx.Client

    def request(self, method: str, path: str, token: str | None = None, **kwargs) -> httpx.Response:
        """A request from a fresh address, with the fuzzer's token unless told otherwise."""
        headers = {**fresh_address(), **auth_header(token or self.fuzzer["access_token"])}
        return self.client.request(method, path, headers=headers, **kwargs)

    def fill(self, path: str) -> str:
        return path.format(me=self.fuzzer["user_id"], my_device=self.fuzzer["device_id"],
                           victim=self.victim["user_id"], victim_device=self.victim["device_id"])


@pytest.fixture(scope="module")
def parties(base_url):
    with make_client(base_url) as c1, make_client(base_url) as c2, make_client(base_url) as barrage:
        fuzzer = register(c1, unique_name("fuzzer"))
        victim = register(c2, unique_name("victim"))
        for key, value in VICTIM_PROFILE.items():
            assert_ok(c2.put(profile_path(victim["user_id"], key), json={key: value},
                             headers=auth_header(victim["access_token"])))
        yield Parties(fuzzer, victim, barrage)


def fresh_address() -> dict:
    """Every barrage request comes from an address of its own, so no rate limit interferes."""
    return {"CF-Connecting-IP": random_ip()}


def check_well_formed(resp: httpx.Response) -> None:
    """No server error; every 4xx is a Matrix error or a user-interactive auth challenge."""
    assert resp.status_code < 500, describe(resp)
    if resp.status_code == 401 and "flows" in resp.text and "errcode" not in resp.json():
        assert isinstance(resp.json().get("session"), str), describe(resp)
    elif resp.status_code >= 400:
        error_body(resp)


def check_expectation(resp: httpx.Response, exp: Expect) -> None:
    if exp.status is not None:
        assert resp.status_code in exp.status, describe(resp)
    if exp.errcode is not None:
        assert resp.json().get("errcode") in exp.errcode, describe(resp)
    if exp.status == frozenset({401}) and exp.errcode is None:
        assert "flows" in resp.json(), describe(resp)


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES])
def test_bad_input(parties, case):
    path = parties.fill(case.path)
    body = case.body
    if body is not None and FRESH.encode() in body:
        body = body.replace(FRESH.encode(), unique_name("nobody").encode())
    token = {"mine": parties.fuzzer["access_token"], "none": None}.get(case.token, case.token)
    headers = {"Content-Type": "application/json", **fresh_address(), **(auth_header(token) if token else {})}
    resp = parties.client.request(case.method, path, content=body, params=case.params, headers=headers)
    check_well_formed(resp)
    check_expectation(resp, case.endpoint.valid if case.expect.valid else case.expect)
    readback = case.endpoint.readback if case.endpoint else None
    if readback and resp.status_code == 200 and case.value is not None:
        got = assert_ok(parties.request("GET", parties.fill(readback[0])))
        assert got.get(readback[1]) == case.value, f"stored {case.value!r}, read back {got!r}"


def uia_as(attacker, method, path, body, auth_user):
    """A password stage by the attacker's token, with `auth_user`'s name and password."""
    first = attacker.request(method, path, json=body)
    auth = password_auth(auth_user.user_id, auth_user.password, first.json()["session"])
    return attacker.request(method, path, json={**body, "auth": auth})


def device_deletions(victim):
    return [("DELETE", f"{V3}/devices/{victim.device_id}", {}),
            ("POST", f"{V3}/delete_devices", {"devices": [victim.device_id]})]


# Fresh accounts: each password stage counts against the attacker's login limit (5 in a burst).
def test_uia_with_another_users_password_is_refused(new_user):
    """The attacker's token with the victim's credentials must not pass any password stage."""
    attacker, victim = new_user(), new_user()
    for method, path, body in [("POST", f"{V3}/account/password", {"new_password": "hijack"}),
                               ("POST", f"{V3}/account/deactivate", {}), *device_deletions(victim)]:
        assert_error(uia_as(attacker, method, path, body, victim), {401, 403}, "M_FORBIDDEN")
    assert_ok(victim.whoami())


def test_deleting_another_users_device_with_own_password_does_nothing(new_user):
    attacker, victim = new_user(), new_user()
    for method, path, body in device_deletions(victim):
        resp = uia_as(attacker, method, path, body, attacker)
        check_well_formed(resp)
        assert resp.status_code in (200, 404), describe(resp)
    assert_ok(victim.whoami())


def test_nothing_stored_is_harmed(parties):
    """Runs after the barrage (tests run in file order): both accounts still work as before."""
    victim, fuzzer = parties.victim, parties.fuzzer
    for who in (victim, fuzzer):
        token = who["access_token"]
        assert assert_ok(parties.request("GET", f"{V3}/account/whoami", token=token))["device_id"] == who["device_id"]
        devices = assert_ok(parties.request("GET", f"{V3}/devices", token=token))["devices"]
        assert who["device_id"] in {d["device_id"] for d in devices}
        with make_client(str(parties.client.base_url)) as c:
            assert login(c, who["user_id"])["user_id"] == who["user_id"]
    assert assert_ok(parties.request("GET", profile_path(victim["user_id"]))) == VICTIM_PROFILE
    assert_ok(parties.request("GET", profile_path(fuzzer["user_id"])))
