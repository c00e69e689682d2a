"""Settings from the environment (DESIGN §3), validated at start."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    database_url: str | None = None
    redis_url: str | None = None
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8000, ge=0, le=65535)
    gateway_data_dir: Path = Path("./.inbox-gateway")
    gateway_media_dir: Path | None = None
    whatsapp_api_base: str = "https://graph.facebook.com/v21.0"
    telegram_api_base: str = "https://api.telegram.org"
    # Prefix of every Redis key and pub/sub channel, so several deployments (or
    # test runs) can share one Redis server.
    gateway_redis_prefix: str = "igw"
    gateway_log_level: str = "info"
    # Bodies larger than this are refused with 413 before they are read whole.
    gateway_max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    gateway_ws_queue_size: int = Field(default=1000, gt=0)
    # Most writes (webhooks, call changes) committed in one transaction by the group commit.
    gateway_commit_batch: int = Field(default=64, gt=0)
    # Seconds between checks of each live account's latest seq against what its
    # sockets got: catches events whose publish was lost (writer crash, Redis outage).
    gateway_ws_check_interval: float = Field(default=1.0, gt=0)
    gateway_workers: bool = True  # background workers (outbound, media, channel connections)
    # How often a node looks for channels to run and proves it still holds its leases;
    # also the longest a dead node's channels wait for a takeover (plus one pass).
    gateway_lease_interval: float = Field(default=2.0, gt=0)

    @field_validator("database_url", "redis_url")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("database_url")
    @classmethod
    def _postgres_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("postgres://", "postgresql://")):
            raise ValueError("must start with postgresql:// (e.g. postgresql://user@host:5432/db)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis:// (e.g. redis://127.0.0.1:6379/0)")
        return value

    @field_validator("gateway_log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        # Checked here so a typo fails at start with one line, not inside logging/uvicorn.
        if value.lower() not in ("critical", "error", "warning", "info", "debug", "trace"):
            raise ValueError("must be one of critical, error, warning, info, debug, trace")
        return value.lower()

    @property
    def media_dir(self) -> Path:
        return self.gateway_media_dir or self.gateway_data_dir / "media"


class SettingsError(Exception):
    """A setting is wrong; the message is one line fit for a terminal."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]).upper() or "settings"
        raise SettingsError(f"invalid setting {name}: {first['msg']}") from exc
