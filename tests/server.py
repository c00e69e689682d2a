"""Run the real app under uvicorn on a free loopback port, inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from gateway.app import create_app
from gateway.config import Settings, load_settings
from gateway.serve import uvicorn_config
from tests import log_leaks
from tests.redis_server import free_port


@dataclass
class RunningServer:
    url: str
    ws_url: str
    app: Any
    settings: Settings

    @property
    def ctx(self) -> Any:
        return self.app.state.ctx

    def client(self, api_key: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)


@contextlib.asynccontextmanager
async def run_server(db_url: str, **settings_and_overrides: Any) -> AsyncIterator[RunningServer]:
    """Settings fields (lowercase names) go to Settings; anything else overrides the AppContext."""
    fields = set(Settings.model_fields)
    settings_kw = {k: v for k, v in settings_and_overrides.items() if k in fields}
    overrides = {k: v for k, v in settings_and_overrides.items() if k not in fields}
    port = free_port()
    settings = load_settings(database_url=db_url, gateway_host="127.0.0.1", gateway_port=port, **settings_kw)
    app = create_app(settings, **overrides)
    config = uvicorn_config(app, settings, log_level=log_leaks.SERVER_LOG_LEVEL)
    # Collect uvicorn's lines for the leak check (gateway.serve installed the redaction).
    log_leaks.attach_to_uvicorn()
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped during startup")
        await asyncio.sleep(0.02)
    try:
        yield RunningServer(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", app, settings)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
