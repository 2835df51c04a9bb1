"""Presence routing, on a server with the built-in router (`@gobbler` receives everyone's
presence but `@hidden`'s), the docs' example router (`@bob`'s and `@charlie`'s presence goes to
`@alice`) and the test router `test_union` (`@dave`'s goes to `@alice` too, and `@watcher` is
interested in all users). Routed presence adds to shared-room presence; it never opens `GET`."""

from __future__ import annotations

import threading
import time

import pytest

from admin import create_user
from conftest import NAMED_SERVERS, V3, User, assert_error, assert_ok, make_client, register, unique_name
from rooms import create_room, join
from test_presence import presence_of, set_status, status_path, sync

NAMES = ["alice", "bob", "charlie", "dave", "watcher", "gobbler", "hidden"]


@pytest.fixture(scope="module")
def router_server(server_factory):
    server = server_factory.launch(NAMED_SERVERS["presence_router_url"])
    server.wait_ready()
    return server


def account(url: str, username: str | None = None) -> User:
    client = make_client(url)
    body = register(client, username or unique_name())
    return User(client, body["user_id"], body["access_token"], body["device_id"])


@pytest.fixture(scope="module")
def named(router_server) -> dict[str, User]:
    """The users the routers name, registered once on the router server."""
    return {name: account(router_server.url, name) for name in NAMES}


@pytest.fixture
def stranger(router_server):
    return lambda: account(router_server.url)


def quiet_sync(user: User, since: str | None = None, **params) -> dict:
    """A sync that leaves the user's own presence alone."""
    return sync(user, since, set_presence="offline", **params)


def woken_by(reader: User, since: str, change, timeout_ms: int = 20_000) -> tuple[float, dict]:
    """Starts a waiting sync of `reader`, makes `change`, and returns how long the sync waited
    and what it got."""
    out = {}

    def wait():
        started = time.monotonic()
        out["response"] = quiet_sync(reader, since, timeout=timeout_ms)
        out["seconds"] = time.monotonic() - started

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)
    change()
    waiter.join(timeout=timeout_ms / 1000 + 15)
    return out["seconds"], out["response"]


def test_the_builtin_router_sends_everyone_to_its_users(named, stranger):
    gobbler, somebody = named["gobbler"], stranger()
    set_status(somebody, "online", status_msg="hello")
    seen = presence_of(quiet_sync(gobbler))
    assert seen[somebody.user_id]["status_msg"] == "hello"
    # A change wakes gobbler's waiting sync: it is routed, with a stream position.
    token = quiet_sync(gobbler)["next_batch"]
    seconds, response = woken_by(gobbler, token, lambda: set_status(somebody, "unavailable", status_msg="later"))
    assert seconds < 10
    assert presence_of(response)[somebody.user_id]["status_msg"] == "later"
    # Routing does not open GET to users who share no room.
    assert_error(gobbler.get(status_path(somebody.user_id)), 403, "M_FORBIDDEN")


def test_blacklisted_users_are_not_routed_but_share_rooms_as_ever(named, stranger):
    gobbler, hidden, friend = named["gobbler"], named["hidden"], stranger()
    join(friend, create_room(hidden, preset="public_chat"))
    token = quiet_sync(gobbler)["next_batch"]
    friend_token = quiet_sync(friend)["next_batch"]
    seconds, _ = woken_by(gobbler, token, lambda: set_status(hidden, "unavailable", status_msg="shh"), 3000)
    assert seconds >= 2.5, "a blacklisted user's change is not routed to gobbler"
    # Shared-room presence is unaffected.
    seen = presence_of(quiet_sync(friend, friend_token))
    assert seen[hidden.user_id]["status_msg"] == "shh"


def test_the_docs_example_routes_bob_and_charlie_to_alice(named, stranger):
    alice, bob, charlie, eve = named["alice"], named["bob"], named["charlie"], stranger()
    set_status(bob, "online", status_msg="bob here")
    set_status(eve, "online")
    seen = presence_of(quiet_sync(alice))
    assert seen[bob.user_id]["status_msg"] == "bob here"
    assert eve.user_id not in seen
    token = quiet_sync(alice)["next_batch"]
    seconds, response = woken_by(alice, token, lambda: set_status(charlie, "unavailable", status_msg="charlie"))
    assert seconds < 10
    assert presence_of(response)[charlie.user_id]["status_msg"] == "charlie"
    # One way only, and GET stays closed.
    set_status(alice, "online")
    assert alice.user_id not in presence_of(quiet_sync(bob))
    assert_error(alice.get(status_path(bob.user_id)), 403, "M_FORBIDDEN")


def test_two_routers_compose(named, stranger):
    """`docs_example` and `test_union` both route to alice: the sets are united. For watcher,
    `test_union` answers all users, after the others answered none."""
    alice, bob, dave, watcher, somebody = named["alice"], named["bob"], named["dave"], named["watcher"], stranger()
    set_status(bob, "online")
    set_status(dave, "online", status_msg="dave here")
    set_status(somebody, "online", status_msg="anyone")
    seen = presence_of(quiet_sync(alice))
    assert {bob.user_id, dave.user_id} <= set(seen)
    assert somebody.user_id not in seen
    everyone = presence_of(quiet_sync(watcher))
    assert {bob.user_id, dave.user_id, somebody.user_id} <= set(everyone)
    token = quiet_sync(alice)["next_batch"]
    seconds, response = woken_by(alice, token, lambda: set_status(dave, "unavailable", status_msg="dave away"))
    assert seconds < 10
    assert presence_of(response)[dave.user_id]["status_msg"] == "dave away"


def test_routed_presence_comes_beside_shared_room_presence(named, stranger):
    alice, charlie, roommate = named["alice"], named["charlie"], stranger()
    join(roommate, create_room(alice, preset="public_chat"))
    set_status(roommate, "online", status_msg="in the room")
    set_status(charlie, "online", status_msg="routed")
    seen = presence_of(quiet_sync(alice))
    assert seen[roommate.user_id]["status_msg"] == "in the room"
    assert seen[charlie.user_id]["status_msg"] == "routed"
    # Incrementally, changes of both kinds.
    token = quiet_sync(alice)["next_batch"]
    set_status(roommate, "unavailable")
    set_status(charlie, "unavailable", status_msg="routed again")
    changed = presence_of(quiet_sync(alice, token))
    assert changed[roommate.user_id]["presence"] == "unavailable"
    assert changed[charlie.user_id]["status_msg"] == "routed again"


def test_send_online_presence_to_gives_a_full_snapshot(router_server, named, stranger):
    admin = create_user(router_server.url, unique_name("admin"), admin=True)
    roommate, newcomer = stranger(), stranger()
    join(roommate, create_room(newcomer, preset="public_chat"))
    set_status(roommate, "online", status_msg="here all along")
    token = quiet_sync(newcomer)["next_batch"]
    assert presence_of(quiet_sync(newcomer, token)) == {}, "nothing changed"
    path = "/_stratus/admin/v1/send_online_presence_to"
    body = {"users": [newcomer.user_id, "@someone:elsewhere.example"]}

    def ask():
        assert assert_ok(admin.post(path, json=body)) == {}

    seconds, response = woken_by(newcomer, token, ask)
    assert seconds < 10
    assert presence_of(response)[roommate.user_id]["status_msg"] == "here all along"
    # Once: the next sync has only changes again.
    assert presence_of(quiet_sync(newcomer, response["next_batch"])) == {}
    # It is an admin's call.
    assert_error(newcomer.post(path, json=body), 403, "M_FORBIDDEN")
    with make_client(router_server.url) as c:
        assert_error(c.post(path, json=body), 401, "M_MISSING_TOKEN")
    assert_error(admin.post(path, json={"users": "nobody"}), 400, "M_BAD_JSON")
