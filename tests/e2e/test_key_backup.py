"""Server-side key backups: versions (create, get, update, delete, the latest), keys per backup,
room and session, the rules for which copy of a session is kept, `etag` and `count`, and writes
to a version that is no longer current."""

from __future__ import annotations

from conftest import V3, assert_error, assert_ok, path_quote

ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
VERSIONS = f"{V3}/room_keys/version"
KEYS = f"{V3}/room_keys/keys"
ROOM = "!room:localhost"


def session_path(room: str = ROOM, session: str | None = None) -> str:
    path = f"{KEYS}/{path_quote(room)}"
    return path if session is None else f"{path}/{path_quote(session)}"


def create(user, auth_data: dict | None = None) -> str:
    body = {"algorithm": ALGORITHM, "auth_data": auth_data or {"public_key": "abc"}}
    version = assert_ok(user.post(VERSIONS, json=body))["version"]
    assert isinstance(version, str)
    return version


def key(index: int = 0, forwarded: int = 0, verified: bool = False, tag: str = "x") -> dict:
    return {"first_message_index": index, "forwarded_count": forwarded, "is_verified": verified,
            "session_data": {"ciphertext": tag, "ephemeral": "e", "mac": "m"}}


def put_session(user, version: str, data: dict, session: str = "s1", room: str = ROOM) -> dict:
    return assert_ok(user.put(session_path(room, session), params={"version": version}, json=data))


def stored(user, version: str, session: str = "s1", room: str = ROOM) -> dict:
    return assert_ok(user.get(session_path(room, session), params={"version": version}))


def test_versions_are_created_read_and_updated(user):
    assert_error(user.get(VERSIONS), 404, "M_NOT_FOUND")
    version = create(user, {"public_key": "first"})
    info = assert_ok(user.get(VERSIONS))
    assert info == {"algorithm": ALGORITHM, "auth_data": {"public_key": "first"}, "count": 0,
                    "etag": info["etag"], "version": version}
    assert isinstance(info["etag"], str)
    assert assert_ok(user.get(f"{VERSIONS}/{version}")) == info
    update = {"algorithm": ALGORITHM, "auth_data": {"public_key": "second"}, "version": version}
    assert assert_ok(user.put(f"{VERSIONS}/{version}", json=update)) == {}
    assert assert_ok(user.get(VERSIONS))["auth_data"] == {"public_key": "second"}
    assert_error(user.put(f"{VERSIONS}/{version}", json={**update, "algorithm": "other"}), 400, "M_INVALID_PARAM")
    assert_error(user.put(f"{VERSIONS}/{version}", json={**update, "version": "999"}), 400, "M_INVALID_PARAM")
    assert_error(user.put(f"{VERSIONS}/999", json={**update, "version": "999"}), 404, "M_NOT_FOUND")
    assert_error(user.get(f"{VERSIONS}/999"), 404, "M_NOT_FOUND")
    assert_error(user.get(f"{VERSIONS}/not-a-version"), 404, "M_NOT_FOUND")
    assert_error(user.post(VERSIONS, json={"algorithm": ALGORITHM}), 400, "M_MISSING_PARAM")
    # The newest version is the latest.
    newer = create(user)
    assert assert_ok(user.get(VERSIONS))["version"] == newer != version


def test_backups_are_per_user(user, new_user):
    create(user)
    assert_error(new_user().get(VERSIONS), 404, "M_NOT_FOUND")


def test_guests_have_no_backups(guest):
    assert_error(guest.get(VERSIONS), 403, "M_GUEST_ACCESS_FORBIDDEN")


def test_a_session_is_replaced_only_by_a_better_copy(user):
    version = create(user)
    first = put_session(user, version, key(index=5, forwarded=2, tag="first"))
    assert first["count"] == 1
    steps = [
        # (uploaded, kept: which tag is stored afterwards)
        (key(index=6, forwarded=0, tag="later index"), "first"),
        (key(index=5, forwarded=3, tag="more forwarded"), "first"),
        (key(index=5, forwarded=2, tag="just as good"), "first"),
        (key(index=5, forwarded=1, tag="less forwarded"), "less forwarded"),
        (key(index=3, forwarded=9, tag="earlier index"), "earlier index"),
        (key(index=9, forwarded=9, verified=True, tag="verified"), "verified"),
        (key(index=0, forwarded=0, verified=False, tag="unverified"), "verified"),
        (key(index=8, forwarded=9, verified=True, tag="verified, earlier"), "verified, earlier"),
    ]
    etag = first["etag"]
    for uploaded, kept in steps:
        answer = put_session(user, version, uploaded)
        assert answer["count"] == 1
        assert stored(user, version)["session_data"]["ciphertext"] == kept, uploaded
        replaced = uploaded["session_data"]["ciphertext"] == kept
        assert (answer["etag"] != etag) == replaced, f"the etag changes only with the keys: {uploaded}"
        etag = answer["etag"]
    assert assert_ok(user.get(VERSIONS))["etag"] == etag


def test_keys_by_room_session_and_all(user):
    version = create(user)
    body = {"rooms": {
        ROOM: {"sessions": {"a": key(tag="a"), "b": key(tag="b")}},
        "!other:localhost": {"sessions": {"c": key(tag="c")}},
    }}
    answer = assert_ok(user.put(KEYS, params={"version": version}, json=body))
    assert answer["count"] == 3
    assert assert_ok(user.get(KEYS, params={"version": version})) == body
    assert assert_ok(user.get(session_path(), params={"version": version})) == body["rooms"][ROOM]
    assert stored(user, version, "a") == key(tag="a")
    room_put = assert_ok(user.put(session_path("!third:localhost"), params={"version": version},
                                  json={"sessions": {"d": key(tag="d")}}))
    assert room_put["count"] == 4
    assert assert_ok(user.get(VERSIONS))["count"] == 4
    # Nothing there: an empty map, or 404 for one session.
    assert assert_ok(user.get(session_path("!empty:localhost"), params={"version": version})) == {"sessions": {}}
    assert_error(user.get(session_path(ROOM, "nope"), params={"version": version}), 404, "M_NOT_FOUND")
    # Deletes, each changing the etag.
    etag = room_put["etag"]
    for path, count in ((session_path(ROOM, "a"), 3), (session_path(ROOM), 2), (KEYS, 0)):
        answer = assert_ok(user.delete(path, params={"version": version}))
        assert answer["count"] == count and answer["etag"] != etag
        etag = answer["etag"]
    assert assert_ok(user.get(KEYS, params={"version": version})) == {"rooms": {}}


def test_writes_go_to_the_current_version_only(user):
    old = create(user)
    put_session(user, old, key(tag="old"))
    current = create(user)
    resp = user.put(session_path(ROOM, "s1"), params={"version": old}, json=key())
    body = assert_error(resp, 403, "M_WRONG_ROOM_KEYS_VERSION")
    assert body["current_version"] == current
    assert_error(user.put(session_path(ROOM, "s1"), params={"version": "999"}, json=key()), 404, "M_NOT_FOUND")
    assert_error(user.put(session_path(ROOM, "s1"), json=key()), 400, "M_MISSING_PARAM")
    # The old version still reads, and the new one starts empty.
    assert stored(user, old)["session_data"]["ciphertext"] == "old"
    assert assert_ok(user.get(KEYS, params={"version": current})) == {"rooms": {}}
    assert_error(user.put(session_path(ROOM, "s1"), params={"version": current}, json={"is_verified": "yes"}),
                 400, {"M_BAD_JSON", "M_MISSING_PARAM"})


def test_deleting_a_version(user):
    first = create(user)
    second = create(user)
    put_session(user, second, key())
    assert assert_ok(user.delete(f"{VERSIONS}/{second}")) == {}
    assert assert_ok(user.delete(f"{VERSIONS}/{second}")) == {}, "deleting again succeeds"
    assert_error(user.delete(f"{VERSIONS}/999"), 404, "M_NOT_FOUND")
    assert_error(user.get(f"{VERSIONS}/{second}"), 404, "M_NOT_FOUND")
    assert_error(user.get(KEYS, params={"version": second}), 404, "M_NOT_FOUND")
    # The version before it is the latest again, and takes keys; a new one gets a new number.
    assert assert_ok(user.get(VERSIONS))["version"] == first
    put_session(user, first, key())
    third = create(user)
    assert third not in (first, second)
    assert assert_ok(user.get(VERSIONS))["count"] == 0
