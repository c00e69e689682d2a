from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from inbox.db import create_pool
from tests import log_leaks, pg
from tests.redis_server import shared_redis_url
from tests.sealed import TEST_SECRET_KEY
from tests.tcp_proxy import TcpProxy

# In-process apps (load_settings) and every gateway subprocess inheriting the environment
# need a key once DATABASE_URL is set; one fixed key lets tests seal rows they insert.
os.environ.setdefault("GATEWAY_SECRET_KEY", TEST_SECRET_KEY)


def pytest_sessionstart(session: pytest.Session) -> None:
    log_leaks.start_session()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when any collected log line holds a secret a test used (tests/log_leaks.py)."""
    leaks = log_leaks.finish_session()
    if not leaks:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"secrets in logs: {len(leaks)} occurrence(s), logs kept in {log_leaks.SESSION.dir}",
             *(str(leak) for leak in leaks[:50])]
    if reporter is not None:
        reporter.write_sep("=", "secrets in logs", red=True)
        for line in lines:
            reporter.write_line(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = pg.create_template()
    yield name
    pg.drop_database_sync(name)


@pytest.fixture
async def db_url(pg_template: str) -> AsyncIterator[str]:
    """A fresh, migrated database of this test's own."""
    name, url = await pg.create_database(pg_template)
    yield url
    await pg.drop_database(name)


@pytest.fixture
async def empty_db_url() -> AsyncIterator[str]:
    """A fresh database with no migrations applied."""
    name, url = await pg.create_database(None)
    yield url
    await pg.drop_database(name)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(db_url, min_size=1, max_size=10)
    yield p
    await p.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url, proc = shared_redis_url()
    yield url
    if proc is not None:
        proc.stop()


@pytest.fixture
def redis_prefix() -> str:
    """Redis pub/sub ignores database numbers: each test gets its own key/channel prefix."""
    return f"igwtest:{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def db_proxy(db_url: str) -> AsyncIterator[TcpProxy]:
    """A cuttable proxy in front of this test's database server (``through(db_url, db_proxy.port)``)."""
    parts = urlsplit(db_url)
    if not parts.hostname or not parts.port:
        pytest.skip("the test database is not reachable over TCP")
    proxy = TcpProxy(parts.hostname, parts.port)
    await proxy.start()
    yield proxy
    await proxy.cut()
