"""Deployment settings and secrets, from environment variables, in one typed object."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.config import BUNDLED_EXAMPLE, ConfigError
from bot.ratelimit import SendLimits

TELEGRAM_API = "https://api.telegram.org"
# What Telegram accepts as a webhook's secret_token (Bot API, setWebhook).
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


class Settings(BaseSettings):
    """What differs between deployments: where Telegram, the database and the configuration are."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    telegram_bot_token: SecretStr | None = None
    telegram_base_url: str = TELEGRAM_API
    """A Bot API server: Telegram's own, a self-hosted one, or a test fake."""
    database_url: str = "sqlite+aiosqlite:///./consultbot.db"
    config_path: Path = Field(default=BUNDLED_EXAMPLE, validation_alias="CONSULTBOT_CONFIG")
    log_level: str = "INFO"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    """The bot's own HTTP server (experts' calendar feeds); 0 picks a free port."""
    telegram_messages_per_second: float = Field(default=30, gt=0)
    """Messages the bot sends a second in all: Telegram's limit for a bot without paid broadcasts."""
    telegram_group_messages_per_minute: float = Field(default=20, gt=0)
    """Messages a minute to one group, supergroup or channel (the sales chat): Telegram's limit."""
    telegram_chat_messages_per_second: float = Field(default=1, gt=0)
    """Messages a second to one private chat, on average over three seconds: about Telegram's limit."""
    public_url: str | None = None
    """Where that server is reached from outside, e.g. https://bot.example.com; feed links are built on it."""
    webhook_url: str | None = None
    """Set: Telegram posts updates to this https URL (served on the path of it) instead of being polled."""
    webhook_secret: SecretStr | None = Field(default=None, validate_default=True)
    """Telegram sends it in X-Telegram-Bot-Api-Secret-Token with every update; required with WEBHOOK_URL."""
    log_format: Literal["text", "json"] = "text"
    shutdown_grace_seconds: float = Field(default=20.0, gt=0)
    """On SIGTERM, how long the updates in hand may take to finish before the process exits anyway."""
    update_lease_seconds: float = Field(default=60.0, gt=0)
    """How long a replica that claimed an update has to handle it before another may (bot/update_ledger.py)."""

    @field_validator("webhook_url")
    @classmethod
    def _https_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError("must start with https:// (Telegram posts updates only over TLS)")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_with_webhook(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # The value itself never goes into a message: it is a secret.
        if value is None:
            if info.data.get("webhook_url"):
                raise ValueError("is not set; WEBHOOK_URL needs a secret token that Telegram sends back")
            return None
        if not _WEBHOOK_SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("must be 1 to 256 characters, each a letter, digit, _ or -")
        return value

    @property
    def webhook_path(self) -> str:
        """The path Telegram posts to on the bot's HTTP server, from WEBHOOK_URL."""
        return urlsplit(self.webhook_url or "").path or "/"

    @field_validator("public_url")
    @classmethod
    def _public_http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return None if value is None else value.rstrip("/")

    @property
    def feed_base_url(self) -> str:
        """The base of experts' feed URLs: the public URL, or the local server's address."""
        return self.public_url or f"http://{self.http_host}:{self.http_port}"

    @field_validator("telegram_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        # People paste the URL their other tools use; map the plain schemes to the async drivers.
        for plain, driver in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if value.startswith(plain):
                return driver + value.removeprefix(plain)
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        return value

    @property
    def bot_api_base_url(self) -> str:
        """The base URL python-telegram-bot appends the token and method to."""
        base = self.telegram_base_url
        return base if base.endswith("/bot") else f"{base}/bot"

    @property
    def bot_api_file_url(self) -> str:
        """The base URL for downloading files from the same Bot API server."""
        return self.bot_api_base_url.removesuffix("/bot") + "/file/bot"

    @property
    def send_limits(self) -> SendLimits:
        """How fast the bot may send messages, as the Telegram limiter takes it."""
        return SendLimits.per_second(
            overall=self.telegram_messages_per_second,
            group_per_minute=self.telegram_group_messages_per_minute,
            private=self.telegram_chat_messages_per_second,
        )

    def require_token(self) -> str:
        """The bot token, or a ConfigError saying it is missing."""
        if self.telegram_bot_token is None or not self.telegram_bot_token.get_secret_value().strip():
            raise ConfigError("the environment", [("TELEGRAM_BOT_TOKEN", "is not set; `run` needs the bot's token")])
        return self.telegram_bot_token.get_secret_value().strip()


def load_settings() -> Settings:
    """Read the environment; raise ConfigError naming the variable and the problem."""
    try:
        return Settings()
    except ValidationError as error:
        problems = [(_variable(e["loc"]), e["msg"].removeprefix("Value error, ")) for e in error.errors()]
        raise ConfigError("the environment", problems) from None


def _variable(location: tuple[str | int, ...]) -> str:
    name = str(location[0]) if location else "?"
    return "CONSULTBOT_CONFIG" if name == "config_path" else name.upper()
