"""The content repository on R2: uploads (direct and async), authenticated downloads with their
headers and ranges, thumbnails of real images, limits, and the frozen unauthenticated endpoints."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import threading
import time

import pytest
from nio import DownloadResponse, UploadResponse
from PIL import Image

from conftest import SERVER_NAME, User, assert_error, assert_ok, describe, register, unique_name
from js import run_js
from rooms import create_room, room_path, send_state, state_event
from test_client_nio import nio_client

MEDIA = "/_matrix/media/v3"
CLIENT_MEDIA = "/_matrix/client/v1/media"
CSP = ("sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
       "style-src 'unsafe-inline'; media-src 'self'; object-src 'self';")


def upload(user, data: bytes, content_type: str | None = "application/octet-stream", filename: str | None = None,
           **kwargs) -> str:
    headers = {"Content-Type": content_type} if content_type else {}
    params = {"filename": filename} if filename is not None else {}
    body = assert_ok(user.post(f"{MEDIA}/upload", content=data, headers=headers, params=params, **kwargs))
    uri = body["content_uri"]
    assert uri.startswith(f"mxc://{SERVER_NAME}/"), body
    return uri


def media_id(uri: str) -> str:
    return uri.rsplit("/", 1)[1]


def download(user, uri: str, file_name: str | None = None, **kwargs):
    path = f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{media_id(uri)}"
    return user.get(path if file_name is None else f"{path}/{file_name}", **kwargs)


def thumbnail(user, uri: str, width: int, height: int, method: str | None = None, **params):
    params = {"width": width, "height": height, **params}
    if method:
        params["method"] = method
    return user.get(f"{CLIENT_MEDIA}/thumbnail/{SERVER_NAME}/{media_id(uri)}", params=params)


def image_bytes(fmt: str, size: tuple[int, int], mode: str = "RGB") -> bytes:
    """A real image with some structure in it, so that encoders have work to do."""
    image = Image.new(mode, size)
    pixels = image.load()
    for x in range(size[0]):
        for y in range(size[1]):
            pixels[x, y] = (x % 256, y % 256, (x * y) % 256) + ((255,) if mode == "RGBA" else ())
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Upload and download


def test_upload_and_download_byte_for_byte(user, new_user):
    data = os.urandom(3000)
    uri = upload(user, data, "image/png", "cat.png")
    other = new_user()
    resp = download(other, uri)
    assert resp.status_code == 200, describe(resp)
    assert resp.content == data
    assert resp.headers["content-type"] == "image/png"
    assert resp.headers["content-disposition"] == "inline; filename=cat.png"
    assert resp.headers["content-security-policy"] == CSP
    assert resp.headers["cross-origin-resource-policy"] == "cross-origin"
    assert resp.headers["access-control-allow-origin"] == "*"
    assert resp.headers["content-length"] == "3000"


def test_a_file_of_several_megabytes(user):
    data = os.urandom(6 * 1024 * 1024 + 17)
    uri = upload(user, data, "application/zip", "big.zip")
    resp = download(user, uri)
    assert resp.status_code == 200, describe(resp)
    assert len(resp.content) == len(data) and resp.content == data
    assert resp.headers["content-disposition"] == "attachment; filename=big.zip"


def test_a_chunked_upload_without_content_length(user):
    data = os.urandom(200_000)

    def chunks():
        for i in range(0, len(data), 65536):
            yield data[i:i + 65536]

    uri = upload(user, chunks(), "application/octet-stream")
    assert download(user, uri).content == data


def test_an_empty_upload(user):
    uri = upload(user, b"", "text/plain")
    resp = download(user, uri)
    assert resp.status_code == 200 and resp.content == b"", describe(resp)


@pytest.mark.parametrize("content_type,name,served_type,disposition", [
    ("text/plain", "notes.txt", "text/plain; charset=UTF-8", "inline; filename=notes.txt"),
    ("text/html", "page.html", "text/html; charset=UTF-8", "attachment; filename=page.html"),
    ("image/svg+xml", "x.svg", "image/svg+xml", "attachment; filename=x.svg"),
    ("application/json", None, "application/json", "inline"),
    (None, None, "application/octet-stream", "attachment"),
    ("video/mp4", "my film.mp4", "video/mp4", "inline; filename*=utf-8''my%20film.mp4"),
    ("audio/ogg", "ünïcødé;\".ogg", "audio/ogg", "inline; filename*=utf-8''%C3%BCn%C3%AFc%C3%B8d%C3%A9%3B%22.ogg"),
])
def test_download_headers(user, content_type, name, served_type, disposition):
    uri = upload(user, b"some bytes", content_type, name)
    resp = download(user, uri)
    assert resp.status_code == 200, describe(resp)
    assert resp.headers["content-type"] == served_type
    assert resp.headers["content-disposition"] == disposition
    assert resp.headers["content-security-policy"] == CSP
    assert resp.headers["cross-origin-resource-policy"] == "cross-origin"


def test_download_under_another_file_name(user):
    uri = upload(user, b"hello", "text/plain", "a.txt")
    resp = download(user, uri, "other name.txt")
    assert resp.status_code == 200 and resp.content == b"hello", describe(resp)
    assert resp.headers["content-disposition"] == "inline; filename*=utf-8''other%20name.txt"
    # A trailing slash (matrix-nio's form without a name) keeps the uploaded name.
    resp = download(user, uri, "")
    assert resp.headers["content-disposition"] == "inline; filename=a.txt", describe(resp)


def test_range_requests(user):
    data = bytes(range(256)) * 40
    uri = upload(user, data)
    resp = download(user, uri, headers={"Range": "bytes=100-199"})
    assert resp.status_code == 206, describe(resp)
    assert resp.content == data[100:200]
    assert resp.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert resp.headers["content-length"] == "100"
    resp = download(user, uri, headers={"Range": "bytes=10000-"})
    assert resp.status_code == 206 and resp.content == data[10000:], describe(resp)
    resp = download(user, uri, headers={"Range": "bytes=-5"})
    assert resp.status_code == 206 and resp.content == data[-5:], describe(resp)
    assert resp.headers["content-range"] == f"bytes {len(data) - 5}-{len(data) - 1}/{len(data)}"
    resp = download(user, uri, headers={"Range": f"bytes={len(data)}-"})
    assert resp.status_code == 416, describe(resp)
    assert resp.headers["content-range"] == f"bytes */{len(data)}"
    # Several ranges are not served as multipart: the whole file comes.
    resp = download(user, uri, headers={"Range": "bytes=0-1,5-6"})
    assert resp.status_code == 200 and resp.content == data, describe(resp)
    assert resp.headers["accept-ranges"] == "bytes"


def test_downloads_need_a_token(user, client):
    uri = upload(user, b"secret")
    assert_error(client.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/{media_id(uri)}"), 401, "M_MISSING_TOKEN")
    assert_error(client.get(f"{CLIENT_MEDIA}/thumbnail/{SERVER_NAME}/{media_id(uri)}",
                            params={"width": 32, "height": 32}), 401, "M_MISSING_TOKEN")
    assert_error(download(user, uri, token="not-a-token"), 401, "M_UNKNOWN_TOKEN")
    assert_error(client.post(f"{MEDIA}/upload", content=b"x"), 401, "M_MISSING_TOKEN")


def test_the_unauthenticated_endpoints_are_frozen(user, client):
    uri = upload(user, image_bytes("PNG", (40, 40)), "image/png", "a.png")
    for path in [f"{MEDIA}/download/{SERVER_NAME}/{media_id(uri)}",
                 f"{MEDIA}/download/{SERVER_NAME}/{media_id(uri)}/a.png",
                 f"{MEDIA}/thumbnail/{SERVER_NAME}/{media_id(uri)}?width=32&height=32"]:
        assert_error(client.get(path), 404, "M_NOT_FOUND")
        assert_error(user.get(path), 404, "M_NOT_FOUND")


def test_unknown_media(user):
    assert_error(user.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/nosuchmedia"), 404, "M_NOT_FOUND")
    uri = upload(user, b"x")
    assert_error(user.get(f"{CLIENT_MEDIA}/download/other.example/{media_id(uri)}"), 404, "M_NOT_FOUND")
    assert_error(user.get(f"{CLIENT_MEDIA}/download/{SERVER_NAME}/bad.id"), 404, "M_NOT_FOUND")


def test_media_ids_are_random(user):
    ids = {media_id(upload(user, b"same")) for _ in range(3)}
    assert len(ids) == 3
    assert all(len(i) >= 20 and i.isalnum() for i in ids), ids


def test_config(user):
    assert assert_ok(user.get(f"{CLIENT_MEDIA}/config")) == {"m.upload.size": 50 * 1024 * 1024}


def test_url_previews_are_absent(user):
    assert_error(user.get(f"{CLIENT_MEDIA}/preview_url", params={"url": "https://example.org"}), 404, "M_UNRECOGNIZED")


def small_media_user(small_media_url, new_client) -> User:
    c = new_client(small_media_url)
    body = register(c, unique_name())
    return User(c, body["user_id"], body["access_token"], body["device_id"])


def test_size_limit(small_media_url, new_client):
    user = small_media_user(small_media_url, new_client)
    assert assert_ok(user.get(f"{CLIENT_MEDIA}/config")) == {"m.upload.size": 1000}
    assert_error(user.post(f"{MEDIA}/upload", content=b"x" * 1001), 413, "M_TOO_LARGE")

    def chunks():
        yield b"x" * 600
        yield b"x" * 600

    assert_error(user.post(f"{MEDIA}/upload", content=chunks()), 413, "M_TOO_LARGE")
    uri = create(user)["content_uri"]
    assert_error(put_bytes(user, uri, b"x" * 1001), 413, "M_TOO_LARGE")
    # Nothing was stored: the async upload is still pending and takes a file of the right size.
    assert_error(download(user, uri, params={"timeout_ms": 0}), 504, "M_NOT_YET_UPLOADED")
    assert_ok(put_bytes(user, uri, b"x" * 1000))
    assert download(user, uri).content == b"x" * 1000


# ---------------------------------------------------------------------------------------------
# Async uploads


def create(user) -> dict:
    body = assert_ok(user.post(f"{MEDIA.replace('v3', 'v1')}/create"))
    assert body["content_uri"].startswith(f"mxc://{SERVER_NAME}/"), body
    assert body["unused_expires_at"] > time.time() * 1000, body
    return body


def put_bytes(user, uri: str, data: bytes, content_type: str = "text/plain", filename: str | None = None):
    params = {"filename": filename} if filename else {}
    return user.put(f"{MEDIA}/upload/{SERVER_NAME}/{media_id(uri)}", content=data,
                    headers={"Content-Type": content_type}, params=params)


def test_async_upload(user, new_user):
    uri = create(user)["content_uri"]
    assert_error(download(user, uri, params={"timeout_ms": 0}), 504, "M_NOT_YET_UPLOADED")
    started = time.monotonic()
    assert_error(download(user, uri, params={"timeout_ms": 1200}), 504, "M_NOT_YET_UPLOADED")
    assert time.monotonic() - started >= 1.0
    other = new_user()
    assert_error(put_bytes(other, uri, b"not mine"), 403, "M_FORBIDDEN")
    assert assert_ok(put_bytes(user, uri, b"mine", filename="m.txt")) == {}
    assert_error(put_bytes(user, uri, b"again"), 409, "M_CANNOT_OVERWRITE_MEDIA")
    resp = download(other, uri)
    assert resp.status_code == 200 and resp.content == b"mine", describe(resp)
    assert resp.headers["content-disposition"] == "inline; filename=m.txt"


def test_a_download_waits_for_an_async_upload(user):
    uri = create(user)["content_uri"]
    results = {}

    def wait():
        results["resp"] = download(user, uri, params={"timeout_ms": 20000})

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1.5)
    assert_ok(put_bytes(user, uri, b"arrived"))
    waiter.join(30)
    resp = results["resp"]
    assert resp.status_code == 200 and resp.content == b"arrived", describe(resp)


def test_uploads_to_unknown_ids(user):
    assert_error(put_bytes(user, f"mxc://{SERVER_NAME}/nosuchmedia", b"x"), 404, "M_NOT_FOUND")
    uri = upload(user, b"direct")
    assert_error(put_bytes(user, uri, b"x"), 409, "M_CANNOT_OVERWRITE_MEDIA")


def test_pending_uploads_are_limited(user):
    for _ in range(5):
        create(user)
    assert_error(user.post(f"{MEDIA.replace('v3', 'v1')}/create"), 429, "M_LIMIT_EXCEEDED")


# ---------------------------------------------------------------------------------------------
# Thumbnails


SOURCES = [("PNG", "image/png", "image/png"), ("JPEG", "image/jpeg", "image/jpeg"),
           ("GIF", "image/gif", "image/png"), ("WEBP", "image/webp", "image/png")]


@pytest.fixture(params=["wasm", "images"])
def thumbnailer(request, user, new_client):
    """A user of a server whose thumbnails are made in Wasm (the suite's), or by the Images binding
    (wrangler's local one, backed by Sharp: it letterboxes where the real one crops, so only the
    sizes are compared)."""
    if request.param == "wasm":
        return user
    c = new_client(request.getfixturevalue("images_thumbnails_url"))
    body = register(c, unique_name())
    return User(c, body["user_id"], body["access_token"], body["device_id"])


@pytest.mark.parametrize("fmt,content_type,thumb_type", SOURCES)
def test_thumbnails_of_each_format(thumbnailer, fmt, content_type, thumb_type):
    user = thumbnailer
    uri = upload(user, image_bytes(fmt, (1000, 500)), content_type, "picture")
    cases = [
        ((32, 32, "crop"), (32, 32)),
        ((96, 96, "crop"), (96, 96)),
        ((50, 40, "crop"), (96, 96)),  # the next standard size up, never smaller than asked
        ((320, 240, "scale"), (320, 160)),
        ((640, 480, "scale"), (640, 320)),
        ((800, 600, "scale"), (800, 400)),
        ((100, 100, None), (320, 160)),  # scale is the default
    ]
    for (w, h, method), expected in cases:
        for attempt in ("made", "kept"):
            resp = thumbnail(user, uri, w, h, method)
            assert resp.status_code == 200, f"{attempt}: {describe(resp)}"
            assert resp.headers["content-type"] == thumb_type
            assert resp.headers["content-disposition"] == "inline"
            assert resp.headers["content-security-policy"] == CSP
            image = Image.open(io.BytesIO(resp.content))
            assert image.size == expected, f"{fmt} {w}x{h} {method} ({attempt}): {image.size}"
            assert image.format == thumb_type.split("/")[1].upper()


def test_thumbnails_never_upscale(thumbnailer):
    user = thumbnailer
    small = image_bytes("PNG", (100, 80))
    uri = upload(user, small, "image/png")
    # The image fits the box: the original comes back.
    for _ in range(2):
        resp = thumbnail(user, uri, 320, 240, "scale")
        assert resp.status_code == 200 and resp.content == small, describe(resp)
    # Too small to fill a crop box on one side: it keeps its own size there.
    tall = upload(user, image_bytes("PNG", (50, 300)), "image/png")
    assert Image.open(io.BytesIO(thumbnail(user, tall, 96, 96, "crop").content)).size == (50, 96)
    # Larger than every standard size: the original, never a smaller image.
    resp = thumbnail(user, tall, 1000, 1000, "scale")
    assert Image.open(io.BytesIO(resp.content)).size == (50, 300)


def test_thumbnails_keep_transparency(thumbnailer):
    user = thumbnailer
    uri = upload(user, image_bytes("PNG", (400, 400), "RGBA"), "image/png")
    image = Image.open(io.BytesIO(thumbnail(user, uri, 96, 96, "crop").content))
    assert image.size == (96, 96) and image.mode == "RGBA"


def test_thumbnail_pixel_limit(small_media_url, new_client):
    user = small_media_user(small_media_url, new_client)
    # Plain images: small files, so that they pass the server's 1000-byte upload limit.
    def plain(size):
        out = io.BytesIO()
        Image.new("L", size, 200).save(out, format="PNG")
        assert len(out.getvalue()) <= 1000
        return upload(user, out.getvalue(), "image/png")

    assert_error(thumbnail(user, plain((400, 300)), 32, 32, "crop"), 413, "M_TOO_LARGE")
    resp = thumbnail(user, plain((300, 300)), 32, 32, "crop")
    assert resp.status_code == 200 and Image.open(io.BytesIO(resp.content)).size == (32, 32), describe(resp)


def test_thumbnail_errors(thumbnailer):
    user = thumbnailer
    uri = upload(user, image_bytes("PNG", (400, 400)), "image/png")
    base = f"{CLIENT_MEDIA}/thumbnail/{SERVER_NAME}/{media_id(uri)}"
    assert_error(user.get(base, params={"width": 32}), 400, "M_MISSING_PARAM")
    assert_error(user.get(base, params={"width": 0, "height": 32}), 400, "M_INVALID_PARAM")
    assert_error(user.get(base, params={"width": "x", "height": 32}), 400, "M_INVALID_PARAM")
    assert_error(user.get(base, params={"width": 32, "height": 32, "method": "stretch"}), 400, "M_INVALID_PARAM")
    text = upload(user, b"not an image", "text/plain")
    assert_error(thumbnail(user, text, 32, 32), 400, "M_UNKNOWN")
    broken = upload(user, b"\x89PNG\r\n\x1a\n broken", "image/png")
    assert_error(thumbnail(user, broken, 32, 32), 400, "M_UNKNOWN")


def test_room_avatars_are_mxc_uris(user):
    room_id = create_room(user)
    uri = upload(user, image_bytes("PNG", (64, 64)), "image/png")
    send_state(user, room_id, "m.room.avatar", {"url": uri})
    assert state_event(user, room_id, "m.room.avatar")["url"] == uri
    for bad in ["https://example.org/a.png", "mxc://localhost", "mxc://localhost/a/b", 42]:
        resp = user.put(room_path(room_id, "state", "m.room.avatar", ""), json={"url": bad})
        assert_error(resp, 400, "M_BAD_JSON")
    assert state_event(user, room_id, "m.room.avatar")["url"] == uri
    send_state(user, room_id, "m.room.avatar", {})  # no url: the avatar is removed


# ---------------------------------------------------------------------------------------------
# Real clients


def test_matrix_js_sdk_upload_and_authenticated_urls(base_url, new_user):
    alice, bob = new_user(), new_user()
    data = image_bytes("PNG", (300, 200))
    seen = run_js("client.mjs", base_url, {"alice": alice, "bob": bob}, "media",
                  data_base64=base64.b64encode(data).decode(), content_type="image/png", file_name="js.png")
    assert seen["content_uri"].startswith(f"mxc://{SERVER_NAME}/")
    got = seen["download"]
    assert f"{CLIENT_MEDIA}/download/" in got["url"], got["url"]
    assert got["status"] == 200 and base64.b64decode(got["body_base64"]) == data
    assert got["headers"]["content-disposition"] == "inline; filename=js.png"
    thumb = seen["thumbnail"]
    assert f"{CLIENT_MEDIA}/thumbnail/" in thumb["url"], thumb["url"]
    assert thumb["status"] == 200, thumb
    assert Image.open(io.BytesIO(base64.b64decode(thumb["body_base64"]))).size == (96, 96)


async def nio_round_trip(base_url: str, user, data: bytes):
    client = nio_client(base_url, user.user_id)
    client.access_token, client.device_id, client.user_id = user.access_token, user.device_id, user.user_id
    try:
        uploaded, _ = await client.upload(io.BytesIO(data), content_type="text/plain", filename="nio.txt",
                                          filesize=len(data))
        assert isinstance(uploaded, UploadResponse), uploaded
        downloaded = await client.download(uploaded.content_uri)
        assert isinstance(downloaded, DownloadResponse), downloaded
        return uploaded.content_uri, downloaded
    finally:
        await client.close()


def test_matrix_nio_upload_and_download(base_url, user):
    data = os.urandom(100_000)
    uri, downloaded = asyncio.run(nio_round_trip(base_url, user, data))
    assert uri.startswith(f"mxc://{SERVER_NAME}/")
    assert downloaded.body == data
    assert downloaded.filename == "nio.txt"
    assert downloaded.content_type == "text/plain"  # nio keeps the type without its charset
