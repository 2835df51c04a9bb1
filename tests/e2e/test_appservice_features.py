"""Application services beyond room events: ephemeral data in transactions (typing, receipts,
presence, to-device), MSC3202 device lists and key counts, user and alias queries, third-party
lookups merged across services, timestamp massaging, MSC4190 devices and `rate_limited`."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from appservices import Client, FakeService, add_and_wait, new_user, registration
from conftest import V3, User, assert_error, assert_ok, auth_header, make_client, path_quote, user_id_of
from e2ee import Device
from rooms import room_path


def start_service(as_server, tmp_path, **extra) -> tuple[dict, FakeService]:
    reg = registration(f"as{secrets.token_hex(3)}", None, **extra)
    fake = FakeService(reg["hs_token"])
    reg["url"] = fake.url
    add_and_wait(as_server.url, as_server.workdir / "state", tmp_path, reg)
    return reg, fake


@pytest.fixture(scope="module")
def full(as_server, tmp_path_factory):
    """One service with every extension on, shared by the tests of this file: (registration, fake)."""
    reg, fake = start_service(as_server, tmp_path_factory.mktemp("full"), receive_ephemeral=True,
                              protocols=["irc", "gitter"],
                              **{"org.matrix.msc3202": True, "io.element.msc4190": True})
    yield reg, fake
    fake.stop()


def bot(as_server, reg: dict) -> Client:
    return Client(as_server.url, reg["as_token"])


def service_user(as_server, reg: dict, name: str) -> User:
    """A user of the service's namespace, registered by the service, with a device and token."""
    localpart = f"{reg['id']}-{name}"
    with make_client(as_server.url) as c:
        body = assert_ok(c.post(f"{V3}/register", headers=auth_header(reg["as_token"]),
                                json={"type": "m.login.application_service", "username": localpart}))
    return User(make_client(as_server.url), body["user_id"], body["access_token"], body["device_id"])


def room_with_bot(as_server, reg: dict, owner: Client) -> str:
    room = owner.call("POST", f"{V3}/createRoom", json={})["room_id"]
    owner.call("POST", room_path(room, "invite"), json={"user_id": user_id_of(reg["sender_localpart"])})
    bot(as_server, reg).call("POST", room_path(room, "join"), json={})
    return room


def whoami(client: Client) -> str:
    return client.call("GET", f"{V3}/account/whoami")["user_id"]


def ephemeral(fake: FakeService) -> list[dict]:
    """Every delivered ephemeral event; each transaction carries them under both names."""
    out = []
    for body in fake.delivered():
        assert body.get("ephemeral") == body.get("de.sorunome.msc2409.ephemeral"), body
        out.extend(body.get("ephemeral", []))
    return out


def to_device(fake: FakeService) -> list[dict]:
    out = []
    for body in fake.delivered():
        assert body.get("to_device") == body.get("de.sorunome.msc2409.to_device"), body
        out.extend(body.get("to_device", []))
    return out


def test_ephemeral_data_of_interested_rooms_and_users_arrives_once(as_server, full):
    reg, fake = full
    alice = new_user(as_server.url)
    alice_id = whoami(alice)
    room = room_with_bot(as_server, reg, alice)
    # A room without the service's users: its typing concerns the service not.
    carol = new_user(as_server.url)
    elsewhere = carol.call("POST", f"{V3}/createRoom", json={})["room_id"]
    carol.call("PUT", room_path(elsewhere, "typing", whoami(carol)), json={"typing": True, "timeout": 20000})

    alice.call("PUT", room_path(room, "typing", alice_id), json={"typing": True, "timeout": 20000})
    typing = lambda: [e for e in ephemeral(fake) if e["type"] == "m.typing" and e["room_id"] == room]
    fake.wait_for(lambda: any(alice_id in e["content"]["user_ids"] for e in typing()), what="typing")

    event_id = alice.send(room, "read me")
    alice.call("POST", room_path(room, "receipt", "m.read", event_id), json={})
    receipts = lambda: [e for e in ephemeral(fake) if e["type"] == "m.receipt" and event_id in e["content"]]
    fake.wait_for(receipts, what="the receipt")
    assert receipts()[0]["room_id"] == room
    assert alice_id in receipts()[0]["content"][event_id]["m.read"]

    alice.call("PUT", f"{V3}/presence/{path_quote(alice_id)}/status", json={"presence": "online", "status_msg": "here"})
    presence = lambda: [e for e in ephemeral(fake) if e["type"] == "m.presence" and e["sender"] == alice_id]
    fake.wait_for(lambda: any(e["content"].get("status_msg") == "here" for e in presence()), what="presence")

    # To-device messages to the service's users (MSC4203), with their recipient.
    bob = service_user(as_server, reg, "bob")
    outsider = new_user(as_server.url)
    messages = {bob.user_id: {bob.device_id: {"secret": 1}}, whoami(outsider): {"*": {"secret": 2}}}
    alice.call("PUT", f"{V3}/sendToDevice/m.test/{secrets.token_hex(4)}", json={"messages": messages})
    fake.wait_for(lambda: to_device(fake), what="the to-device message")
    assert to_device(fake) == [{"type": "m.test", "sender": alice_id, "content": {"secret": 1},
                                "to_user_id": bob.user_id, "to_device_id": bob.device_id}]

    # A last typing change: by the time it arrives, everything before it has.
    alice.call("PUT", room_path(room, "typing", alice_id), json={"typing": False})
    fake.wait_for(lambda: any(e["content"]["user_ids"] == [] for e in typing()), what="the typing stop")
    assert not [e for e in ephemeral(fake) if e.get("room_id") == elsewhere]
    assert len(receipts()) == 1, "each receipt once"
    assert len(to_device(fake)) == 1


def test_presence_decided_by_its_owner_reaches_the_services_that_take_ephemeral_data(as_server, full, tmp_path):
    """A sync brings its user online and, once it stops, the owner's timer takes them offline: no
    request of the user's carries the change to the services; the presence owner (the user's
    `UserSync` object) pokes them. A service without ephemeral data gets none."""
    reg, fake = full
    quiet_reg, quiet = start_service(as_server, tmp_path)
    try:
        alice = new_user(as_server.url)
        alice_id = whoami(alice)
        room = room_with_bot(as_server, reg, alice)
        alice.call("POST", room_path(room, "invite"), json={"user_id": user_id_of(quiet_reg["sender_localpart"])})
        bot(as_server, quiet_reg).call("POST", room_path(room, "join"), json={})
        alice.call("GET", f"{V3}/sync", params={"set_presence": "online", "timeout": 0})
        presence = lambda state: [e for e in ephemeral(fake) if e["type"] == "m.presence"
                                  and e["sender"] == alice_id and e["content"]["presence"] == state]
        fake.wait_for(lambda: presence("online"), what="online presence")
        assert presence("online")[0]["content"].get("currently_active") is True
        # No more syncs: offline after PRESENCE_SYNC_TIMEOUT_MS (3 s on this server), by the timer.
        fake.wait_for(lambda: presence("offline"), timeout=30, what="offline presence")
        def first_txn(state: str) -> int:
            return next(i for i, b in enumerate(fake.delivered()) if any(
                e["type"] == "m.presence" and e["sender"] == alice_id and e["content"]["presence"] == state
                for e in b.get("ephemeral", [])))
        assert first_txn("online") < first_txn("offline")
        # The quiet service was in the room all along, and got its events but no ephemeral data.
        quiet.wait_for(lambda: quiet.delivered(), what="the quiet service's transactions")
        assert not [b for b in quiet.delivered() if "ephemeral" in b or "de.sorunome.msc2409.ephemeral" in b]
    finally:
        quiet.stop()


def test_msc3202_device_lists_and_key_counts(as_server, full):
    reg, fake = full
    dave = service_user(as_server, reg, "dave")
    device = Device(dave)
    otks = device.one_time_keys(2)
    fallback = device.one_time_keys(1, fallback=True)
    device.upload_ok(device_keys=device.device_keys(), one_time_keys=otks, fallback_keys=fallback)

    def lists_with_dave() -> list[dict]:
        return [b for b in fake.delivered() if dave.user_id in b.get("device_lists", {}).get("changed", [])]

    fake.wait_for(lists_with_dave, what="dave's device list change")
    body = lists_with_dave()[0]
    assert body["org.matrix.msc3202.device_lists"] == body["device_lists"]
    assert body["device_lists"]["left"] == []
    counts = body["device_one_time_keys_count"]
    assert counts[dave.user_id][dave.device_id] == {"signed_curve25519": 2}
    assert body["org.matrix.msc3202.device_one_time_keys_count"] == counts
    fallbacks = body["device_unused_fallback_key_types"]
    assert fallbacks[dave.user_id][dave.device_id] == ["signed_curve25519"]
    assert body["org.matrix.msc3202.device_unused_fallback_key_types"] == fallbacks


def test_user_and_alias_queries(as_server, full):
    reg, fake = full
    prefix = reg["id"]
    service = bot(as_server, reg)

    def answer(method: str, path: str):
        if method != "GET":
            return None
        if path.startswith("/_matrix/app/v1/users/"):
            user_id = unquote(path.rsplit("/", 1)[1])
            if "-known" not in user_id:
                return 404, {}
            localpart = user_id[1:].split(":")[0]
            with make_client(as_server.url) as c:
                assert_ok(c.post(f"{V3}/register", headers=auth_header(reg["as_token"]),
                                 json={"type": "m.login.application_service", "username": localpart,
                                       "inhibit_login": True}))
            return 200, {}
        if path.startswith("/_matrix/app/v1/rooms/"):
            alias = unquote(path.rsplit("/", 1)[1])
            if "-known" not in alias:
                return 404, {}
            service.call("POST", f"{V3}/createRoom", json={"room_alias_name": alias[1:].split(":")[0],
                                                            "preset": "public_chat"})
            return 200, {}
        return None

    fake.answer = answer
    queries = lambda: [r["path"] for r in fake.requests if r["path"].startswith(("/_matrix/app/v1/users/",
                                                                                  "/_matrix/app/v1/rooms/"))]
    alice = new_user(as_server.url)
    with make_client(as_server.url) as c:
        # An unknown user of the namespace: the service creates it when asked, and the lookup goes on.
        known = user_id_of(f"{prefix}-known1")
        assert_ok(c.get(f"{V3}/profile/{path_quote(known)}"))
        assert f"/_matrix/app/v1/users/{path_quote(known)}" in queries()
        assert fake.requests[-1]["authorization"] == f"Bearer {reg['hs_token']}"
        unknown = user_id_of(f"{prefix}-nobody")
        assert_error(c.get(f"{V3}/profile/{path_quote(unknown)}"), 404, "M_NOT_FOUND")
        assert f"/_matrix/app/v1/users/{path_quote(unknown)}" in queries()
        # Outside every namespace, no service is asked.
        asked = len(queries())
        assert_error(c.get(f"{V3}/profile/{path_quote(user_id_of('nobody-' + prefix))}"), 404, "M_NOT_FOUND")
        assert len(queries()) == asked
    # /keys/query asks about the unknown users of the namespace it names.
    ghost = user_id_of(f"{prefix}-known3")
    keys = alice.call("POST", f"{V3}/keys/query", json={"device_keys": {ghost: []}})
    assert f"/_matrix/app/v1/users/{path_quote(ghost)}" in queries() and "failures" in keys
    # An invite of a user the service creates on demand.
    room = alice.call("POST", f"{V3}/createRoom", json={})["room_id"]
    alice.call("POST", room_path(room, "invite"), json={"user_id": user_id_of(f"{prefix}-known2")})
    # Aliases: looked up in the directory, and joined.
    alias = f"#{prefix}-known-room:localhost"
    with make_client(as_server.url) as c:
        found = assert_ok(c.get(f"{V3}/directory/room/{path_quote(alias)}"))
    assert found["room_id"].startswith("!")
    other = f"#{prefix}-known-other:localhost"
    joined = alice.call("POST", f"{V3}/join/{path_quote(other)}", json={})
    assert joined["room_id"].startswith("!") and joined["room_id"] != found["room_id"]
    with make_client(as_server.url) as c:
        missing = f"#{prefix}-missing:localhost"
        assert_error(c.get(f"{V3}/directory/room/{path_quote(missing)}"), 404, "M_NOT_FOUND")
        assert f"/_matrix/app/v1/rooms/{path_quote(missing)}" in queries()
    fake.answer = lambda method, path: None


def listed(client: Client, path: str, params: dict) -> list:
    """A lookup's answer, a JSON list."""
    with make_client(client.url) as c:
        resp = c.get(path, params=params, headers=auth_header(client.token))
    assert resp.status_code == 200 and isinstance(resp.json(), list), resp.text
    return resp.json()


IRC = {
    "user_fields": ["network", "nickname"],
    "location_fields": ["network", "channel"],
    "icon": "mxc://example.org/irc",
    "field_types": {
        "network": {"regexp": "([a-z0-9]+\\.)*[a-z0-9]+", "placeholder": "irc.example.org"},
        "nickname": {"regexp": "[^\\s#]+", "placeholder": "alice"},
        "channel": {"regexp": "#[^\\s]+", "placeholder": "#matrix"},
    },
}


def test_third_party_lookups_merge_the_services(as_server, full, tmp_path):
    reg, fake = full
    other, other_fake = start_service(as_server, tmp_path, protocols=["irc"])
    try:
        location = {"alias": "#irc_#x:localhost", "protocol": "irc", "fields": {"network": "a", "channel": "#x"}}

        def first(method, path):
            if path == "/_matrix/app/v1/thirdparty/protocol/irc":
                return 200, {**IRC, "instances": [{"desc": "A", "network_id": "a", "fields": {"network": "a"}}]}
            if path == "/_matrix/app/v1/thirdparty/protocol/gitter":
                return 500, {}
            if path.startswith("/_matrix/app/v1/thirdparty/location"):
                return 200, [location]
            if path.startswith("/_matrix/app/v1/thirdparty/user/irc"):
                return 200, [{"userid": user_id_of(f"{reg['id']}-nick"), "protocol": "irc", "fields": {}}]
            return None

        def second(method, path):
            if path == "/_matrix/app/v1/thirdparty/protocol/irc":
                return 200, {**IRC, "instances": [{"desc": "B", "network_id": "b", "fields": {"network": "b"}}]}
            if path.startswith("/_matrix/app/v1/thirdparty/location"):
                return 200, [{**location, "alias": "#irc_#y:localhost"}]
            if path.startswith("/_matrix/app/v1/thirdparty/user"):
                return 500, {}
            return None

        fake.answer, other_fake.answer = first, second
        alice = new_user(as_server.url)
        protocols = alice.call("GET", f"{V3}/thirdparty/protocols")
        assert "gitter" not in protocols, "a failing service's protocol is left out"
        irc = protocols["irc"]
        assert irc["user_fields"] == IRC["user_fields"] and irc["field_types"] == IRC["field_types"]
        assert sorted((i["desc"], i["instance_id"]) for i in irc["instances"]) == \
            [("A", f"{reg['id']}|a"), ("B", f"{other['id']}|b")]
        assert alice.call("GET", f"{V3}/thirdparty/protocol/irc") == irc
        with make_client(as_server.url) as c:
            headers = auth_header(alice.token)
            assert_error(c.get(f"{V3}/thirdparty/protocol/gitter", headers=headers), 404, "M_NOT_FOUND")
            assert_error(c.get(f"{V3}/thirdparty/protocol/nope", headers=headers), 404, "M_NOT_FOUND")
            assert_error(c.get(f"{V3}/thirdparty/user/gitter", headers=headers), 404, "M_NOT_FOUND")
            assert_error(c.get(f"{V3}/thirdparty/protocols"), 401, "M_MISSING_TOKEN")
        found = listed(alice, f"{V3}/thirdparty/location/irc", {"network": "a", "channel": "#x"})
        assert sorted(l["alias"] for l in found) == ["#irc_#x:localhost", "#irc_#y:localhost"]
        asked = [r for r in fake.requests if r["path"].startswith("/_matrix/app/v1/thirdparty/location/irc")][-1]
        assert parse_qs(urlsplit(asked["path"]).query) == {"network": ["a"], "channel": ["#x"]}
        users = listed(alice, f"{V3}/thirdparty/user/irc", {"nickname": "nick"})
        assert [u["userid"] for u in users] == [user_id_of(f"{reg['id']}-nick")]
        by_alias = listed(alice, f"{V3}/thirdparty/location", {"alias": "#irc_#x:localhost"})
        assert len(by_alias) == 2
        asked = [r for r in fake.requests if r["path"].startswith("/_matrix/app/v1/thirdparty/location?")][-1]
        assert parse_qs(urlsplit(asked["path"]).query) == {"alias": ["#irc_#x:localhost"]}
    finally:
        fake.answer = lambda method, path: None
        other_fake.stop()


def test_timestamp_massaging_is_for_services_only(as_server, full):
    reg, _ = full
    service = bot(as_server, reg)
    room = service.call("POST", f"{V3}/createRoom", json={})["room_id"]
    path = room_path(room, "send", "m.room.message", secrets.token_hex(4))
    sent = service.call("PUT", path, params={"ts": "1234567890"}, json={"msgtype": "m.text", "body": "old"})
    event = service.call("GET", room_path(room, "event", sent["event_id"]))
    assert event["origin_server_ts"] == 1234567890
    state = service.call("PUT", room_path(room, "state", "m.room.topic", ""), params={"ts": "1234567999"},
                         json={"topic": "then"})
    assert service.call("GET", room_path(room, "event", state["event_id"]))["origin_server_ts"] == 1234567999
    with make_client(as_server.url) as c:
        bad = c.put(room_path(room, "send", "m.room.message", "x"), params={"ts": "soon"},
                    headers=auth_header(reg["as_token"]), json={})
        assert_error(bad, 400, "M_INVALID_PARAM")
    alice = new_user(as_server.url)
    own = alice.call("POST", f"{V3}/createRoom", json={})["room_id"]
    mine = alice.call("PUT", room_path(own, "send", "m.room.message", "t1"), params={"ts": "1234567890"},
                      json={"msgtype": "m.text", "body": "now"})
    assert alice.call("GET", room_path(own, "event", mine["event_id"]))["origin_server_ts"] != 1234567890


@pytest.fixture(scope="module")
def limited(as_server, tmp_path_factory):
    """A service without a URL that is rate limited (`rate_limited: true`)."""
    reg = registration(f"as{secrets.token_hex(3)}", None, rate_limited=True)
    add_and_wait(as_server.url, as_server.workdir / "state", tmp_path_factory.mktemp("limited"), reg)
    return reg


def test_services_manage_devices_without_uia(as_server, full):
    """MSC4190, in the spec since v1.17: a service creates its users' devices (201) and deletes
    them without user-interactive auth; a user only renames theirs."""
    reg, _ = full
    eve = service_user(as_server, reg, "eve")
    service = bot(as_server, reg)
    as_eve = {"user_id": eve.user_id}
    with make_client(as_server.url) as c:
        created = c.put(f"{V3}/devices/BRIDGE1", params=as_eve, headers=auth_header(reg["as_token"]),
                        json={"display_name": "Bridge"})
        assert created.status_code == 201, created.text
    devices = service.call("GET", f"{V3}/devices", params=as_eve)["devices"]
    assert {"BRIDGE1", eve.device_id} <= {d["device_id"] for d in devices}
    assert service.call("GET", f"{V3}/devices/BRIDGE1", params=as_eve)["display_name"] == "Bridge"
    me = service.call("GET", f"{V3}/account/whoami", params={**as_eve, "device_id": "BRIDGE1"})
    assert me["device_id"] == "BRIDGE1"
    # Renaming an existing device answers 200.
    service.call("PUT", f"{V3}/devices/BRIDGE1", params=as_eve, json={"display_name": "Renamed"})
    service.call("DELETE", f"{V3}/devices/BRIDGE1", params=as_eve)
    service.call("POST", f"{V3}/delete_devices", params=as_eve, json={"devices": [eve.device_id]})
    with make_client(as_server.url) as c:
        headers = auth_header(reg["as_token"])
        assert_error(c.get(f"{V3}/devices/BRIDGE1", params=as_eve, headers=headers), 404, "M_NOT_FOUND")
        # A user creates no device this way, and deleting one asks for user-interactive auth.
        user = new_user(as_server.url)
        own = user.call("GET", f"{V3}/account/whoami")["device_id"]
        headers = auth_header(user.token)
        assert_error(c.put(f"{V3}/devices/NEW", headers=headers, json={}), 404, "M_NOT_FOUND")
        refused = c.delete(f"{V3}/devices/{own}", headers=headers)
        assert refused.status_code == 401 and "flows" in refused.json(), refused.text


def test_rate_limited_false_is_never_limited(as_server, full, limited):
    # The server allows a burst of 5 to-device requests per sender.
    for reg, allowed in [(full[0], 8), (limited, 5)]:
        sender = user_id_of(reg["sender_localpart"])
        with make_client(as_server.url) as c:
            for i in range(allowed):
                resp = c.put(f"{V3}/sendToDevice/m.test/{secrets.token_hex(4)}", headers=auth_header(reg["as_token"]),
                             json={"messages": {sender: {"*": {"n": i}}}})
                assert_ok(resp)
            if reg is limited:
                over = c.put(f"{V3}/sendToDevice/m.test/{secrets.token_hex(4)}",
                             headers=auth_header(reg["as_token"]), json={"messages": {sender: {"*": {}}}})
                assert_error(over, 429, "M_LIMIT_EXCEEDED")
