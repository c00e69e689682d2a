"""MixMonitor recordings: read by the gateway when it can see the file, stored by the media worker."""

from __future__ import annotations

import hashlib

import pytest

from channels.asterisk.config import AsteriskConfig
from channels.asterisk.recordings import RecordingFetcher, local_path, recording_mime
from inbox.accounts import create_account
from schema.media import MediaFetchError
from tests.asterisk.helpers import eventually
from tests.asterisk.test_calls_api import FAST, ami_channel
from tests.fakes.ami_server import FakeAmiServer, trace_events
from tests.server import run_server

PATH = "/var/spool/asterisk/monitor/2025/03/14/in-15105550100-14155550177-1741950200.400.wav"
BASE = {"host": "pbx", "username": "gw"}


def test_a_recording_path_maps_into_the_mounted_directory():
    mounted = AsteriskConfig(**BASE, recordings_dir="/mnt/rec")
    assert str(local_path(PATH, mounted)) == "/mnt/rec/2025/03/14/in-15105550100-14155550177-1741950200.400.wav"
    assert str(local_path("2025/x.wav", mounted)) == "/mnt/rec/2025/x.wav"
    assert str(local_path(PATH, AsteriskConfig(**BASE))) == PATH
    assert recording_mime(PATH) == "audio/wav" and recording_mime("a.gsm") == "audio/gsm"


async def test_the_fetcher_reads_a_visible_file_and_reports_an_invisible_one(tmp_path):
    target = tmp_path / "2025/03/14/in-15105550100-14155550177-1741950200.400.wav"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"RIFF....WAVEfmt ")
    config = {**BASE, "recordings_dir": str(tmp_path)}
    got = await RecordingFetcher().fetch(provider_id=None, source_url=PATH, channel_config=config, channel_secrets={})
    assert (got.content, got.mime_type, got.name) == (b"RIFF....WAVEfmt ", "audio/wav", target.name)
    with pytest.raises(MediaFetchError, match="not readable"):
        await RecordingFetcher().fetch(provider_id=None, source_url=PATH, channel_config=BASE, channel_secrets={})


async def test_a_recorded_call_ends_with_its_recording_stored_and_served(db_url, tmp_path):
    recordings = tmp_path / "monitor"
    wav = recordings / "2025/03/14/in-15105550100-14155550177-1741950200.400.wav"
    wav.parent.mkdir(parents=True)
    wav.write_bytes(b"RIFF recorded call")
    async with FakeAmiServer() as pbx, run_server(
        db_url, gateway_lease_interval=0.2, gateway_media_dir=tmp_path / "media", extras={"asterisk_options": FAST}
    ) as srv:
        _, key = await create_account(srv.ctx.pool, "acme")
        async with srv.client(key) as http:
            body = ami_channel(pbx)
            body["config"]["recordings_dir"] = str(recordings)
            assert (await http.post("/api/v1/channels", json=body)).status_code == 201
            await pbx.wait_until(lambda: pbx.core_show_channels >= 1)
            pbx.emit(trace_events("recorded_call.ami"))

            async def stored():
                items = (await http.get("/api/v1/calls")).json()["items"]
                rec = items[0]["recording"] if items else None
                return items[0] if rec and rec["status"] == "stored" else None

            call = await eventually(stored, within=20)
            assert call["recording"]["sha256"] == hashlib.sha256(b"RIFF recorded call").hexdigest()
            assert call["recording"]["mime_type"] == "audio/wav"
            served = await http.get(call["recording"]["url"])
            assert served.status_code == 200 and served.content == b"RIFF recorded call"

