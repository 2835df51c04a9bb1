"""Admin API helpers: the shared secret the suite's servers use, shared-secret registration (as
Synapse's `register_new_matrix_user` computes it) and admin requests."""

from __future__ import annotations

import hashlib
import hmac

import httpx

from conftest import PASSWORD, User, assert_ok, make_client, path_quote

SHARED_SECRET = "stratus-e2e-shared-secret"
ADMIN = "/_synapse/admin"
CONTACT = "mailto:admin@example.org"


def shared_secret_mac(nonce: str, username: str, password: str, admin: bool, user_type: str | None = None,
                      secret: str = SHARED_SECRET) -> str:
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    parts = [nonce, username, password, "admin" if admin else "notadmin"] + ([user_type] if user_type else [])
    mac.update(b"\x00".join(p.encode() for p in parts))
    return mac.hexdigest()


def shared_secret_request(client: httpx.Client, username: str, password: str = PASSWORD, admin: bool = False,
                          user_type: str | None = None, **fields) -> httpx.Response:
    nonce = assert_ok(client.get(f"{ADMIN}/v1/register"))["nonce"]
    body = {"nonce": nonce, "username": username, "password": password, "admin": admin,
            "mac": shared_secret_mac(nonce, username, password, admin, user_type), **fields}
    if user_type:
        body["user_type"] = user_type
    return client.post(f"{ADMIN}/v1/register", json=body)


def create_user(base_url: str, username: str, admin: bool = False, user_type: str | None = None) -> User:
    """A user made through shared-secret registration, with its session."""
    client = make_client(base_url)
    body = assert_ok(shared_secret_request(client, username, admin=admin, user_type=user_type))
    return User(client, body["user_id"], body["access_token"], body["device_id"], extra=body)


def user_path(user_id: str, version: str = "v2") -> str:
    return f"{ADMIN}/{version}/users/{path_quote(user_id)}"


def assert_created(resp: httpx.Response) -> dict:
    """Checks the 201 of a user the admin API made; returns the user."""
    assert resp.status_code == 201, f"{resp.request.method} {resp.request.url} -> {resp.status_code} {resp.text}"
    return resp.json()
