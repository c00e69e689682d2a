"""Request bodies of the REST API (DESIGN §6).

Channel bodies are validated per type: ``config`` and ``secrets`` are checked
against the model of the channel's type, so a WhatsApp channel without an
``app_secret`` is refused before anything is stored. Unknown config keys are
kept (adapters may read optional extras); unknown secret keys are refused, so a
typo never leaves a required credential silently missing.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schema.enums import ApiKeyRole, ChannelType, ConversationStatus
from schema.text import compile_linear, line_safe

_NAME = Field(min_length=1, max_length=200)
_SECRET = Field(min_length=1, max_length=4096)


def _unstorable(value: Any, path: str = "") -> str | None:
    """Where ``value`` holds what PostgreSQL text/jsonb cannot store (U+0000, NaN,
    Infinity — Python's JSON parser accepts both), else None."""
    if isinstance(value, str):
        return f"{path or 'body'}: NUL characters (U+0000) are not allowed" if "\x00" in value else None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path or 'body'}: numbers must be finite"
    items: Any = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        where = f"{path}.{key}" if path else str(key)
        if "\x00" in str(key):
            return f"{where}: NUL characters (U+0000) are not allowed"
        if (problem := _unstorable(item, where)) is not None:
            return problem
    return None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        # Refused here (422) rather than by the database (500).
        problem = _unstorable(data)
        if problem is not None:
            raise ValueError(problem)
        return data


class _Config(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)


class _Secrets(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- per-type channel config and secrets -------------------------------------------------------


class WhatsAppConfig(_Config):
    phone_number_id: str = Field(min_length=1, max_length=64, pattern=r"^\d+$")


class WhatsAppSecrets(_Secrets):
    access_token: str = _SECRET
    app_secret: str = _SECRET
    verify_token: str = _SECRET


class TelegramConfig(_Config):
    mode: Literal["webhook", "polling"] = "webhook"
    public_url: str | None = Field(default=None, max_length=2000)

    @field_validator("public_url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an absolute http(s) URL such as https://inbox.example.com")
        return value.rstrip("/")


class TelegramSecrets(_Secrets):
    bot_token: str = Field(min_length=1, max_length=200, pattern=r"^\d+:[A-Za-z0-9_-]+$")
    # Required in webhook mode: Telegram echoes it in X-Telegram-Bot-Api-Secret-Token.
    webhook_secret: str | None = Field(default=None, min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_-]+$")


class AsteriskConfig(_Config):
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(default=5038, ge=1, le=65535)
    username: str = Field(min_length=1, max_length=200)
    inbound_contexts: list[str] = Field(default_factory=list)
    agent_pattern: str = Field(default=r"PJSIP/\d+", min_length=1, max_length=500)

    @model_validator(mode="before")
    @classmethod
    def _one_line_values(cls, data: Any) -> Any:
        # Every value (extras too) may be written on an AMI line: CR/LF would inject actions.
        _line_safe_all(data, "config")
        return data

    @field_validator("agent_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        # RE2: matched on the shared event loop, so no pattern may backtrack exponentially.
        compile_linear(value, "agent_pattern")
        return value


class AsteriskSecrets(_Secrets):
    secret: str = _SECRET

    @field_validator("secret")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return line_safe(value, "secret")


def _line_safe_all(value: Any, where: str) -> None:
    if isinstance(value, str):
        line_safe(value, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            _line_safe_all(item, f"{where}.{key}")
    elif isinstance(value, list):
        for item in value:
            _line_safe_all(item, where)


CONFIG_MODELS: dict[ChannelType, type[_Config]] = {
    ChannelType.WHATSAPP: WhatsAppConfig,
    ChannelType.TELEGRAM: TelegramConfig,
    ChannelType.ASTERISK: AsteriskConfig,
}
SECRETS_MODELS: dict[ChannelType, type[_Secrets]] = {
    ChannelType.WHATSAPP: WhatsAppSecrets,
    ChannelType.TELEGRAM: TelegramSecrets,
    ChannelType.ASTERISK: AsteriskSecrets,
}


def _check(model: type[BaseModel], where: str, data: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # One line naming each bad field by its full path: "config.phone_number_id: Field required".
        parts = [f"{'.'.join(str(p) for p in (where, *err['loc']))}: {err['msg']}" for err in exc.errors()]
        raise ValueError("; ".join(parts)) from None


def validate_channel_settings(
    type_: ChannelType, config: dict[str, Any], secrets: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check ``config``/``secrets`` for a channel of ``type_``; return them normalised.

    Raises ``ValueError`` with a one-line message naming the bad fields.
    """
    cfg = _check(CONFIG_MODELS[type_], "config", config)
    sec = _check(SECRETS_MODELS[type_], "secrets", secrets)
    webhook = isinstance(cfg, TelegramConfig) and cfg.mode == "webhook"
    if webhook and isinstance(sec, TelegramSecrets) and not sec.webhook_secret:
        raise ValueError("secrets.webhook_secret: required in webhook mode (Telegram sends it back on every call)")
    return cfg.model_dump(mode="json"), sec.model_dump(mode="json", exclude_none=True)


def _per_type_schema(schema: dict[str, Any]) -> None:
    """The body's JSON schema names what each channel type needs in ``config`` and ``secrets``
    (the models above), so /openapi.json documents the per-type validation ``_fits_type`` does."""
    variants = []
    for type_, config_model in CONFIG_MODELS.items():
        secrets_model = SECRETS_MODELS[type_]
        config = config_model.model_json_schema()
        variant: dict[str, Any] = {
            "title": f"{type_.value} channel",
            "properties": {"type": {"const": type_.value}, "config": config,
                           "secrets": secrets_model.model_json_schema()},
            "required": ["type", "secrets"] + (["config"] if config.get("required") else []),
        }
        if type_ == ChannelType.TELEGRAM:
            # Webhook mode (the default) needs the secret Telegram echoes back.
            variant["anyOf"] = [
                {"properties": {"config": {"required": ["mode"], "properties": {"mode": {"const": "polling"}}}},
                 "required": ["config"]},
                {"properties": {"secrets": {"required": ["webhook_secret"]}}},
            ]
        variants.append(variant)
    schema["oneOf"] = variants


def _never_null(*names: str) -> Any:
    """Fields that may be left out but not sent as null: their schema drops the null branch."""

    def edit(schema: dict[str, Any]) -> None:
        for name in names:
            prop = schema["properties"][name]
            branches = [b for b in prop.pop("anyOf", []) if b.get("type") != "null"]
            if len(branches) == 1:
                prop.update(branches[0])
            prop.pop("default", None)

    return edit


class ChannelCreate(_Body):
    model_config = ConfigDict(json_schema_extra=_per_type_schema)

    type: ChannelType
    name: str = _NAME
    config: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fits_type(self) -> ChannelCreate:
        self.config, self.secrets = validate_channel_settings(self.type, self.config, self.secrets)
        return self


class ChannelUpdate(_Body):
    """A partial update: ``config`` and ``secrets`` are merged into what is stored,
    so one secret can be rotated without sending the others again."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    config: dict[str, Any] | None = None
    secrets: dict[str, Any] | None = None


def merge_channel_settings(
    type_: ChannelType,
    stored_config: dict[str, Any],
    stored_secrets: dict[str, Any],
    update: ChannelUpdate,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config and secrets a PATCH would leave, validated as a whole.

    A ``null`` value in ``config``/``secrets`` removes that key.
    """
    config = dict(stored_config)
    secrets = dict(stored_secrets)
    for target, patch in ((config, update.config), (secrets, update.secrets)):
        for key, value in (patch or {}).items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
    return validate_channel_settings(type_, config, secrets)


# --- conversations and messages -----------------------------------------------------------------


def _patch_schema(schema: dict[str, Any]) -> None:
    _never_null("status", "unread_count")(schema)
    schema["minProperties"] = 1  # an empty patch is refused


class ConversationPatch(_Body):
    """``assignee: null`` unassigns; a field left out is left alone.
    ``unread_count`` may only be set to 0 (mark as read)."""

    model_config = ConfigDict(json_schema_extra=_patch_schema)

    status: ConversationStatus | None = None
    assignee: str | None = Field(default=None, max_length=200)
    unread_count: Literal[0] | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> ConversationPatch:
        if not self.model_fields_set:
            raise ValueError("nothing to change: send status, assignee or unread_count")
        if "status" in self.model_fields_set and self.status is None:
            raise ValueError("status cannot be null")
        if "unread_count" in self.model_fields_set and self.unread_count is None:
            raise ValueError("unread_count cannot be null")
        return self

    @field_validator("assignee")
    @classmethod
    def _blank_is_unassigned(cls, value: str | None) -> str | None:
        return value or None


class MessageCreate(_Body):
    # 4096 characters is the text limit of both WhatsApp and Telegram.
    text: str = Field(min_length=1, max_length=4096)
    reply_to_id: int | None = Field(default=None, ge=1, le=2**63 - 1)


class ApiKeyCreate(_Body):
    name: str = Field(default="", max_length=200)
    role: ApiKeyRole = ApiKeyRole.AGENT
