"""Cross-signing with real ed25519 signatures: `/keys/device_signing/upload` (first upload without
auth, replacement with it, signatures checked), `/keys/signatures/upload` (each signature
verified, per-key failures) and what `/keys/query` shows to whom."""

from __future__ import annotations

from conftest import V3, assert_error, assert_ok, assert_uia_challenge, password_auth
from e2ee import CrossSigning, Device, Ed25519, query
from rooms import create_room, join

SIGNING_UPLOAD = f"{V3}/keys/device_signing/upload"
SIGNATURES_UPLOAD = f"{V3}/keys/signatures/upload"


def sync(user, since=None) -> dict:
    params = {"timeout": 0, **({"since": since} if since else {})}
    return assert_ok(user.get(f"{V3}/sync", params=params))


def set_up(user) -> tuple[Device, CrossSigning]:
    """A device with keys and a cross-signing identity, uploaded without auth."""
    device = Device(user)
    device.upload_ok(device_keys=device.device_keys())
    identity = CrossSigning(user)
    assert assert_ok(user.post(SIGNING_UPLOAD, json=identity.all_keys())) == {}
    return device, identity


def upload_signatures(user, body: dict) -> dict:
    return assert_ok(user.post(SIGNATURES_UPLOAD, json=body))["failures"]


def test_the_first_upload_needs_no_auth_and_query_shows_the_keys_to_whom_they_belong(user, new_user):
    _, identity = set_up(user)
    mine = query(user, {user.user_id: []})
    assert mine["master_keys"] == {user.user_id: identity.master_key()}
    assert mine["self_signing_keys"] == {user.user_id: identity.self_signing_key()}
    assert mine["user_signing_keys"] == {user.user_id: identity.user_signing_key()}
    theirs = query(new_user(), {user.user_id: []})
    assert theirs["master_keys"] == {user.user_id: identity.master_key()}
    assert theirs["self_signing_keys"] == {user.user_id: identity.self_signing_key()}
    assert theirs["user_signing_keys"] == {}, "only its owner sees a user-signing key"


def test_the_same_keys_again_need_no_auth_and_a_replacement_does(user):
    _, identity = set_up(user)
    assert assert_ok(user.post(SIGNING_UPLOAD, json=identity.all_keys())) == {}
    assert assert_ok(user.post(SIGNING_UPLOAD, json={"master_key": identity.master_key()})) == {}
    replacement = CrossSigning(user)
    resp = user.with_password("POST", SIGNING_UPLOAD, replacement.all_keys())
    assert assert_ok(resp) == {}
    assert query(user, {user.user_id: []})["master_keys"][user.user_id] == replacement.master_key()
    # Replacing only the self-signing key needs auth too; a wrong password is refused.
    newer = CrossSigning(user)
    newer.master = replacement.master
    first = user.post(SIGNING_UPLOAD, json={"self_signing_key": newer.self_signing_key()})
    session = assert_uia_challenge(first, ["m.login.password"])["session"]
    wrong = password_auth(user.user_id, "wrong password", session)
    resp = user.post(SIGNING_UPLOAD, json={"self_signing_key": newer.self_signing_key(), "auth": wrong})
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_FORBIDDEN"
    assert query(user, {user.user_id: []})["self_signing_keys"][user.user_id] == replacement.self_signing_key()


def test_keys_must_be_well_formed_and_signed_by_the_master_key(user):
    identity = CrossSigning(user)
    stranger = Ed25519()
    assert_error(user.post(SIGNING_UPLOAD, json={"self_signing_key": identity.self_signing_key()}),
                 400, "M_MISSING_PARAM")
    bad_signature = {"master_key": identity.master_key(), "self_signing_key": identity.self_signing_key(stranger)}
    assert_error(user.post(SIGNING_UPLOAD, json=bad_signature), 400, "M_INVALID_SIGNATURE")
    unsigned = identity.key("user_signing", identity.user_signing, None)
    assert_error(user.post(SIGNING_UPLOAD, json={"master_key": identity.master_key(), "user_signing_key": unsigned}),
                 400, "M_INVALID_SIGNATURE")
    for broken in (
        {**identity.master_key(), "user_id": "@someone-else:localhost"},
        {**identity.master_key(), "usage": ["self_signing"]},
        {**identity.master_key(), "keys": {**identity.master_key()["keys"], "ed25519:extra": stranger.public}},
        {**identity.master_key(), "keys": {"ed25519:notthekey": identity.master.public}},
    ):
        assert_error(user.post(SIGNING_UPLOAD, json={"master_key": broken}), 400, "M_INVALID_PARAM")
    # Nothing was stored: a good first upload still needs no auth.
    assert query(user, {user.user_id: []})["master_keys"] == {}
    assert assert_ok(user.post(SIGNING_UPLOAD, json=identity.all_keys())) == {}


def test_a_key_may_not_take_a_device_id(user):
    identity = CrossSigning(user)
    user.login(device_id=identity.master.public)
    assert_error(user.post(SIGNING_UPLOAD, json=identity.all_keys()), 403, "M_FORBIDDEN")


def test_own_devices_signed_by_the_self_signing_key_and_the_master_key_by_a_device(user, new_user):
    device, identity = set_up(user)
    signed_device = identity.self_signing.sign(device.device_keys(), user.user_id)
    signed_master = device.ed25519.sign(identity.master_key(), user.user_id)
    failures = upload_signatures(user, {user.user_id: {
        user.device_id: signed_device, identity.master.public: signed_master}})
    assert failures == {}
    served = query(new_user(), {user.user_id: []})
    device_signatures = served["device_keys"][user.user_id][user.device_id]["signatures"][user.user_id]
    assert device_signatures[identity.self_signing.key_id] == signed_device["signatures"][user.user_id][
        identity.self_signing.key_id]
    master_signatures = served["master_keys"][user.user_id]["signatures"][user.user_id]
    assert master_signatures[device.ed25519.key_id] == signed_master["signatures"][user.user_id][device.ed25519.key_id]


def test_each_signature_is_verified_and_failures_are_per_key(user):
    device, identity = set_up(user)
    other = user.login()
    other_device = Device(user, other["access_token"], other["device_id"])
    other_device.upload_ok(device_keys=other_device.device_keys())
    forged = Ed25519(identity.self_signing.public)  # the right key ID, the wrong key
    body = {user.user_id: {
        user.device_id: forged.sign(device.device_keys(), user.user_id),
        other["device_id"]: identity.self_signing.sign(other_device.device_keys(), user.user_id),
        "NOSUCHDEVICE": identity.self_signing.sign({"device_id": "NOSUCHDEVICE"}, user.user_id),
    }}
    failures = upload_signatures(user, body)
    assert failures[user.user_id][user.device_id]["errcode"] == "M_INVALID_SIGNATURE"
    assert failures[user.user_id]["NOSUCHDEVICE"]["errcode"] == "M_NOT_FOUND"
    assert other["device_id"] not in failures[user.user_id], "the good signature is taken"
    # A signed object that differs from the stored key is refused, however well signed.
    altered = identity.self_signing.sign(device.device_keys(algorithms=["other"]), user.user_id)
    failures = upload_signatures(user, {user.user_id: {user.device_id: altered}})
    assert failures[user.user_id][user.device_id]["errcode"] == "M_INVALID_PARAM"
    unsigned = device.device_keys()
    del unsigned["signatures"]
    failures = upload_signatures(user, {user.user_id: {user.device_id: unsigned}})
    assert failures[user.user_id][user.device_id]["errcode"] == "M_INVALID_SIGNATURE"
    served = query(user, {user.user_id: []})["device_keys"][user.user_id]
    assert identity.self_signing.key_id not in served[user.device_id]["signatures"][user.user_id]
    assert identity.self_signing.key_id in served[other["device_id"]]["signatures"][user.user_id]


def test_other_users_master_keys_signed_by_the_user_signing_key_are_seen_by_the_signer_only(user, new_user):
    bob, carol = new_user(), new_user()
    _, alice_identity = set_up(user)
    _, bob_identity = set_up(bob)
    signed = alice_identity.user_signing.sign(bob_identity.master_key(), user.user_id)
    assert upload_signatures(user, {bob.user_id: {bob_identity.master.public: signed}}) == {}
    signature = signed["signatures"][user.user_id][alice_identity.user_signing.key_id]
    alice_view = query(user, {bob.user_id: []})["master_keys"][bob.user_id]
    assert alice_view["signatures"][user.user_id][alice_identity.user_signing.key_id] == signature
    for viewer in (bob, carol):
        view = query(viewer, {bob.user_id: []})["master_keys"][bob.user_id]
        assert user.user_id not in view.get("signatures", {}), "user-signing signatures are the signer's"
    # The wrong key, a key that is not the master key, and a forged signature all fail.
    wrong_key = alice_identity.user_signing.sign(bob_identity.self_signing_key(), user.user_id)
    forged = Ed25519(alice_identity.user_signing.public).sign(bob_identity.master_key(), user.user_id)
    failures = upload_signatures(user, {bob.user_id: {bob_identity.self_signing.public: wrong_key}})
    assert failures[bob.user_id][bob_identity.self_signing.public]["errcode"] == "M_NOT_FOUND"
    failures = upload_signatures(user, {bob.user_id: {bob_identity.master.public: forged}})
    assert failures[bob.user_id][bob_identity.master.public]["errcode"] == "M_INVALID_SIGNATURE"
    # Without a user-signing key there is nothing to check with.
    by_carol = Ed25519().sign(bob_identity.master_key(), carol.user_id)
    failures = upload_signatures(carol, {bob.user_id: {bob_identity.master.public: by_carol}})
    assert failures[bob.user_id][bob_identity.master.public]["errcode"] == "M_NOT_FOUND"


def test_cross_signing_changes_are_device_list_changes(user, new_user):
    bob = new_user()
    room_id = create_room(user, preset="public_chat")
    join(bob, room_id)
    alice_token, bob_token = sync(user)["next_batch"], sync(bob)["next_batch"]
    _, alice_identity = set_up(user)
    changed = sync(bob, bob_token)
    assert user.user_id in changed["device_lists"]["changed"]
    bob_token = changed["next_batch"]
    alice_token = sync(user, alice_token)["next_batch"]
    # A signature of bob's master key concerns alice alone.
    _, bob_identity = set_up(bob)
    alice_token = sync(user, alice_token)["next_batch"]
    bob_token = sync(bob, bob_token)["next_batch"]
    signed = alice_identity.user_signing.sign(bob_identity.master_key(), user.user_id)
    assert upload_signatures(user, {bob.user_id: {bob_identity.master.public: signed}}) == {}
    assert sync(user, alice_token)["device_lists"]["changed"] == [bob.user_id]
    assert sync(bob, bob_token)["device_lists"]["changed"] == []
