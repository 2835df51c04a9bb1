"""End-to-end encryption through matrix-js-sdk's Rust crypto (the crypto of Element Web), run by
`tests/js/crypto.mjs`: an encrypted message decrypted by its recipient, cross-signing set up and
an identity verified with SAS, and a room key restored from the server-side backup on a new
device."""

from conftest import V3, User, assert_ok
from js import run_js
from rooms import create_room, join

ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


def test_encrypt_verify_and_restore_from_backup(base_url, new_user):
    alice, bob = new_user(), new_user()
    room_id = create_room(alice, preset="private_chat", invite=[bob.user_id], initial_state=[ENCRYPTION])
    join(bob, room_id)
    second = alice.login()
    alice2 = User(alice.client, alice.user_id, second["access_token"], second["device_id"])
    seen = run_js("crypto.mjs", base_url, {"alice": alice, "bob": bob, "alice2": alice2}, "conversation",
                  timeout_s=120, room_id=room_id)

    assert seen["bob"] == {"event_id": seen["event_id"], "wire_type": "m.room.encrypted",
                           "body": "the eagle lands at dawn"}
    stored = assert_ok(bob.get(f"{V3}/rooms/{room_id}/event/{seen['event_id']}"))
    assert stored["type"] == "m.room.encrypted" and "eagle" not in str(stored), "the server holds ciphertext only"

    assert seen["bob_identity_verified"] is True
    # Alice's user-signing key signed bob's master key, which only alice sees.
    alice_view = assert_ok(alice.post(f"{V3}/keys/query", json={"device_keys": {bob.user_id: []}}))
    assert alice.user_id in alice_view["master_keys"][bob.user_id]["signatures"]
    bob_view = assert_ok(bob.post(f"{V3}/keys/query", json={"device_keys": {bob.user_id: []}}))
    assert alice.user_id not in bob_view["master_keys"][bob.user_id]["signatures"]

    assert seen["backup"]["count"] >= 1 and seen["backup"]["imported"] >= 1
    assert seen["new_device"] == {"undecryptable_before": True, "event_id": seen["event_id"],
                                  "body": "the eagle lands at dawn"}
