"""A gateway process for multi-process tests: ``python -m tests.ws._serve_app`` with settings from the env.

The database must already be migrated (tests hand over a database cloned from the migrated template).
"""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from gateway.config import load_settings


def main() -> None:
    settings = load_settings()
    app = create_app(settings)
    uvicorn.run(app, host=settings.gateway_host, port=settings.gateway_port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
