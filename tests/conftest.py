"""Shared fixtures: a fresh database per test (SQLite by default, PostgreSQL if TEST_DATABASE_URL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.runtime import Runtime, create_runtime
from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _pg_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL")


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'hotline.db'}"


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(_env_file=None, database_url=db_url, bot_token=None)  # type: ignore[call-arg]


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = await create_runtime(settings)
    try:
        yield rt
    finally:
        await rt.close()


def unique_schema() -> str:
    return "t_" + uuid.uuid4().hex[:12]
