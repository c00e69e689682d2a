"""Settings from the environment (DESIGN §3), validated at start."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from channels.netpolicy import NetworkPolicy

# The HTTP server's own bound on a request head (h11's setting, gateway.bounded_http
# for httptools), where it stops buffering; the app's header limit stays below it.
SERVER_MAX_HEAD_BYTES = 128 * 1024
# Client WebSocket frames are small (subscribe, unsubscribe, ping); the server
# refuses bigger ones (close 1009) before buffering them.
WS_MAX_FRAME_BYTES = 64 * 1024


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
    # text: classic lines; json: one object per line for log shippers (gateway.logs).
    gateway_log_format: str = "text"
    # Bodies larger than this are refused with 413 before they are read whole.
    gateway_max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    gateway_ws_queue_size: int = Field(default=1000, gt=0)
    # Most writes (webhooks, call changes) committed in one transaction by the group commit.
    gateway_commit_batch: int = Field(default=64, gt=0)
    # Seconds between checks of each live account's latest seq against what its
    # sockets got: catches events whose publish was lost (writer crash, Redis outage).
    gateway_ws_check_interval: float = Field(default=1.0, gt=0)
    # Bound of each graceful-shutdown step that waits (requests in flight, sends in flight).
    gateway_shutdown_timeout: float = Field(default=20.0, gt=0, le=3600)
    # Open WebSockets one API key may hold on one process (gateway.ws_limits).
    gateway_ws_max_per_key: int = Field(default=100, gt=0)
    # Requests with more headers, or more header bytes, answer 431 (gateway.limits).
    gateway_max_headers: int = Field(default=100, gt=0)
    gateway_max_header_bytes: int = Field(default=32 * 1024, gt=0, le=SERVER_MAX_HEAD_BYTES // 2)
    gateway_workers: bool = True  # background workers (outbound, media, channel connections)
    # How often a node looks for channels to run and proves it still holds its leases;
    # also the longest a dead node's channels wait for a takeover (plus one pass).
    gateway_lease_interval: float = Field(default=2.0, gt=0)
    # Fernet keys for channel secrets at rest, comma-separated: the first seals, all open
    # (gateway/secret_box.py). Unset: generated into the data dir, embedded database only.
    gateway_secret_key: SecretStr | None = None
    # Hosts a WhatsApp media URL may point at for the access token to go with it
    # (comma-separated; "*.example.com" matches subdomains). WHATSAPP_API_BASE's host is always allowed.
    whatsapp_media_hosts: str = "lookaside.fbsbx.com,*.fbsbx.com,*.whatsapp.net"
    # The only directory Asterisk recordings are read from (unset: never read,
    # linked as metadata only); provider data never names a path outside it.
    gateway_recordings_dir: Path | None = None
    # Where channel settings may point (AMI hosts): comma-separated CIDRs and host
    # names; empty allows any (self-hosted PBXs live on private networks).
    gateway_channel_allowed_networks: str = ""

    @field_validator("gateway_recordings_dir", mode="before")
    @classmethod
    def _empty_dir_is_unset(cls, value: object) -> object:
        return value or None

    @field_validator("gateway_channel_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        NetworkPolicy.parse(value)  # a typo fails at start, not at the first connect
        return value

    @field_validator("database_url", "redis_url")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("gateway_secret_key")
    @classmethod
    def _empty_key_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value().strip() else None

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

    @field_validator("gateway_log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value.lower() not in ("text", "json"):
            raise ValueError("must be text or json")
        return value.lower()

    @property
    def channel_networks(self) -> NetworkPolicy:
        return NetworkPolicy.parse(self.gateway_channel_allowed_networks)

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
