"""Server discovery and capabilities: versions, .well-known documents and GET /capabilities."""

import re
from urllib.parse import urlparse

from conftest import V3, assert_error, assert_ok, auth_header


def test_versions_lists_spec_versions(client):
    body = assert_ok(client.get("/_matrix/client/versions"))
    versions = body["versions"]
    assert isinstance(versions, list) and versions
    assert all(isinstance(v, str) for v in versions)
    assert "v1.19" in versions
    assert isinstance(body.get("unstable_features", {}), dict)


def test_versions_needs_no_token_and_ignores_a_bad_one(client):
    resp = client.get("/_matrix/client/versions", headers=auth_header("not-a-token"))
    assert_ok(resp)


def test_client_well_known_points_at_this_server(client, base_url):
    body = assert_ok(client.get("/.well-known/matrix/client"))
    assert body["m.homeserver"]["base_url"].rstrip("/") == base_url.rstrip("/")


def test_server_well_known_delegates_to_host_and_port(client, base_url):
    body = assert_ok(client.get("/.well-known/matrix/server"))
    server = body["m.server"]
    assert isinstance(server, str)
    assert re.fullmatch(r"[A-Za-z0-9.\-]+:\d{1,5}", server), server
    assert server.split(":")[0] == urlparse(base_url).hostname


def test_support_is_not_found_without_admin_contact(client):
    assert_error(client.get("/.well-known/matrix/support"), 404, "M_NOT_FOUND")


def test_support_lists_an_admin_email(new_client, support_email_url):
    body = assert_ok(new_client(support_email_url).get("/.well-known/matrix/support"))
    assert body["contacts"] == [{"role": "m.role.admin", "email_address": "admin@example.org"}]


def test_support_lists_an_admin_matrix_id(new_client, support_mxid_url):
    body = assert_ok(new_client(support_mxid_url).get("/.well-known/matrix/support"))
    assert body["contacts"] == [{"role": "m.role.admin", "matrix_id": "@admin:example.org"}]


def test_capabilities_require_a_token(client):
    assert_error(client.get(f"{V3}/capabilities"), 401, "M_MISSING_TOKEN")


def test_capabilities(user):
    caps = assert_ok(user.get(f"{V3}/capabilities"))["capabilities"]
    assert caps["m.change_password"] == {"enabled": True}
    assert caps["m.set_displayname"]["enabled"] is True
    assert caps["m.set_avatar_url"]["enabled"] is True
    assert caps["m.profile_fields"]["enabled"] is True
    versions = caps["m.room_versions"]
    assert versions["default"] == "12"
    assert {str(v) for v in range(1, 13)} <= set(versions["available"])
    assert versions["available"]["12"] == "stable"
    assert all(v in ("stable", "unstable") for v in versions["available"].values())


def test_capabilities_refuse_guests(guest):
    assert_error(guest.get(f"{V3}/capabilities"), 403, "M_GUEST_ACCESS_FORBIDDEN")


def test_login_types(client):
    flows = assert_ok(client.get(f"{V3}/login"))["flows"]
    assert {"type": "m.login.password"} in flows
