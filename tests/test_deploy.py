"""The deployment files: a compose file that validates, two replicas behind a WebSocket-aware proxy."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.cli_helpers import REPO, cli_env

COMPOSE = REPO / "docker-compose.yml"


def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    return None


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_the_compose_file_validates_with_the_compose_tool():
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed (.ci/run installs docker-compose)")
    env = cli_env(GATEWAY_SECRET_KEY="a-key-for-validation-only")
    done = subprocess.run([*command, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    # Without the key the file refuses to start rather than run with secrets in clear.
    missing = subprocess.run([*command, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True,
                             env=cli_env(GATEWAY_SECRET_KEY=""), cwd=REPO, timeout=60, check=False)
    assert missing.returncode != 0
    assert "GATEWAY_SECRET_KEY" in missing.stderr


def test_every_image_is_pinned_and_every_long_running_service_has_a_healthcheck(compose):
    services = compose["services"]
    for name, service in services.items():
        if "image" in service:
            assert re.search(r":\d+\.\d+", service["image"]), f"{name}: image {service['image']} is not pinned"
        assert "healthcheck" in service, f"{name} has no healthcheck"


def test_two_gateway_replicas_share_database_redis_media_and_key(compose):
    services = compose["services"]
    replicas = [s for n, s in services.items() if n.startswith("gateway-")]
    assert len(replicas) == 2
    for shared in ("DATABASE_URL", "REDIS_URL", "GATEWAY_SECRET_KEY", "GATEWAY_MEDIA_DIR"):
        assert len({r["environment"][shared] for r in replicas}) == 1, shared
    assert all("media:/data/media" in r["volumes"] for r in replicas)


def test_the_proxy_balances_both_replicas_and_passes_websockets():
    conf = (REPO / "deploy/nginx/nginx.conf").read_text()
    assert "server gateway-1:8000" in conf and "server gateway-2:8000" in conf
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert "proxy_set_header Connection $connection_upgrade;" in conf
    # ?token= must not reach the proxy's log.
    assert "$request_uri" not in conf and '"$request"' not in conf


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck():
    dockerfile = (REPO / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK ", dockerfile, re.M)
