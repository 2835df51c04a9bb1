"""Rate limits on registration and login, per client address and per account (default settings)."""

import time

from conftest import V3, assert_error, assert_ok, login, login_request, register, unique_name

REGISTRATION_BURST = 3
LOGIN_BURST = 5


def assert_limited(resp):
    body = assert_error(resp, 429, "M_LIMIT_EXCEEDED")
    assert isinstance(body["retry_after_ms"], int) and body["retry_after_ms"] > 0, body
    retry_after = resp.headers.get("retry-after")
    assert retry_after is not None and retry_after.isdigit(), resp.headers
    # The header (whole seconds) must not promise a shorter wait than the body.
    assert int(retry_after) * 1000 >= body["retry_after_ms"], (retry_after, body)
    return body


def complete_registration(client, username):
    """The dummy flow up to the final request, whose response is returned unchecked; or the first
    request's, if it opened no session (a registration counts when it starts)."""
    body = {"username": username, "password": "pw"}
    first = client.post(f"{V3}/register", json=body)
    if first.status_code != 401:
        return first
    session = first.json()["session"]
    return client.post(f"{V3}/register", json={**body, "auth": {"type": "m.login.dummy", "session": session}})


def test_registrations_per_address(new_client):
    client = new_client()
    for _ in range(REGISTRATION_BURST):
        register(client, unique_name())
    refused_name = unique_name()
    assert_limited(complete_registration(client, refused_name))
    # The refused registration created nothing, and another address may still register.
    other = new_client()
    assert assert_ok(other.get(f"{V3}/register/available", params={"username": refused_name})) == {"available": True}
    register(other, refused_name)


def test_registration_is_allowed_again_after_the_advertised_wait(new_client):
    client = new_client()
    for _ in range(REGISTRATION_BURST):
        register(client, unique_name())
    wait_ms = assert_limited(complete_registration(client, unique_name()))["retry_after_ms"]
    assert wait_ms <= 10_000, "the default refill (0.17/s) frees a place within about 6 s"
    time.sleep(wait_ms / 1000 + 0.2)
    assert_ok(complete_registration(client, unique_name()))


def test_availability_checks_per_address(new_client):
    client = new_client()
    for _ in range(REGISTRATION_BURST):
        assert_ok(client.get(f"{V3}/register/available", params={"username": unique_name()}))
    assert_limited(client.get(f"{V3}/register/available", params={"username": unique_name()}))
    assert_ok(new_client().get(f"{V3}/register/available", params={"username": unique_name()}))


def test_login_attempts_per_address(new_client, user):
    client = new_client()
    for _ in range(LOGIN_BURST):
        assert_error(login_request(client, unique_name("nobody")), 403, "M_FORBIDDEN")
    # Even a correct login from the same address is refused now.
    assert_limited(login_request(client, user.user_id, user.password))
    # Another address is unaffected.
    assert login(new_client(), user.user_id, user.password)["user_id"] == user.user_id


def test_login_attempts_per_account(new_client, new_user):
    target, bystander = new_user(), new_user()
    for _ in range(LOGIN_BURST):
        assert_error(login_request(new_client(), target.user_id, "wrong password"), 403, "M_FORBIDDEN")
    # Every address is now refused for this account, even with the right password.
    assert_limited(login_request(new_client(), target.user_id, target.password))
    # The account's existing sessions still work, and other accounts can log in.
    assert_ok(target.whoami())
    assert login(new_client(), bystander.user_id, bystander.password)["user_id"] == bystander.user_id


def test_per_account_limit_ignores_the_spelling_of_the_name(new_client, user):
    spellings = [user.localpart, user.user_id, user.localpart.upper(), f"@{user.localpart.upper()}:localhost",
                 user.localpart]
    for name in spellings:
        assert_error(login_request(new_client(), name, "wrong password"), 403, "M_FORBIDDEN")
    assert_limited(login_request(new_client(), user.user_id, user.password))
