"""End-to-end encryption helpers for the suite: ed25519 keys (PyNaCl), signed JSON, device keys,
one-time keys and cross-signing keys as a client makes them."""

from __future__ import annotations

import copy
import json
import secrets
from base64 import b64encode

from nacl.signing import SigningKey

from conftest import V3, User, assert_ok

ALGORITHMS = ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"]


def unpadded(data: bytes) -> str:
    return b64encode(data).decode().rstrip("=")


def canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Ed25519:
    """An ed25519 key pair, named `ed25519:<name>` (a device ID, or the public key itself)."""

    def __init__(self, name: str | None = None):
        self.signing = SigningKey.generate()
        self.public = unpadded(bytes(self.signing.verify_key))
        self.key_id = f"ed25519:{name or self.public}"

    def sign(self, obj: dict, user_id: str) -> dict:
        """`obj` with this key's signature added under `user_id`, as the spec signs JSON."""
        signed = copy.deepcopy(obj)
        unsigned = {k: v for k, v in signed.items() if k not in ("signatures", "unsigned")}
        signature = unpadded(self.signing.sign(canonical(unsigned)).signature)
        signed.setdefault("signatures", {}).setdefault(user_id, {})[self.key_id] = signature
        return signed


def random_key() -> str:
    """A curve25519-looking public key: 32 random bytes."""
    return unpadded(secrets.token_bytes(32))


class Device:
    """A user's device as an encryption client sees it: its ed25519 key and what it uploads."""

    def __init__(self, user: User, token: str | None = None, device_id: str | None = None):
        self.user = user
        self.token = token or user.access_token
        self.device_id = device_id or user.device_id
        self.ed25519 = Ed25519(self.device_id)
        self.curve25519 = random_key()

    def device_keys(self, **overrides) -> dict:
        keys = {
            "user_id": self.user.user_id,
            "device_id": self.device_id,
            "algorithms": ALGORITHMS,
            "keys": {f"curve25519:{self.device_id}": self.curve25519, self.ed25519.key_id: self.ed25519.public},
            **overrides,
        }
        return self.ed25519.sign(keys, self.user.user_id)

    def one_time_keys(self, count: int, fallback: bool = False) -> dict:
        """`count` signed curve25519 keys, by fresh key IDs."""
        keys = {}
        for _ in range(count):
            key = {"key": random_key()}
            if fallback:
                key["fallback"] = True
            keys[f"signed_curve25519:{secrets.token_hex(6)}"] = self.ed25519.sign(key, self.user.user_id)
        return keys

    def upload(self, **body):
        return self.user.post(f"{V3}/keys/upload", json=body, token=self.token)

    def upload_ok(self, **body) -> dict:
        return assert_ok(self.upload(**body))


def query(user: User, users: dict, token: str | None = None) -> dict:
    return assert_ok(user.post(f"{V3}/keys/query", json={"device_keys": users}, token=token))


def claim(user: User, wanted: dict) -> dict:
    return assert_ok(user.post(f"{V3}/keys/claim", json={"one_time_keys": wanted}))


class CrossSigning:
    """A user's three cross-signing keys and the objects `/keys/device_signing/upload` takes."""

    def __init__(self, user: User):
        self.user = user
        self.master = Ed25519()
        self.self_signing = Ed25519()
        self.user_signing = Ed25519()

    def key(self, usage: str, pair: Ed25519, signer: Ed25519 | None) -> dict:
        key = {"user_id": self.user.user_id, "usage": [usage], "keys": {pair.key_id: pair.public}}
        return signer.sign(key, self.user.user_id) if signer else key

    def master_key(self) -> dict:
        return self.key("master", self.master, None)

    def self_signing_key(self, signer: Ed25519 | None = None) -> dict:
        return self.key("self_signing", self.self_signing, signer or self.master)

    def user_signing_key(self, signer: Ed25519 | None = None) -> dict:
        return self.key("user_signing", self.user_signing, signer or self.master)

    def all_keys(self) -> dict:
        return {"master_key": self.master_key(), "self_signing_key": self.self_signing_key(),
                "user_signing_key": self.user_signing_key()}
