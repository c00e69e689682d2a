"""``GET /api/v1/media/{id}`` never serves provider media as active content on our origin."""

from __future__ import annotations

import hashlib
from urllib.parse import unquote

import pytest

from gateway.api._safe_media import content_disposition, safe_filename, served_type
from tests.api.helpers import make_account, make_channel
from tests.server import run_server

HTML = b"<html><script>fetch('/api/v1/keys',{headers:{Authorization:localStorage.k}})</script></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.domain)</script></svg>'
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00 a real photo"


@pytest.fixture
async def served(db_url, pool, tmp_path):
    """Store files as the media worker would, and serve them from a real gateway."""
    account_id, key = await make_account(pool, "media")
    channel = await make_channel(pool, account_id, provider_key="5550100", phone_number_id="5550100")
    media_dir = tmp_path / "media"

    async def store(content: bytes, mime_type: str | None, name: str | None) -> int:
        digest = hashlib.sha256(content).hexdigest()
        (media_dir / digest[:2]).mkdir(parents=True, exist_ok=True)
        (media_dir / digest[:2] / digest).write_bytes(content)
        return await pool.fetchval(
            """INSERT INTO media_files (account_id, channel_id, mime_type, name, sha256, storage_path, status)
               VALUES ($1, $2, $3, $4, $5, $6, 'stored') RETURNING id""",
            account_id, channel.id, mime_type, name, digest, f"{digest[:2]}/{digest}")

    async with run_server(db_url, gateway_workers=False, gateway_media_dir=media_dir) as server, \
            server.client(key) as http:
        yield store, http


async def test_html_is_served_as_an_octet_stream_attachment(served):
    store, http = served
    media_id = await store(HTML, "text/html", "invoice.html")

    r = await http.get(f"/api/v1/media/{media_id}")

    assert r.status_code == 200 and r.content == HTML
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["x-content-type-options"] == "nosniff"


async def test_svg_with_script_is_not_served_inline(served):
    store, http = served
    media_id = await store(SVG, "image/svg+xml", "logo.svg")

    r = await http.get(f"/api/v1/media/{media_id}")

    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"] == "attachment; filename=\"logo.svg\"; filename*=UTF-8''logo.svg"
    assert r.headers["x-content-type-options"] == "nosniff"


async def test_a_content_type_with_cr_lf_is_replaced_and_the_response_still_arrives(served):
    store, http = served
    media_id = await store(JPEG, "image/jpeg\r\nSet-Cookie: session=stolen", "photo.jpg\r\nX-Injected: 1")

    r = await http.get(f"/api/v1/media/{media_id}")

    assert r.status_code == 200 and r.content == JPEG
    assert r.headers["content-type"] == "application/octet-stream"
    assert "set-cookie" not in r.headers and "x-injected" not in r.headers
    assert r.headers["content-disposition"].startswith("attachment;")
    assert "\r" not in r.headers["content-disposition"] and "\n" not in r.headers["content-disposition"]


async def test_a_normal_jpeg_is_served_inline_with_nosniff(served):
    store, http = served
    media_id = await store(JPEG, "image/jpeg", "Schaden am Paket.jpg")

    r = await http.get(f"/api/v1/media/{media_id}")

    assert r.status_code == 200 and r.content == JPEG
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-disposition"] == (
        "inline; filename=\"Schaden am Paket.jpg\"; filename*=UTF-8''Schaden%20am%20Paket.jpg")


async def test_a_hostile_filename_is_sanitised_in_both_forms(served):
    store, http = served
    media_id = await store(JPEG, "audio/ogg; codecs=opus", '../../etc/"quoted";\u202egpj.exe\u0007')

    r = await http.get(f"/api/v1/media/{media_id}")

    disposition = r.headers["content-disposition"]
    assert r.headers["content-type"] == "audio/ogg"
    assert disposition.startswith('inline; filename="_quoted__ gpj.exe"; filename*=UTF-8\'\'')
    assert unquote(disposition.split("''", 1)[1]) == '"quoted"; gpj.exe'


@pytest.mark.parametrize(("stored", "expected"), [
    ("image/jpeg", ("image/jpeg", True)),
    ("IMAGE/PNG", ("image/png", True)),
    ("video/mp4", ("video/mp4", True)),
    ("audio/ogg; codecs=opus", ("audio/ogg", True)),
    ("application/pdf", ("application/pdf", True)),
    ("image/svg+xml", ("application/octet-stream", False)),
    ("text/html", ("application/octet-stream", False)),
    ("text/plain", ("application/octet-stream", False)),
    ("application/xhtml+xml", ("application/octet-stream", False)),
    ("application/javascript", ("application/octet-stream", False)),
    ("image/jpeg\r\nX: y", ("application/octet-stream", False)),
    ("image/jpe\u0000g", ("application/octet-stream", False)),
    ("jpeg", ("application/octet-stream", False)),
    ("", ("application/octet-stream", False)),
    (None, ("application/octet-stream", False)),
])
def test_served_type(stored, expected):
    assert served_type(stored) == expected


def test_an_empty_or_all_junk_name_falls_back():
    assert safe_filename(None, "media-7") == "media-7"
    assert safe_filename("\r\n\t ..", "media-7") == "media-7"
    assert safe_filename("x" * 500, "m") == "x" * 200
    assert content_disposition(False, "Ünïcödé 😀.pdf", "m") == (
        "attachment; filename=\"_n_c_d_ _.pdf\"; filename*=UTF-8''%C3%9Cn%C3%AFc%C3%B6d%C3%A9%20%F0%9F%98%80.pdf")
