"""Process settings, read from ``ROUNDHOUSE_*`` environment variables and flags."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .bounds import Bounds

__all__ = ["Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROUNDHOUSE_", frozen=True, extra="ignore")

    host: str = Field(
        default="127.0.0.1",
        description="Address to bind. The default keeps the gateway on this machine.",
    )
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    config: Path = Field(
        default=Path("configs/default.yaml"), description="The model registry (YAML)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Log level of the gateway and its engines."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description=(
            "`text`: one readable line per record, the request id in brackets. `json`: one "
            "JSON object per line (time, level, logger, message, request_id), for log "
            "collectors. See docs/operations.md."
        ),
    )
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024,
        gt=0,
        description="Largest request body accepted; larger ones get 413.",
    )
    max_header_bytes: int = Field(
        default=32 * 1024,
        gt=0,
        description="Largest total size of a request's headers; larger ones get 431.",
    )
    body_timeout: float = Field(
        default=30.0,
        gt=0,
        allow_inf_nan=False,
        description=(
            "Seconds a client has to send its whole request body once the request has "
            "begun; a slower one (a slowloris trickle) gets 408 and the connection closes."
        ),
    )
    max_messages: int = Field(
        default=2048, gt=0, description="Most messages in one chat request; more get 400."
    )
    max_stop: int = Field(
        default=64, gt=0, description="Most stop strings in one request; more get 400."
    )
    max_tools: int = Field(
        default=128, gt=0, description="Most tools in one request (OpenAI's own limit)."
    )
    max_items: int = Field(
        default=16384,
        gt=0,
        description="Most items in one array of inputs: embedding inputs, token ids to detokenize.",
    )
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        default=(),
        description=(
            "Comma-separated bearer keys. When set, every API request needs "
            "`Authorization: Bearer <key>`; /health stays open."
        ),
    )

    basic_auth: SecretStr | None = Field(
        default=None,
        description=(
            "`user:pass` for HTTP Basic authentication, as SakuraLLM's server.py --auth took "
            "it. When set, every API request needs it or a bearer key from api_keys; clients "
            "put it in the URL (http://user:pass@host:port/v1). /health stays open."
        ),
    )

    keys_file: Path | None = Field(
        default=None,
        description=(
            "A YAML file of named keys, stored as SHA-256 hashes, each with its allowed "
            "models, rpm, tpm, max_parallel, token budget and admin flag (docs/security.md). "
            "Beside api_keys, which are keys with no limits."
        ),
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description=(
            "redis://host:port/db where keys' limits and usage live, shared by every "
            "replica that names the same one. Unset: each process keeps its own."
        ),
    )
    limits_on_failure: Literal["open", "closed"] = Field(
        default="open",
        description=(
            "When Redis cannot be reached: `open` lets keyed requests through without "
            "limits, `closed` refuses them with 503. Either way /health and the log say so."
        ),
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description=(
            "Comma-separated origins allowed to call from a browser (CORS), or `*`. "
            "Empty (the default): no CORS headers, browsers refuse cross-origin calls."
        ),
    )
    shutdown_grace: float = Field(
        default=30.0,
        ge=0,
        allow_inf_nan=False,
        description=(
            "Seconds SIGTERM/SIGINT waits for requests in flight, streams included, to "
            "finish before they are cut and the engines closed anyway. New connections are "
            "refused from the signal on. 0 cuts them at once."
        ),
    )
    admin_key: SecretStr | None = Field(
        default=None,
        description=(
            "The key of the /admin API (`Authorization: Bearer <key>`), separate from "
            "api_keys. Unset, the admin API is off: its routes are absent."
        ),
    )

    def bounds(self) -> Bounds:
        return Bounds(
            max_messages=self.max_messages,
            max_stop=self.max_stop,
            max_tools=self.max_tools,
            max_items=self.max_items,
        )

    @field_validator("basic_auth")
    @classmethod
    def _check_basic(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            user, sep, _ = value.get_secret_value().partition(":")
            if not sep or not user:
                raise ValueError("must be user:pass")
        return value

    @field_validator("admin_key")
    @classmethod
    def _check_admin(cls, value: SecretStr | None) -> SecretStr | None:
        # `ROUNDHOUSE_ADMIN_KEY=` would otherwise turn the admin API on behind an empty key.
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty; unset it to turn the admin API off")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(o.strip() for o in value.split(",") if o.strip())
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(k.strip() for k in value.split(",") if k.strip())
        return value
