"""/api/v1/media/{id} serves only files under GATEWAY_MEDIA_DIR, whatever path a row holds."""

from __future__ import annotations

from tests.server import run_server
from tests.whatsapp.helpers import make_whatsapp_channel


async def test_only_files_inside_the_media_dir_are_served(db_url, tmp_path):
    media, outside = tmp_path / "media", tmp_path / "outside"
    (media / "ab/cd").mkdir(parents=True)
    outside.mkdir()
    (media / "ab/cd/good").write_bytes(b"stored bytes")
    (outside / "secret").write_bytes(b"not media")
    (media / "ab/cd/link").symlink_to(outside / "secret")
    async with run_server(db_url, gateway_workers=False, gateway_media_dir=media) as srv:
        wa = await make_whatsapp_channel(srv.ctx.pool)
        ids = {}
        for path in ("ab/cd/good", "../outside/secret", str(outside / "secret"), "ab/cd/link", "/etc/hostname"):
            ids[path] = await srv.ctx.pool.fetchval(
                """INSERT INTO media_files (account_id, channel_id, mime_type, status, storage_path, sha256)
                   VALUES ($1, $2, 'text/plain', 'stored', $3, 'x') RETURNING id""",
                wa.account_id, wa.channel_id, path,
            )
        async with srv.client(wa.api_key) as http:
            good = await http.get(f"/api/v1/media/{ids.pop('ab/cd/good')}")
            assert good.status_code == 200 and good.content == b"stored bytes"
            for path, media_id in ids.items():
                r = await http.get(f"/api/v1/media/{media_id}")
                assert r.status_code == 404, path
