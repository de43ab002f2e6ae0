"""Settings from the environment (and a .env file). One object, passed to the factories."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/hotline.db"
DEFAULT_API_URL = "https://api.telegram.org"
NOT_PUBLISHED = "请以民政局公布为准"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: str | None = None
    telegram_api_url: str = DEFAULT_API_URL
    database_url: str = DEFAULT_DATABASE_URL
    staff_chat_id: int | None = None
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    office_hours: str = "Mon-Fri 08:30-12:00,14:30-18:00"
    timezone: str = "Asia/Shanghai"
    log_level: str = "INFO"
    log_format: str = "plain"
    locale: str = "zh"

    # Facts the 2018 report does not state: an administrator fills them in. Until then the
    # answers say NOT_PUBLISHED instead of an invented value.
    bureau_address: str | None = None
    bureau_phone: str | None = None
    bureau_hours: str | None = None
    bureau_fax: str | None = None
    bureau_email: str | None = None
    dibao_standard_urban: str | None = None
    dibao_standard_rural: str | None = None

    # Matcher thresholds (see README, "Tuning the decisions").
    match_answer: float = 0.45
    match_clarify: float = 0.25
    match_margin: float = 0.06

    # Escalations
    reminder_working_hours: float = 4.0
    flood_messages_per_minute: int = 20
    kb_refresh_seconds: float = 3.0
    # Personal data: closed tickets, old questions and idle citizens are anonymised after this
    # many days by a daily job (README "Personal data"); 0 turns the anonymisation off.
    retention_days: int = Field(default=180, ge=0)
    # When the staff group gets last week's report (PNG chart + CSV), in TIMEZONE; empty: never.
    report_schedule: str = "Mon 09:00"
    # Telegram's limits (about 30 messages a second overall, 1 a second per chat). Raise only
    # for a self-hosted test API, e.g. in benchmarks.
    send_rate_per_second: float = 30.0
    send_rate_per_chat: float = 1.0
    send_rate_per_group_minute: float = 20.0  # the staff group: about 20 messages a minute

    # Web panel / webhook / several instances
    web_host: str | None = None
    # Unset: the bot process does not serve the panel; `main.py web` then listens on 8080.
    web_port: int | None = None
    # Where admins reach the panel; one-time sign-in links start with it. https → Secure cookies.
    web_base_url: str = "http://127.0.0.1:8080"
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_host: str = "0.0.0.0"
    webhook_port: int = 8443
    redis_url: str | None = None
    redis_prefix: str = "hotline"  # every Redis key and channel starts with it
    # Several instances: how long a chat's update lock (Redis) and a batch of outbox messages being
    # sent stay claimed by one instance; an instance that dies leaves its claims, and the others take
    # them over after this long. Must exceed the slowest update and send (Bot API timeout: 60 s).
    lease_seconds: float = Field(default=60.0, gt=0)
    # /healthz /readyz /metrics: on the webhook server, or (polling) on this port when set.
    health_host: str = "0.0.0.0"
    health_port: int | None = None

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
            return [int(p) for p in parts]
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("web_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ("plain", "json"):
            raise ValueError("must be plain or json")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.upper()
        if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value

    @field_validator("office_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        from bot.office_hours import OfficeHours

        OfficeHours.parse(value)  # raises ValueError with a readable message
        return value

    @field_validator("report_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        from bot.report_delivery import Schedule

        if value.strip():
            Schedule.parse(value)  # raises ValueError with a readable message
        return value

    def bureau_facts(self) -> dict[str, str]:
        """Values for the answer placeholders ({bureau_address} …)."""
        keys = (
            "bureau_address",
            "bureau_phone",
            "bureau_hours",
            "bureau_fax",
            "bureau_email",
            "dibao_standard_urban",
            "dibao_standard_rural",
        )
        return {k: (getattr(self, k) or NOT_PUBLISHED) for k in keys}


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it in one line."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]).upper() if err.get("loc") else "?"
        raise SettingsError(f"setting {name} is invalid: {err['msg']}") from None
    except ValueError as exc:  # pydantic-settings raises this for undecodable values
        raise SettingsError(f"settings are invalid: {exc}") from None
