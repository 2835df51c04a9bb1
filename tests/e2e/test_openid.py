"""OpenID: a user's token for a third party, and the federation API's userinfo that the third
party asks with it."""

from conftest import V3, assert_error, assert_ok, path_quote

USERINFO = "/_matrix/federation/v1/openid/userinfo"


def test_a_token_names_its_user(user, client):
    body = assert_ok(user.post(f"{V3}/user/{path_quote(user.user_id)}/openid/request_token", json={}))
    assert body["token_type"] == "Bearer" and body["matrix_server_name"] == "localhost"
    assert body["expires_in"] == 3600
    assert assert_ok(client.get(USERINFO, params={"access_token": body["access_token"]})) == {"sub": user.user_id}
    # The token is not an access token of the client API.
    resp = client.get(f"{V3}/account/whoami", params={"access_token": body["access_token"]})
    assert_error(resp, 401, "M_UNKNOWN_TOKEN")


def test_bad_requests(user, new_user, client):
    assert_error(client.get(USERINFO, params={"access_token": "an/invalid/token"}), 401, "M_UNKNOWN_TOKEN")
    assert_error(client.get(USERINFO), 401, "M_MISSING_TOKEN")
    # Only for oneself, and not without a token.
    other = new_user()
    assert_error(user.post(f"{V3}/user/{path_quote(other.user_id)}/openid/request_token", json={}), 403, "M_FORBIDDEN")
    assert_error(client.post(f"{V3}/user/{path_quote(user.user_id)}/openid/request_token", json={}), 401,
                 "M_MISSING_TOKEN")
