"""Device lists in `/sync`: who appears in `changed` and `left` after key uploads, new and deleted
devices, joins and leaves; the syncs such changes wake; and the device's own key counts."""

from __future__ import annotations

import threading
import time

from conftest import V3, assert_ok
from e2ee import Device
from rooms import create_room, invite, join, leave


def sync(user, since=None, timeout=0, token=None) -> dict:
    params = {"timeout": timeout, **({"since": since} if since else {})}
    return assert_ok(user.get(f"{V3}/sync", params=params, token=token))


def lists(user, since) -> tuple[dict, str]:
    """The device lists of an incremental sync, and its next token."""
    body = sync(user, since)
    return body["device_lists"], body["next_batch"]


def upload_device_keys(user) -> None:
    device = Device(user)
    device.upload_ok(device_keys=device.device_keys())


def shared_room(owner, *members) -> str:
    room_id = create_room(owner, preset="public_chat")
    for member in members:
        join(member, room_id)
    return room_id


def test_key_uploads_and_devices_are_changes_for_those_who_share_a_room(user, new_user):
    bob, stranger = new_user(), new_user()
    shared_room(user, bob)
    token = sync(user)["next_batch"]
    assert lists(user, token)[0] == {"changed": [], "left": []}

    upload_device_keys(stranger)
    bob_device = Device(bob)
    bob_device.upload_ok(device_keys=bob_device.device_keys())
    seen, token = lists(user, token)
    assert seen == {"changed": [bob.user_id], "left": []}, "a key upload; the stranger is not shown"

    # One-time keys are no device list change.
    bob_device.upload_ok(one_time_keys=bob_device.one_time_keys(2))
    seen, token = lists(user, token)
    assert seen["changed"] == []

    second = bob.login()
    seen, token = lists(user, token)
    assert seen["changed"] == [bob.user_id], "a new device"

    assert_ok(bob.post(f"{V3}/logout", json={}, token=second["access_token"]))
    seen, token = lists(user, token)
    assert seen["changed"] == [bob.user_id], "a deleted device"

    assert_ok(bob.put(f"{V3}/devices/{bob.device_id}", json={"display_name": "renamed"}))
    seen, token = lists(user, token)
    assert seen["changed"] == [bob.user_id], "a renamed device"


def test_own_changes_are_reported_without_any_room(user):
    token = sync(user)["next_batch"]
    device = Device(user)
    device.upload_ok(device_keys=device.device_keys())
    assert lists(user, token)[0] == {"changed": [user.user_id], "left": []}


def test_a_newly_shared_room_puts_its_members_in_changed(user, new_user):
    bob, carol = new_user(), new_user()
    room_id = shared_room(bob, carol)
    token, bob_token = sync(user)["next_batch"], sync(bob)["next_batch"]
    join(user, room_id)
    seen, token = lists(user, token)
    assert sorted(seen["changed"]) == sorted([user.user_id, bob.user_id, carol.user_id])
    assert lists(bob, bob_token)[0] == {"changed": [user.user_id], "left": []}, "bob sees the user join"
    # A member who joins later is a change too; a display name change is not.
    dave = new_user()
    join(dave, room_id)
    seen, token = lists(user, token)
    assert seen["changed"] == [dave.user_id]
    assert_ok(dave.put(f"{V3}/rooms/{room_id}/state/m.room.member/{dave.user_id}",
                       json={"membership": "join", "displayname": "Dave"}))
    seen, token = lists(user, token)
    assert seen["changed"] == []


def test_members_see_a_join_as_a_change(user, new_user):
    bob = new_user()
    room_id = create_room(user, preset="public_chat")
    token = sync(user)["next_batch"]
    join(bob, room_id)
    assert lists(user, token)[0] == {"changed": [bob.user_id], "left": []}


def test_leaving_reports_users_no_longer_shared(user, new_user):
    bob, carol = new_user(), new_user()
    first = shared_room(user, bob, carol)
    shared_room(user, carol)  # carol shares a second room with the user
    token = sync(user)["next_batch"]
    leave(bob, first)
    leave(carol, first)
    seen, token = lists(user, token)
    assert seen == {"changed": [], "left": [bob.user_id]}, "carol still shares a room"
    # The user leaving a room: its members they share nothing else with are left.
    dave = new_user()
    other = shared_room(dave, user)
    token = sync(user)["next_batch"]
    leave(user, other)
    seen, token = lists(user, token)
    assert seen == {"changed": [], "left": [dave.user_id]}
    # After leaving, their key changes are not shown.
    upload_device_keys(dave)
    assert lists(user, token)[0] == {"changed": [], "left": []}


def test_an_invite_is_not_a_shared_room(user, new_user):
    bob = new_user()
    room_id = create_room(user)
    token = sync(user)["next_batch"]
    invite(user, room_id, bob)
    upload_device_keys(bob)
    assert lists(user, token)[0]["changed"] == []


def test_initial_sync_has_no_device_list_changes_but_key_counts(user):
    device = Device(user)
    device.upload_ok(device_keys=device.device_keys(), one_time_keys=device.one_time_keys(3),
                     fallback_keys=device.one_time_keys(1, fallback=True))
    body = sync(user)
    assert body["device_lists"] == {"changed": [], "left": []}
    assert body["device_one_time_keys_count"] == {"signed_curve25519": 3}
    assert body["device_unused_fallback_key_types"] == ["signed_curve25519"]
    # The counts are the syncing device's: another device has none.
    other = user.login()
    body = sync(user, token=other["access_token"])
    assert body["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert body["device_unused_fallback_key_types"] == []


def waiting_sync(user, since: str, out: dict) -> threading.Thread:
    def run():
        out["response"] = sync(user, since, timeout=20_000)
        out["returned"] = time.perf_counter()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_key_upload_wakes_the_syncs_of_those_who_share_a_room(user, new_user):
    bob = new_user()
    shared_room(user, bob)
    token = sync(user)["next_batch"]
    sync(user, token)  # warm up the path
    out = {}
    thread = waiting_sync(user, token, out)
    time.sleep(0.5)
    device = Device(bob)
    device.upload_ok(device_keys=device.device_keys())
    uploaded = time.perf_counter()
    thread.join(timeout=25)
    assert out["response"]["device_lists"]["changed"] == [bob.user_id]
    wake_ms = 1000 * (out["returned"] - uploaded)
    assert wake_ms < 1000, f"woken {wake_ms:.0f} ms after the upload returned"


def test_a_deleted_device_wakes_the_syncs_of_those_who_share_a_room(user, new_user):
    bob = new_user()
    shared_room(user, bob)
    second = bob.login()
    token = sync(user)["next_batch"]
    out = {}
    thread = waiting_sync(user, token, out)
    time.sleep(0.5)
    assert_ok(bob.with_password("DELETE", f"{V3}/devices/{second['device_id']}"))
    deleted = time.perf_counter()
    thread.join(timeout=25)
    assert out["response"]["device_lists"]["changed"] == [bob.user_id]
    assert 1000 * (out["returned"] - deleted) < 1000
