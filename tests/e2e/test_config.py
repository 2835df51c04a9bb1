"""A bad configuration value is reported clearly, naming the variable, and nothing half-works."""

import time

import httpx
import pytest

from conftest import V3


def first_answer(server, path: str) -> httpx.Response:
    """The first HTTP answer of a server that may never answer 200."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.proc.poll() is None:
        try:
            return httpx.get(f"{server.url}{path}", timeout=2)
        except httpx.HTTPError:
            time.sleep(0.3)
    pytest.fail(f"the server never answered; log:\n{server.log_path.read_text()[-4000:]}")


@pytest.mark.parametrize("name, value", [
    ("ENABLE_REGISTRATION", "yes"),
    ("SERVER_NAME", "not a server name"),
    ("RC_LOGIN_BURST", "-3"),
])
def test_bad_setting_names_the_variable(server_factory, name, value):
    server = server_factory.launch({name: value})
    for path in ("/_matrix/client/versions", f"{V3}/login"):
        resp = first_answer(server, path)
        assert resp.status_code == 500, resp.text
        body = resp.json()
        assert body["errcode"] == "M_UNKNOWN"
        assert name in body["error"] and "misconfigured" in body["error"], body
