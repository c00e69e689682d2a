"""MixMonitor recordings: read only from inside GATEWAY_RECORDINGS_DIR, whatever file name the PBX sends."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import asyncpg
import pytest

from channels.asterisk.config import AsteriskConfig
from channels.asterisk.recordings import RecordingFetcher, recording_mime, relative_path
from inbox.accounts import create_account
from schema.media import MediaFetchError, MediaRefused, MediaTooLarge
from tests.asterisk.helpers import eventually
from tests.asterisk.test_calls_api import FAST, ami_channel
from tests.fakes.ami_server import FakeAmiServer, Fields, trace_events
from tests.server import run_server

MONITOR = "/var/spool/asterisk/monitor"
NAME = "2025/03/14/in-15105550100-14155550177-1741950200.400.wav"
PATH = f"{MONITOR}/{NAME}"
BASE = {"host": "pbx", "username": "gw"}
SECRET = b"DATABASE_URL=postgresql://owner:hunter2@db/prod"


def test_a_recording_name_maps_under_the_recordings_dir_or_is_refused():
    config = AsteriskConfig(**BASE)
    assert str(relative_path(PATH, config)) == NAME
    assert str(relative_path("2025/x.wav", config)) == "2025/x.wav"
    assert str(relative_path(PATH, AsteriskConfig(**BASE, recordings_dir="pbx1"))) == f"pbx1/{NAME}"
    for hostile in ("/proc/self/environ", f"{MONITOR}/../../../../proc/self/environ", "../outside.wav",
                    "2025/../../outside.wav", f"{MONITOR}/a\x00.wav", "/var/spool/asterisk/monitorX/a.wav", MONITOR):
        with pytest.raises(MediaRefused):
            relative_path(hostile, config)
    assert recording_mime(PATH) == "audio/wav" and recording_mime("a.gsm") == "audio/gsm"


def test_a_channel_recordings_dir_is_only_a_relative_subfolder():
    for bad in ("/mnt/rec", "../rec", "a/../../b", "a\\..\\b"):
        with pytest.raises(ValueError, match="recordings_dir"):
            AsteriskConfig(**BASE, recordings_dir=bad)


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """``rec/`` (GATEWAY_RECORDINGS_DIR) with one real recording and symlinks that escape; ``outside/`` a secret."""
    root, outside = tmp_path / "rec", tmp_path / "outside"
    (root / "2025/03/14").mkdir(parents=True)
    outside.mkdir()
    (root / NAME).write_bytes(b"RIFF recorded call")
    (outside / "secret.wav").write_bytes(SECRET)
    (root / "escape.wav").symlink_to(outside / "secret.wav")
    (root / "escape_dir").symlink_to(outside, target_is_directory=True)
    (root / "environ.wav").symlink_to("/proc/self/environ")
    (root / "2025/03/14/folder.wav").mkdir()
    os.mkfifo(root / "fifo.wav")
    return root, outside


async def fetch(fetcher: RecordingFetcher, name: str, **config: str):
    return await fetcher.fetch(provider_id=None, source_url=name, channel_config={**BASE, **config},
                               channel_secrets={})


async def test_the_fetcher_reads_regular_files_inside_the_dir_and_nothing_else(layout):
    root, _ = layout
    fetcher = RecordingFetcher(root)
    got = await fetch(fetcher, PATH)
    assert (got.content, got.mime_type, got.name) == (b"RIFF recorded call", "audio/wav", Path(NAME).name)
    for hostile in (f"{MONITOR}/escape.wav", f"{MONITOR}/escape_dir/secret.wav", f"{MONITOR}/environ.wav",
                    "/proc/self/environ", "../outside/secret.wav", f"{MONITOR}/2025/03/14/folder.wav",
                    f"{MONITOR}/fifo.wav"):
        with pytest.raises(MediaRefused):
            await fetch(fetcher, hostile)
    # Not there yet (MixMonitor still writing, a slow mount): transient, retried.
    with pytest.raises(MediaFetchError) as missing:
        await fetch(fetcher, f"{MONITOR}/later.wav")
    assert not isinstance(missing.value, MediaRefused)
    with pytest.raises(MediaTooLarge):
        await fetch(RecordingFetcher(root, max_bytes=4), PATH)


async def test_without_a_recordings_dir_nothing_is_read(layout):
    root, _ = layout
    with pytest.raises(MediaRefused, match="GATEWAY_RECORDINGS_DIR is not set"):
        await fetch(RecordingFetcher(None), str(root / NAME))


def recorded_call(n: int, filename: str) -> list[Fields]:
    """The recorded-call trace as call number ``n`` (its own ids) with the PBX naming ``filename``."""
    out: list[Fields] = []
    for event in trace_events("recorded_call.ami"):
        fields = [(k, v.replace("1741950200.4", f"17419502{n:02d}.4")) for k, v in event]
        if any(k == "Variable" and v == "MIXMONITOR_FILENAME" for k, v in fields):
            fields = [(k, filename if k == "Value" else v) for k, v in fields]
        out.append(fields)
    return out


async def test_a_hostile_pbx_gets_no_local_file_stored_or_served(db_url, layout, tmp_path):
    root, _ = layout
    hostile = ["/proc/self/environ", f"{MONITOR}/../../../../proc/self/environ", "../outside/secret.wav",
               f"{MONITOR}/escape.wav", f"{MONITOR}/escape_dir/secret.wav", f"{MONITOR}/environ.wav"]
    async with FakeAmiServer() as pbx, run_server(
        db_url, gateway_lease_interval=0.2, gateway_media_dir=tmp_path / "media", gateway_recordings_dir=root,
        extras={"asterisk_options": FAST},
    ) as srv:
        _, key = await create_account(srv.ctx.pool, "acme")
        async with srv.client(key) as http:
            assert (await http.post("/api/v1/channels", json=ami_channel(pbx))).status_code == 201
            await pbx.wait_until(lambda: pbx.core_show_channels >= 1)
            for n, name in enumerate([*hostile, PATH]):
                pbx.emit(recorded_call(n, name))

            async def all_settled():
                items = (await http.get("/api/v1/calls", params={"limit": 50})).json()["items"]
                recs = [c["recording"] for c in items if c["recording"]]
                done = len(recs) == len(hostile) + 1 and all(r["status"] != "pending" for r in recs)
                return recs if done else None

            recordings = await eventually(all_settled, within=30)
            by_status = sorted(r["status"] for r in recordings)
            assert by_status == ["failed"] * len(hostile) + ["stored"]
            for rec in recordings:
                served = await http.get(rec["url"])
                if rec["status"] == "stored":
                    assert served.status_code == 200 and served.content == b"RIFF recorded call"
                    assert rec["sha256"] == hashlib.sha256(b"RIFF recorded call").hexdigest()
                else:
                    assert served.status_code == 404 and SECRET not in served.content
        conn = await asyncpg.connect(db_url)
        try:
            rows = await conn.fetch("SELECT status, error, storage_path FROM media_files ORDER BY id")
        finally:
            await conn.close()
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == len(hostile) and all(r["storage_path"] is None for r in failed)
    assert all("recording" in r["error"] for r in failed), [r["error"] for r in failed]
    stored = list((tmp_path / "media").rglob("*.*"))
    assert all(SECRET not in f.read_bytes() for f in stored if f.is_file())


async def test_without_gateway_recordings_dir_a_recording_is_metadata_only(db_url, layout, tmp_path):
    root, _ = layout
    async with FakeAmiServer() as pbx, run_server(
        db_url, gateway_lease_interval=0.2, gateway_media_dir=tmp_path / "media", extras={"asterisk_options": FAST},
    ) as srv:
        _, key = await create_account(srv.ctx.pool, "acme")
        async with srv.client(key) as http:
            assert (await http.post("/api/v1/channels", json=ami_channel(pbx))).status_code == 201
            await pbx.wait_until(lambda: pbx.core_show_channels >= 1)
            # The file exists and is readable: it is still never read.
            pbx.emit(recorded_call(1, str(root / NAME)))

            async def settled():
                items = (await http.get("/api/v1/calls")).json()["items"]
                rec = items[0]["recording"] if items else None
                return rec if rec and rec["status"] != "pending" else None

            rec = await eventually(settled, within=20)
            assert rec["status"] == "failed" and rec["name"] == Path(NAME).name
            assert (await http.get(rec["url"])).status_code == 404
        error = await srv.ctx.pool.fetchval("SELECT error FROM media_files WHERE id = $1", rec["id"])
    assert "GATEWAY_RECORDINGS_DIR is not set" in error
