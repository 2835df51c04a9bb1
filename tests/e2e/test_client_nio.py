"""The happy path through a real client library, matrix-nio's AsyncClient."""

import asyncio

import httpx
from nio import (
    AsyncClient, AsyncClientConfig, DeleteDevicesAuthResponse, DeleteDevicesResponse, DevicesResponse, LoginResponse,
    LogoutResponse, ProfileGetDisplayNameResponse, ProfileGetResponse, ProfileSetDisplayNameResponse,
    RegisterResponse, WhoamiError, WhoamiResponse,
)

from conftest import PASSWORD, V3, assert_error, auth_header, random_ip, unique_name, user_id_of


def nio_client(base_url, user=""):
    """An AsyncClient that presents an address of its own, like the suite's httpx clients."""
    config = AsyncClientConfig(custom_headers={"CF-Connecting-IP": random_ip()}, max_limit_exceeded=0)
    return AsyncClient(base_url, user, config=config)


def expect(resp, kind):
    assert isinstance(resp, kind), f"expected {kind.__name__}, got {resp!r}"
    return resp


async def happy_path(base_url):
    name = unique_name("nio")
    user_id = user_id_of(name)
    phone = nio_client(base_url)
    laptop = nio_client(base_url, name)
    try:
        registered = expect(await phone.register(name, PASSWORD, device_name="nio phone"), RegisterResponse)
        assert registered.user_id == user_id
        assert phone.access_token and phone.device_id

        logged_in = expect(await laptop.login(PASSWORD, device_name="nio laptop"), LoginResponse)
        assert logged_in.user_id == user_id and logged_in.device_id != phone.device_id

        whoami = expect(await laptop.whoami(), WhoamiResponse)
        assert whoami.user_id == user_id and whoami.device_id == laptop.device_id and whoami.is_guest is False

        expect(await phone.set_displayname("Nio \U0001F680"), ProfileSetDisplayNameResponse)
        got = expect(await laptop.get_displayname(), ProfileGetDisplayNameResponse)
        assert got.displayname == "Nio \U0001F680"
        profile = expect(await laptop.get_profile(user_id), ProfileGetResponse)
        assert profile.displayname == "Nio \U0001F680" and profile.avatar_url is None

        devices = expect(await phone.devices(), DevicesResponse)
        by_id = {d.id: d for d in devices.devices}
        assert set(by_id) == {phone.device_id, laptop.device_id}
        assert by_id[phone.device_id].display_name == "nio phone"
        assert by_id[laptop.device_id].display_name == "nio laptop"

        # Delete the laptop from the phone: the first call only opens the auth session.
        challenge = expect(await phone.delete_devices([laptop.device_id]), DeleteDevicesAuthResponse)
        assert {"stages": ["m.login.password"]} in challenge.flows
        auth = {"type": "m.login.password", "user": name, "password": PASSWORD, "session": challenge.session}
        expect(await phone.delete_devices([laptop.device_id], auth), DeleteDevicesResponse)
        revoked = expect(await laptop.whoami(), WhoamiError)
        assert revoked.status_code == "M_UNKNOWN_TOKEN"
        devices = expect(await phone.devices(), DevicesResponse)
        assert [d.id for d in devices.devices] == [phone.device_id]

        old_token = phone.access_token
        expect(await phone.logout(), LogoutResponse)
        return old_token
    finally:
        await phone.close()
        await laptop.close()


def test_nio_happy_path(base_url):
    old_token = asyncio.run(happy_path(base_url))
    headers = {**auth_header(old_token), "CF-Connecting-IP": random_ip()}
    resp = httpx.get(f"{base_url}{V3}/account/whoami", headers=headers)
    body = assert_error(resp, 401, "M_UNKNOWN_TOKEN")
    assert body.get("soft_logout", False) is False
