"""Push rules: the `/pushrules` endpoints, the server-default rules, and the rules reaching every
device through `/sync` as `m.push_rules` account data."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from nio import (
    DeletePushRuleResponse, EnablePushRuleResponse, PushEventMatch, PushNotify, PushRuleKind, PushRulesEvent,
    PushSetTweak, SetPushRuleActionsResponse, SetPushRuleResponse, SyncResponse,
)

from conftest import V3, User, assert_error, assert_ok, auth_header, path_quote
from rooms import create_room, join
from test_client_nio import expect
from test_rooms_nio import registered

KINDS = ["override", "content", "room", "sender", "underride"]
DEFAULT_OVERRIDE = [
    ".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me", ".m.rule.member_event",
    ".m.rule.is_user_mention", ".m.rule.is_room_mention", ".m.rule.tombstone", ".m.rule.reaction",
    ".m.rule.room.server_acl", ".m.rule.suppress_edits",
]
DEFAULT_UNDERRIDE = [
    ".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one", ".m.rule.message",
    ".m.rule.encrypted",
]


def rule_path(kind: str, rule_id: str, attr: str | None = None, scope: str = "global") -> str:
    path = f"{V3}/pushrules/{scope}/{kind}/{path_quote(rule_id)}"
    return path if attr is None else f"{path}/{attr}"


def all_rules(user: User) -> dict:
    return assert_ok(user.get(f"{V3}/pushrules/"))


def ids(user: User, kind: str) -> list[str]:
    return [r["rule_id"] for r in all_rules(user)["global"][kind]]


def user_ids(user: User, kind: str) -> list[str]:
    """The IDs of the user-defined rules of a kind, in order."""
    return [r for r in ids(user, kind) if not r.startswith(".")]


def put_rule(user: User, kind: str, rule_id: str, body: dict, **params) -> dict:
    return assert_ok(user.put(rule_path(kind, rule_id), json=body, params=params))


def put_content(user: User, rule_id: str, pattern: str = "cake", **params) -> dict:
    return put_rule(user, "content", rule_id, {"pattern": pattern, "actions": ["notify"]}, **params)


def sync(user: User, token: str | None = None, **params) -> dict:
    return assert_ok(user.get(f"{V3}/sync", params=params, headers=auth_header(token or user.access_token)))


def push_rules_events(response: dict) -> list[dict]:
    return [e["content"] for e in response["account_data"]["events"] if e["type"] == "m.push_rules"]


# ---------------------------------------------------------------------------------------------
# Reading


def test_every_user_has_the_default_rules_in_the_spec_s_order(user):
    body = all_rules(user)
    assert set(body) == {"global"}
    ruleset = body["global"]
    assert set(ruleset) == set(KINDS), "every kind is there, empty ones too"
    assert [r["rule_id"] for r in ruleset["override"]] == DEFAULT_OVERRIDE
    assert [r["rule_id"] for r in ruleset["underride"]] == DEFAULT_UNDERRIDE
    assert ruleset["content"] == ruleset["room"] == ruleset["sender"] == []
    for rule in ruleset["override"] + ruleset["underride"]:
        assert rule["default"] is True, rule
        assert rule["enabled"] is (rule["rule_id"] != ".m.rule.master"), rule
    by_id = {r["rule_id"]: r for r in ruleset["override"]}
    assert {"key": "state_key", "kind": "event_match", "pattern": user.user_id} in \
        by_id[".m.rule.invite_for_me"]["conditions"]
    assert by_id[".m.rule.is_user_mention"]["conditions"] == [
        {"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids", "value": user.user_id}]
    # The global scope alone is the same ruleset.
    assert assert_ok(user.get(f"{V3}/pushrules/global/")) == ruleset


def test_one_rule_its_enabled_and_its_actions(user):
    message = assert_ok(user.get(rule_path("underride", ".m.rule.message")))
    assert message == {
        "rule_id": ".m.rule.message", "default": True, "enabled": True,
        "conditions": [{"kind": "event_match", "key": "type", "pattern": "m.room.message"}],
        "actions": ["notify"],
    }
    assert assert_ok(user.get(rule_path("override", ".m.rule.master", "enabled"))) == {"enabled": False}
    assert assert_ok(user.get(rule_path("override", ".m.rule.master", "actions"))) == {"actions": []}
    assert assert_ok(user.get(rule_path("underride", ".m.rule.call", "actions"))) == {
        "actions": ["notify", {"set_tweak": "sound", "value": "ring"}]}


def test_rules_are_per_user(user, new_user):
    other = new_user()
    put_content(user, "mine")
    assert user_ids(user, "content") == ["mine"]
    assert user_ids(other, "content") == []
    assert_error(other.get(rule_path("content", "mine")), 404, "M_NOT_FOUND")


# ---------------------------------------------------------------------------------------------
# Adding, changing and deleting


def test_rules_of_each_kind(user):
    room_id = create_room(user)
    put_rule(user, "override", "beer", {
        "conditions": [{"kind": "event_match", "key": "content.body", "pattern": "beer"},
                       {"kind": "room_member_count", "is": "<=10"}],
        "actions": ["notify", {"set_tweak": "sound", "value": "beeroclock.wav"}]})
    put_rule(user, "content", "nocake", {"pattern": "cake*lie", "actions": []})
    put_rule(user, "room", room_id, {"actions": []})
    put_rule(user, "sender", "@spambot:example.org", {"actions": []})
    put_rule(user, "underride", "quiet", {"actions": [], "conditions": []})

    assert assert_ok(user.get(rule_path("override", "beer"))) == {
        "rule_id": "beer", "default": False, "enabled": True,
        "conditions": [{"kind": "event_match", "key": "content.body", "pattern": "beer"},
                       {"kind": "room_member_count", "is": "<=10"}],
        "actions": ["notify", {"set_tweak": "sound", "value": "beeroclock.wav"}]}
    assert assert_ok(user.get(rule_path("content", "nocake"))) == {
        "rule_id": "nocake", "default": False, "enabled": True, "pattern": "cake*lie", "actions": []}
    assert assert_ok(user.get(rule_path("room", room_id))) == {
        "rule_id": room_id, "default": False, "enabled": True, "actions": []}
    assert assert_ok(user.get(rule_path("sender", "@spambot:example.org")))["rule_id"] == "@spambot:example.org"
    assert assert_ok(user.get(rule_path("underride", "quiet")))["conditions"] == []

    ruleset = all_rules(user)["global"]
    # User rules come before the defaults of their kind, except that the master rule stays first.
    assert [r["rule_id"] for r in ruleset["override"]] == [".m.rule.master", "beer", *DEFAULT_OVERRIDE[1:]]
    assert [r["rule_id"] for r in ruleset["underride"]] == ["quiet", *DEFAULT_UNDERRIDE]
    assert [r["rule_id"] for r in ruleset["room"]] == [room_id]


def test_new_rules_go_first_and_before_or_after_place_them(user):
    for rule_id in ["c", "b", "a"]:
        put_content(user, rule_id)
    assert user_ids(user, "content") == ["a", "b", "c"]
    put_content(user, "x", before="b")
    assert user_ids(user, "content") == ["a", "x", "b", "c"]
    put_content(user, "y", after="c")
    assert user_ids(user, "content") == ["a", "x", "b", "c", "y"]
    # Both: the rule goes right before `before`.
    put_content(user, "z", before="a", after="y")
    assert user_ids(user, "content") == ["z", "a", "x", "b", "c", "y"]


def test_existing_rules_move_with_before_and_after(user):
    for rule_id in ["c", "b", "a"]:
        put_content(user, rule_id)
    put_content(user, "a", after="c")
    assert user_ids(user, "content") == ["b", "c", "a"]
    put_content(user, "b", before="a")
    assert user_ids(user, "content") == ["c", "b", "a"]
    put_content(user, "a", before="c")
    assert user_ids(user, "content") == ["a", "c", "b"]


def test_an_update_replaces_the_rule_and_keeps_enabled(user):
    put_content(user, "old", "first")
    put_content(user, "rule", "first")
    assert_ok(user.put(rule_path("content", "rule", "enabled"), json={"enabled": False}))
    put_rule(user, "content", "rule", {"pattern": "second", "actions": [{"set_tweak": "highlight"}]})
    assert assert_ok(user.get(rule_path("content", "rule"))) == {
        "rule_id": "rule", "default": False, "enabled": False, "pattern": "second",
        "actions": [{"set_tweak": "highlight"}]}
    # Without a place, an updated rule becomes the most important one, as in Synapse.
    put_content(user, "old", "again")
    assert user_ids(user, "content") == ["old", "rule"]


def test_enable_and_disable(user):
    put_content(user, "mine")
    for kind, rule_id in [("underride", ".m.rule.message"), ("content", "mine")]:
        assert_ok(user.put(rule_path(kind, rule_id, "enabled"), json={"enabled": False}))
        assert assert_ok(user.get(rule_path(kind, rule_id, "enabled"))) == {"enabled": False}
        assert assert_ok(user.get(rule_path(kind, rule_id)))["enabled"] is False
        assert_ok(user.put(rule_path(kind, rule_id, "enabled"), json={"enabled": True}))
        assert assert_ok(user.get(rule_path(kind, rule_id, "enabled"))) == {"enabled": True}
    assert_ok(user.put(rule_path("override", ".m.rule.master", "enabled"), json={"enabled": True}))
    master = all_rules(user)["global"]["override"][0]
    assert (master["rule_id"], master["enabled"]) == (".m.rule.master", True)


def test_actions_of_default_and_user_rules(user):
    put_content(user, "mine")
    actions = ["notify", {"set_tweak": "sound", "value": "bing"}, {"set_tweak": "highlight", "value": False}]
    for kind, rule_id in [("override", ".m.rule.suppress_notices"), ("content", "mine")]:
        assert_ok(user.put(rule_path(kind, rule_id, "actions"), json={"actions": actions}))
        assert assert_ok(user.get(rule_path(kind, rule_id, "actions"))) == {"actions": actions}
        assert assert_ok(user.get(rule_path(kind, rule_id)))["actions"] == actions
    # The historical actions are kept as given, as Synapse keeps them (Sytest checks), and ignored
    # as the spec asks: see test_historical_actions_notify_nobody.
    assert_ok(user.put(rule_path("content", "mine", "actions"), json={"actions": ["dont_notify", "coalesce"]}))
    assert assert_ok(user.get(rule_path("content", "mine", "actions"))) == {"actions": ["dont_notify", "coalesce"]}
    # A default rule changed keeps its place and its being a default.
    rule = all_rules(user)["global"]["override"][1]
    assert (rule["rule_id"], rule["default"], rule["actions"]) == (".m.rule.suppress_notices", True, actions)


def test_the_rules_of_one_kind(user):
    # Synapse's `GET /pushrules/global/{kind}/`, which Sytest reads: a JSON array.
    def kind_rules(kind: str) -> list:
        response = user.get(f"{V3}/pushrules/global/{kind}/")
        assert response.status_code == 200, response.text
        return response.json()

    put_content(user, "a")
    put_content(user, "b")
    listed = kind_rules("content")
    assert [r["rule_id"] for r in listed] == ids(user, "content")
    assert listed == all_rules(user)["global"]["content"]
    assert [r["rule_id"] for r in kind_rules("override")] == DEFAULT_OVERRIDE
    assert kind_rules("sender") == []
    assert_error(user.get(f"{V3}/pushrules/global/postcontent/"), 400, "M_UNRECOGNIZED")
    assert_error(user.get(f"{V3}/pushrules/device/content/"), 400, "M_UNRECOGNIZED")


def test_historical_actions_notify_nobody(new_user):
    alice, bob = new_user(), new_user()
    room_id = create_room(alice, preset="public_chat")
    join(bob, room_id)
    put_rule(bob, "override", "everything", {"conditions": [], "actions": ["dont_notify", "coalesce"]})
    first = assert_ok(alice.put(f"{V3}/rooms/{path_quote(room_id)}/send/m.room.message/t1",
                                json={"msgtype": "m.text", "body": "hello"}))["event_id"]
    assert_ok(bob.put(rule_path("override", "everything"), json={"conditions": [], "actions": []}))
    second = assert_ok(alice.put(f"{V3}/rooms/{path_quote(room_id)}/send/m.room.message/t2",
                                 json={"msgtype": "m.text", "body": "hello"}))["event_id"]
    # The second message is the control: an empty actions array notifies nobody either, so both
    # stay out of bob's notifications while the message rule would have notified.
    time.sleep(1)
    listed = [n["event"]["event_id"] for n in assert_ok(bob.get(f"{V3}/notifications"))["notifications"]]
    assert first not in listed and second not in listed
    assert_ok(bob.delete(rule_path("override", "everything")))
    third = assert_ok(alice.put(f"{V3}/rooms/{path_quote(room_id)}/send/m.room.message/t3",
                                json={"msgtype": "m.text", "body": "hello"}))["event_id"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        listed = [n["event"]["event_id"] for n in assert_ok(bob.get(f"{V3}/notifications"))["notifications"]]
        if third in listed:
            break
        time.sleep(0.2)
    assert third in listed and first not in listed


def test_delete(user):
    put_content(user, "a")
    put_content(user, "b")
    assert assert_ok(user.delete(rule_path("content", "a"))) == {}
    assert user_ids(user, "content") == ["b"]
    assert_error(user.get(rule_path("content", "a")), 404, "M_NOT_FOUND")
    assert_error(user.delete(rule_path("content", "a")), 404, "M_NOT_FOUND")


def test_default_rules_cannot_be_deleted(user):
    # Synapse answers 404: its table of rules has only the user's own.
    assert_error(user.delete(rule_path("override", ".m.rule.master")), 404, "M_NOT_FOUND")
    assert ids(user, "override") == DEFAULT_OVERRIDE


def test_concurrent_changes_are_all_kept(user):
    names = [f"rule{n}" for n in range(6)]
    with ThreadPoolExecutor(len(names)) as pool:
        responses = list(pool.map(lambda name: user.put(rule_path("content", name),
                                                        json={"pattern": name, "actions": []}), names))
    for resp in responses:
        assert_ok(resp)
    assert sorted(user_ids(user, "content")) == names


# ---------------------------------------------------------------------------------------------
# Errors


def test_unknown_rules_are_not_found(user):
    for kind in KINDS:
        assert_error(user.get(rule_path(kind, "nope")), 404, "M_NOT_FOUND")
        assert_error(user.delete(rule_path(kind, "nope")), 404, "M_NOT_FOUND")
        for attr, body in [("enabled", {"enabled": True}), ("actions", {"actions": []})]:
            assert_error(user.get(rule_path(kind, "nope", attr)), 404, "M_NOT_FOUND")
            assert_error(user.put(rule_path(kind, "nope", attr), json=body), 404, "M_NOT_FOUND")
    # A default rule under another kind is not that rule.
    assert_error(user.get(rule_path("underride", ".m.rule.master")), 404, "M_NOT_FOUND")


@pytest.mark.parametrize("method,path", [
    ("PUT", "/"),
    ("GET", "/global"),
    ("PUT", "/global"),
    ("PUT", "/global/"),
    ("GET", "/global/room"),
    ("PUT", "/global/room"),
    ("PUT", "/global/room/"),
    ("GET", "/global/override/.m.rule.master/not_an_attr"),
    ("PUT", "/global/override/.m.rule.master/not_an_attr"),
])
def test_paths_that_name_no_rule_or_attribute_get_400(user, method, path):
    # Synapse's answers, which Sytest's 80torture checks; without the slash the API is unknown.
    assert_error(user.request(method, f"{V3}/pushrules{path}", json={"enabled": True}), 400, "M_UNRECOGNIZED")
    assert_error(user.get(f"{V3}/pushrules"), 404, "M_UNRECOGNIZED")
    assert all_rules(user)["global"]["override"][0]["enabled"] is False


def test_unknown_kinds_and_scopes_get_synapse_s_errors(user):
    body = {"pattern": "x", "actions": []}
    assert_error(user.get(rule_path("postcontent", "x")), 400, "M_UNRECOGNIZED")
    assert_error(user.get(rule_path("postcontent", "x", "enabled")), 400, "M_UNRECOGNIZED")
    assert_error(user.get(rule_path("postcontent", "x", "actions")), 400, "M_UNRECOGNIZED")
    assert_error(user.put(rule_path("postcontent", "x"), json=body), 400, "M_UNKNOWN")
    assert_error(user.put(rule_path("postcontent", "x", "enabled"), json={"enabled": True}), 400, "M_UNKNOWN")
    assert_error(user.put(rule_path("postcontent", "x", "actions"), json={"actions": []}), 400, "M_UNKNOWN")
    assert_error(user.delete(rule_path("postcontent", "x")), 404, "M_NOT_FOUND")
    assert_error(user.get(f"{V3}/pushrules/device/"), 400, "M_UNRECOGNIZED")
    for scope in ["device", "Global"]:
        assert_error(user.get(rule_path("content", "x", scope=scope)), 400, "M_UNRECOGNIZED")
        assert_error(user.put(rule_path("content", "x", scope=scope), json=body), 400, "M_UNRECOGNIZED")
        assert_error(user.delete(rule_path("content", "x", scope=scope)), 400, "M_UNRECOGNIZED")
        assert_error(user.get(rule_path("content", "x", "enabled", scope=scope)), 400, "M_UNRECOGNIZED")
    assert user_ids(user, "content") == []


@pytest.mark.parametrize("rule_id", ["a/b", "a\\b", ".mine", ".m.rule.master"])
def test_reserved_and_slashed_rule_ids_are_refused(user, rule_id):
    before = all_rules(user)
    kind = "override"
    assert_error(user.put(rule_path(kind, rule_id), json={"actions": []}), 400, "M_UNKNOWN")
    assert all_rules(user) == before


@pytest.mark.parametrize("kind, body", [
    ("content", {"actions": ["notify"]}),
    ("content", {"pattern": "x", "actions": ["notify_loudly"]}),
    ("content", {"pattern": "x", "actions": [{"set_tweak": "highlight", "value": "very"}]}),
    ("content", {"pattern": "x", "actions": [{"value": "x"}]}),
    ("content", {"pattern": "x", "actions": [5]}),
    ("override", {"actions": [], "conditions": [{"key": "type", "pattern": "m.room.message"}]}),
    ("override", {"actions": [], "conditions": [{"kind": "event_match", "key": "type"}]}),
    ("override", {"actions": [], "conditions": [{"kind": "room_member_count", "is": "many"}]}),
    ("underride", {"actions": [], "conditions": ["event_match"]}),
    ("room", {"actions": []}),
    ("sender", {"actions": []}),
])
def test_bad_rules_are_refused_and_nothing_is_stored(user, kind, body):
    before = all_rules(user)
    # `room` and `sender` rules are named by a room or a user; "r1" is neither.
    assert_error(user.put(rule_path(kind, "r1"), json=body), 400, "M_INVALID_PARAM")
    assert all_rules(user) == before


def test_bad_actions_are_refused_and_nothing_is_stored(user):
    put_content(user, "mine")
    before = all_rules(user)
    for actions in [["bing"], [{"set_tweak": 5}], [{"set_tweak": "sound"}], [None]]:
        resp = user.put(rule_path("content", "mine", "actions"), json={"actions": actions})
        assert_error(resp, 400, "M_INVALID_PARAM")
        resp = user.put(rule_path("override", ".m.rule.master", "actions"), json={"actions": actions})
        assert_error(resp, 400, "M_INVALID_PARAM")
    assert all_rules(user) == before


def test_bad_places_are_refused_and_nothing_is_stored(user):
    put_content(user, "a")
    put_rule(user, "override", "o", {"actions": []})
    before = all_rules(user)
    assert_error(user.put(rule_path("content", "n"), json={"pattern": "x", "actions": []}, params={"before": "zz"}),
                 400, "M_UNKNOWN")
    assert_error(user.put(rule_path("content", "n"), json={"pattern": "x", "actions": []}, params={"after": "zz"}),
                 400, "M_UNKNOWN")
    # Another kind's rule is not there either.
    assert_error(user.put(rule_path("content", "n"), json={"pattern": "x", "actions": []}, params={"after": "o"}),
                 400, "M_UNKNOWN")
    # No rule goes next to a server-default rule.
    assert_error(user.put(rule_path("override", "n"), json={"actions": []}, params={"before": ".m.rule.message"}),
                 400, "M_UNKNOWN")
    assert_error(user.put(rule_path("override", "n"), json={"actions": []}, params={"after": ".m.rule.master"}),
                 400, "M_UNKNOWN")
    assert_error(user.put(rule_path("content", "a"), json={"pattern": "x", "actions": []}, params={"after": "a"}),
                 400, "M_UNKNOWN")
    assert all_rules(user) == before


@pytest.mark.parametrize("path, body, errcode", [
    (rule_path("content", "x"), b"not json", "M_NOT_JSON"),
    (rule_path("content", "x"), b"", "M_NOT_JSON"),
    (rule_path("content", "x"), b"[]", "M_BAD_JSON"),
    (rule_path("content", "x"), b'{"pattern": "x"}', "M_MISSING_PARAM"),
    (rule_path("content", "x"), b'{"pattern": "x", "actions": "notify"}', "M_BAD_JSON"),
    (rule_path("override", ".m.rule.master", "enabled"), b"true", "M_BAD_JSON"),
    (rule_path("override", ".m.rule.master", "enabled"), b"{}", "M_MISSING_PARAM"),
    (rule_path("override", ".m.rule.master", "enabled"), b'{"enabled": "yes"}', "M_BAD_JSON"),
    (rule_path("override", ".m.rule.master", "actions"), b'{"actions": {}}', "M_BAD_JSON"),
    (rule_path("override", ".m.rule.master", "actions"), b"{", "M_NOT_JSON"),
])
def test_malformed_bodies(user, path, body, errcode):
    assert_error(user.put(path, content=body), 400, errcode)


def test_rules_have_a_size_limit(user):
    resp = user.put(rule_path("content", "huge"), json={"pattern": "x" * 70_000, "actions": []})
    assert_error(resp, 413, "M_TOO_LARGE")
    assert_error(user.get(rule_path("content", "huge")), 404, "M_NOT_FOUND")


def test_guests_and_strangers_are_refused(guest, client):
    for method, path in [("GET", f"{V3}/pushrules/"), ("GET", f"{V3}/pushrules/global/"),
                         ("GET", rule_path("override", ".m.rule.master")),
                         ("PUT", rule_path("override", ".m.rule.master", "enabled"))]:
        assert_error(guest.request(method, path, json={"enabled": True}), 403, "M_GUEST_ACCESS_FORBIDDEN")
        assert_error(client.request(method, path, json={"enabled": True}), 401, "M_MISSING_TOKEN")


# ---------------------------------------------------------------------------------------------
# Sync


def test_initial_sync_carries_the_rules(user):
    response = sync(user)
    [content] = push_rules_events(response)
    assert content == all_rules(user)
    assert [r["rule_id"] for r in content["global"]["override"]] == DEFAULT_OVERRIDE
    # An incremental sync carries them only when they changed.
    assert push_rules_events(sync(user, since=response["next_batch"])) == []
    # The account data filter applies to them.
    only_tags = json.dumps({"account_data": {"types": ["m.tag"]}})
    assert push_rules_events(sync(user, filter=only_tags)) == []


def test_a_change_reaches_the_other_devices_through_sync(user):
    other = user.login()["access_token"]
    since = sync(user, other)["next_batch"]
    result: dict = {}

    def wait():
        result["response"] = sync(user, other, since=since, timeout=20_000)
        result["at"] = time.monotonic()

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1)
    changed_at = time.monotonic()
    put_content(user, "news", "headline")
    waiter.join(30)
    assert result["at"] - changed_at < 10, "the change woke the waiting sync"
    [content] = push_rules_events(result["response"])
    assert content == all_rules(user)
    assert [r["rule_id"] for r in content["global"]["content"]] == ["news"]
    assert [r["rule_id"] for r in content["global"]["override"]] == DEFAULT_OVERRIDE
    # A change that changes nothing is not a change.
    later = result["response"]["next_batch"]
    assert_ok(user.put(rule_path("content", "news", "enabled"), json={"enabled": True}))
    assert push_rules_events(sync(user, other, since=later)) == []
    # A change of a default rule comes with all the rules too.
    assert_ok(user.put(rule_path("override", ".m.rule.master", "enabled"), json={"enabled": True}))
    [content] = push_rules_events(sync(user, other, since=later))
    assert content["global"]["override"][0] == {
        "rule_id": ".m.rule.master", "default": True, "enabled": True, "conditions": [], "actions": []}
    assert [r["rule_id"] for r in content["global"]["content"]] == ["news"]


# ---------------------------------------------------------------------------------------------
# A client library


async def nio_path(base_url):
    client = await registered(base_url)
    try:
        first = expect(await client.sync(timeout=0), SyncResponse)
        [initial] = [e for e in first.account_data_events if isinstance(e, PushRulesEvent)]
        assert [r.id for r in initial.global_rules.override] == DEFAULT_OVERRIDE

        expect(await client.set_pushrule("global", PushRuleKind.override, "nio-beer",
                                         conditions=[PushEventMatch("content.body", "beer")],
                                         actions=[PushNotify(), PushSetTweak("sound", "default")]),
               SetPushRuleResponse)
        expect(await client.set_pushrule("global", PushRuleKind.content, "nio-cake", pattern="cake",
                                         actions=[PushNotify()]), SetPushRuleResponse)
        expect(await client.enable_pushrule("global", PushRuleKind.content, "nio-cake", False),
               EnablePushRuleResponse)
        expect(await client.set_pushrule_actions("global", PushRuleKind.underride, ".m.rule.message", []),
               SetPushRuleActionsResponse)
        expect(await client.delete_pushrule("global", PushRuleKind.override, "nio-beer"), DeletePushRuleResponse)

        second = expect(await client.sync(timeout=0, since=first.next_batch), SyncResponse)
        [rules] = [e for e in second.account_data_events if isinstance(e, PushRulesEvent)]
        assert [r.id for r in rules.global_rules.override] == DEFAULT_OVERRIDE
        [cake] = rules.global_rules.content
        assert (cake.id, cake.pattern, cake.enabled) == ("nio-cake", "cake", False)
        message = next(r for r in rules.global_rules.underride if r.id == ".m.rule.message")
        assert message.actions == []
    finally:
        await client.close()


def test_push_rules_through_nio(base_url):
    asyncio.run(nio_path(base_url))
