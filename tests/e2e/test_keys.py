"""`/keys/upload`, `/keys/query`, `/keys/claim` and `/keys/changes`: device keys, one-time and
fallback keys, handed out once each even when claims race."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from conftest import V3, assert_error, assert_ok, auth_header
from e2ee import Device, claim, query
from rooms import create_room, join, leave


def sync(user, since=None, token=None) -> dict:
    params = {"timeout": 0, **({"since": since} if since else {})}
    return assert_ok(user.get(f"{V3}/sync", params=params, token=token))


def test_device_keys_are_served_with_the_device_name(user, new_user):
    device = Device(user)
    assert_ok(user.put(f"{V3}/devices/{user.device_id}", json={"display_name": "laptop"}))
    counts = device.upload_ok(device_keys=device.device_keys())["one_time_key_counts"]
    assert counts == {"signed_curve25519": 0}
    other = new_user()
    served = query(other, {user.user_id: []})
    keys = served["device_keys"][user.user_id][user.device_id]
    assert keys["unsigned"] == {"device_display_name": "laptop"}
    assert {k: v for k, v in keys.items() if k != "unsigned"} == device.device_keys()
    assert served["failures"] == {}
    # Asking for the device by ID, or for another device, narrows the answer.
    assert list(query(other, {user.user_id: [user.device_id]})["device_keys"][user.user_id]) == [user.device_id]
    assert query(other, {user.user_id: ["NOSUCH"]})["device_keys"] == {user.user_id: {}}


def test_device_keys_of_another_user_or_device_are_refused_and_not_stored(user, new_user):
    device = Device(user)
    victim = new_user()
    assert_error(device.upload(device_keys=device.device_keys(user_id=victim.user_id)), 400, "M_BAD_JSON")
    assert_error(device.upload(device_keys=device.device_keys(device_id="OTHERDEVICE")), 400, "M_BAD_JSON")
    served = query(user, {user.user_id: [], victim.user_id: []})["device_keys"]
    assert served == {user.user_id: {}, victim.user_id: {}}


def test_malformed_uploads_are_refused(user):
    device = Device(user)
    keys = device.device_keys()
    del keys["algorithms"]
    # Device keys without a required field are malformed, as Synapse (and Sytest) answer.
    assert_error(device.upload(device_keys=keys), 400, "M_BAD_JSON")
    assert_error(device.upload(device_keys=None), 400, "M_BAD_JSON")
    assert_error(device.upload(device_keys={**device.device_keys(), "keys": {"ed25519:X": 5}}), 400, "M_BAD_JSON")
    assert_error(device.upload(one_time_keys={"signed_curve25519": "k"}), 400, "M_BAD_JSON")
    assert_error(device.upload(one_time_keys={"a:b:c": "k"}), 400, "M_BAD_JSON")
    assert_error(device.upload(one_time_keys={"signed_curve25519:A": {"key": "k"}}), 400, "M_BAD_JSON")
    assert_error(device.upload(fallback_keys=["k"]), 400, "M_BAD_JSON")
    # Nothing of a refused upload is stored.
    assert device.upload_ok()["one_time_key_counts"] == {"signed_curve25519": 0}


def test_identity_keys_are_fixed_once_uploaded(user, new_user):
    device = Device(user)
    device.upload_ok(device_keys=device.device_keys())
    device.upload_ok(device_keys=device.device_keys())  # the same again is fine
    changed = Device(user)  # another ed25519 and curve25519 key for the same device ID
    assert_error(changed.upload(device_keys=changed.device_keys()), 400, "M_UNKNOWN")
    # Other fields may change, signed by the same key.
    device.upload_ok(device_keys=device.device_keys(algorithms=["m.megolm.v1.aes-sha2"]))
    served = query(new_user(), {user.user_id: []})["device_keys"][user.user_id][user.device_id]
    assert served["algorithms"] == ["m.megolm.v1.aes-sha2"]
    assert served["keys"] == device.device_keys()["keys"]


def test_one_time_key_counts_and_conflicting_reuploads(user):
    device = Device(user)
    first = device.one_time_keys(3)
    assert device.upload_ok(one_time_keys=first)["one_time_key_counts"] == {"signed_curve25519": 3}
    plain = {"curve25519:AAAA": "somekey"}
    assert device.upload_ok(one_time_keys=plain)["one_time_key_counts"] == {"signed_curve25519": 3, "curve25519": 1}
    # The same keys again (re-signed or not) are no new keys; another key under a used ID is refused.
    key_id = next(iter(first))
    resigned = device.ed25519.sign({"key": first[key_id]["key"]}, user.user_id)
    counts = device.upload_ok(one_time_keys={key_id: resigned, **plain})["one_time_key_counts"]
    assert counts == {"signed_curve25519": 3, "curve25519": 1}
    clash = {key_id: device.ed25519.sign({"key": "another"}, user.user_id), "signed_curve25519:NEW": first[key_id]}
    assert_error(device.upload(one_time_keys=clash), 400, "M_UNKNOWN")
    assert device.upload_ok()["one_time_key_counts"] == {"signed_curve25519": 3, "curve25519": 1}


def test_claims_hand_out_keys_oldest_first_then_the_fallback_key(user, new_user):
    device = Device(user)
    claimer = new_user()
    first, second = device.one_time_keys(2), device.one_time_keys(1)
    device.upload_ok(one_time_keys=first)
    device.upload_ok(one_time_keys=second)
    fallback = device.one_time_keys(1, fallback=True)
    device.upload_ok(fallback_keys=fallback)
    assert sync(user)["device_unused_fallback_key_types"] == ["signed_curve25519"]
    wanted = {user.user_id: {user.device_id: "signed_curve25519"}}
    got = [claim(claimer, wanted)["one_time_keys"][user.user_id][user.device_id] for _ in range(3)]
    assert set(got[0]) | set(got[1]) == set(first), "the first upload goes first"
    assert got[2] == second
    assert sync(user)["device_one_time_keys_count"] == {"signed_curve25519": 0}
    # None left: the fallback key, as often as asked, and it is reported used.
    for _ in range(2):
        assert claim(claimer, wanted)["one_time_keys"][user.user_id][user.device_id] == fallback
    assert sync(user)["device_unused_fallback_key_types"] == []
    # The same fallback key again stays used; a new one is unused and replaces it.
    device.upload_ok(fallback_keys=fallback)
    assert sync(user)["device_unused_fallback_key_types"] == []
    replacement = device.one_time_keys(1, fallback=True)
    device.upload_ok(fallback_keys=replacement)
    assert sync(user)["device_unused_fallback_key_types"] == ["signed_curve25519"]
    # A new one-time key is preferred to the fallback key, which stays unused.
    fresh = device.one_time_keys(1)
    device.upload_ok(one_time_keys=fresh)
    assert claim(claimer, wanted)["one_time_keys"][user.user_id][user.device_id] == fresh
    assert claim(claimer, wanted)["one_time_keys"][user.user_id][user.device_id] == replacement


def test_claims_of_nothing_unknown_and_remote(user):
    body = claim(user, {
        user.user_id: {user.device_id: "signed_curve25519", "NOSUCH": "signed_curve25519"},
        "@nobody-here:localhost": {"X": "signed_curve25519"},
        "@alice:remote.example": {"DEV": "signed_curve25519"},
        "not a user": {"X": "y"},
    })
    assert body["one_time_keys"] == {}
    assert list(body["failures"]) == ["remote.example"]
    assert_error(user.post(f"{V3}/keys/claim", json={}), 400, "M_MISSING_PARAM")


def test_concurrent_claims_never_share_a_key(user, new_user):
    device = Device(user)
    keys = device.one_time_keys(24)
    device.upload_ok(one_time_keys=keys)
    claimers = [new_user() for _ in range(4)]
    wanted = {"one_time_keys": {user.user_id: {user.device_id: "signed_curve25519"}}}

    def one_claim(n: int) -> list[str]:
        claimer = claimers[n % len(claimers)]
        with httpx.Client(base_url=str(claimer.client.base_url), timeout=30) as c:
            resp = c.post(f"{V3}/keys/claim", json=wanted, headers=auth_header(claimer.access_token))
        return list(assert_ok(resp)["one_time_keys"].get(user.user_id, {}).get(user.device_id, {}))

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(one_claim, range(32)))
    handed_out = [key_id for r in results for key_id in r]
    assert len(handed_out) == len(set(handed_out)), "a key was handed out twice"
    assert sorted(handed_out) == sorted(keys), "every key once, then nothing"
    assert sum(1 for r in results if not r) == 8


def test_query_of_unknown_remote_and_invalid_users(user):
    body = query(user, {"@nobody-here:localhost": [], "@bob:remote.example": [], "nonsense": []})
    assert body["device_keys"] == {"@nobody-here:localhost": {}}
    assert list(body["failures"]) == ["remote.example"]
    assert_error(user.post(f"{V3}/keys/query", json={}), 400, "M_MISSING_PARAM")
    assert_error(user.post(f"{V3}/keys/query", json={"device_keys": {user.user_id: "all"}}), 400, "M_BAD_JSON")


def test_a_deleted_devices_keys_go_with_it(user, new_user):
    second = user.login()
    device = Device(user, second["access_token"], second["device_id"])
    device.upload_ok(device_keys=device.device_keys(), one_time_keys=device.one_time_keys(2),
                     fallback_keys=device.one_time_keys(1, fallback=True))
    assert list(query(user, {user.user_id: []})["device_keys"][user.user_id]) == [second["device_id"]]
    assert_ok(user.post(f"{V3}/logout", json={}, token=second["access_token"]))
    assert query(user, {user.user_id: []})["device_keys"][user.user_id] == {}
    assert claim(new_user(), {user.user_id: {second["device_id"]: "signed_curve25519"}})["one_time_keys"] == {}


def test_guests_upload_and_query_keys(guest, user):
    device = Device(guest)
    device.upload_ok(device_keys=device.device_keys(), one_time_keys=device.one_time_keys(1))
    assert guest.device_id in query(user, {guest.user_id: []})["device_keys"][guest.user_id]
    assert claim(guest, {guest.user_id: {guest.device_id: "signed_curve25519"}})["one_time_keys"]


def test_key_changes_between_two_sync_tokens(user, new_user):
    bob, carol = new_user(), new_user()
    room_id = create_room(user, preset="public_chat")
    join(bob, room_id)
    start = sync(user)["next_batch"]
    for device in (Device(bob), Device(carol)):  # carol shares no room with the user
        device.upload_ok(device_keys=device.device_keys())
    changes = assert_ok(user.get(f"{V3}/keys/changes", params={"from": start, "to": sync(user)["next_batch"]}))
    assert changes == {"changed": [bob.user_id], "left": []}
    middle = sync(user)["next_batch"]
    leave(bob, room_id)
    changes = assert_ok(user.get(f"{V3}/keys/changes", params={"from": middle, "to": sync(user)["next_batch"]}))
    assert changes == {"changed": [], "left": [bob.user_id]}
    assert_error(user.get(f"{V3}/keys/changes"), 400, "M_MISSING_PARAM")
    assert_error(user.get(f"{V3}/keys/changes", params={"from": "nonsense"}), 400, "M_INVALID_PARAM")
