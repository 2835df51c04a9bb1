"""The admin API's media quarantine (Synapse's): one file, a room's files, a user's files,
release, and protection from quarantine."""

from __future__ import annotations

import pytest

from admin import ADMIN, create_user
from conftest import SERVER_NAME, assert_error, assert_ok, path_quote, unique_name
from rooms import create_room, send_message, send_state
from test_media import download, image_bytes, media_id, thumbnail, upload

MEDIA_ADMIN = f"{ADMIN}/v1/media"


@pytest.fixture
def admin(base_url):
    return create_user(base_url, unique_name("admin"), admin=True)


def quarantine(admin, uri: str, action: str = "quarantine"):
    return assert_ok(admin.post(f"{MEDIA_ADMIN}/{action}/{SERVER_NAME}/{media_id(uri)}", json={}))


def served(user, uri: str) -> bool:
    resp = download(user, uri)
    if resp.status_code == 404:
        assert resp.json()["errcode"] == "M_NOT_FOUND"
        return False
    assert resp.status_code == 200, resp.text
    return True


def test_quarantine_and_release_one_file(admin, user, new_user):
    uri = upload(user, image_bytes("PNG", (64, 64)), "image/png")
    other = upload(user, b"another file")
    assert served(user, uri)
    quarantine(admin, uri)
    # Nobody gets it any more, the uploader neither, nor its thumbnails; other files are served.
    assert not served(user, uri) and not served(new_user(), uri)
    assert_error(thumbnail(user, uri, 32, 32, "crop"), 404, "M_NOT_FOUND")
    assert served(user, other)
    quarantine(admin, uri, "unquarantine")
    assert served(user, uri)
    assert thumbnail(user, uri, 32, 32, "crop").status_code == 200
    # Another server's media, or an unknown ID: nothing to do, and no error (as Synapse).
    assert_ok(admin.post(f"{MEDIA_ADMIN}/quarantine/elsewhere.example/abcdef", json={}))
    assert_ok(admin.post(f"{MEDIA_ADMIN}/quarantine/{SERVER_NAME}/nosuchmedia", json={}))


def test_protected_media_cannot_be_quarantined(admin, user):
    uri = upload(user, b"keep me")
    assert_ok(admin.post(f"{MEDIA_ADMIN}/protect/{media_id(uri)}", json={}))
    quarantine(admin, uri)
    assert served(user, uri)
    by_user = assert_ok(admin.post(f"{ADMIN}/v1/user/{path_quote(user.user_id)}/media/quarantine", json={}))
    assert by_user["num_quarantined"] == 0 and served(user, uri)
    assert_ok(admin.post(f"{MEDIA_ADMIN}/unprotect/{media_id(uri)}", json={}))
    quarantine(admin, uri)
    assert not served(user, uri)


def test_quarantine_a_users_media(admin, new_user):
    uploader, bystander = new_user(), new_user()
    mine = [upload(uploader, f"file {i}".encode()) for i in range(3)]
    theirs = upload(bystander, b"not theirs")
    by_user = assert_ok(admin.post(f"{ADMIN}/v1/user/{path_quote(uploader.user_id)}/media/quarantine", json={}))
    assert by_user["num_quarantined"] == 3
    assert not any(served(bystander, uri) for uri in mine)
    assert served(bystander, theirs)


def test_quarantine_a_rooms_media(admin, new_user):
    owner, outsider = new_user(), new_user()
    room_id = create_room(owner)
    image = upload(owner, image_bytes("PNG", (40, 40)), "image/png")
    thumb = upload(owner, image_bytes("PNG", (10, 10)), "image/png")
    attachment = upload(owner, b"a document")
    avatar = upload(owner, image_bytes("PNG", (8, 8)), "image/png")
    elsewhere = upload(outsider, b"never posted")
    send_message(owner, room_id, "picture", msgtype="m.image", url=image, info={"thumbnail_url": thumb})
    send_message(owner, room_id, "doc", msgtype="m.file", url=attachment)
    send_message(owner, room_id, "doc again", msgtype="m.file", url=attachment)
    send_message(owner, room_id, "foreign", msgtype="m.file", url="mxc://elsewhere.example/abc")
    send_state(owner, room_id, "m.room.avatar", {"url": avatar})
    listed = assert_ok(admin.get(f"{ADMIN}/v1/room/{room_id}/media"))
    assert sorted(listed["local"]) == sorted([image, thumb, attachment, avatar]) and listed["remote"] == []
    done = assert_ok(admin.post(f"{ADMIN}/v1/room/{room_id}/media/quarantine", json={}))
    assert done["num_quarantined"] == 4
    for uri in (image, thumb, attachment, avatar):
        assert not served(owner, uri), uri
    assert served(outsider, elsewhere)


def test_non_admins_are_refused(user):
    uri = upload(user, b"mine")
    calls = [
        f"{MEDIA_ADMIN}/quarantine/{SERVER_NAME}/{media_id(uri)}",
        f"{MEDIA_ADMIN}/unquarantine/{SERVER_NAME}/{media_id(uri)}",
        f"{MEDIA_ADMIN}/protect/{media_id(uri)}",
        f"{MEDIA_ADMIN}/unprotect/{media_id(uri)}",
        f"{ADMIN}/v1/room/!x:localhost/media/quarantine",
        f"{ADMIN}/v1/user/{path_quote(user.user_id)}/media/quarantine",
    ]
    for path in calls:
        assert_error(user.post(path, json={}), 403, "M_FORBIDDEN")
    assert_error(user.get(f"{ADMIN}/v1/room/!x:localhost/media"), 403, "M_FORBIDDEN")
    assert served(user, uri)
