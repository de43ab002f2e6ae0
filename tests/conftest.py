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


# --- Redis (TEST_REDIS_URL): tests that need it are skipped without it -----------------------


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("TEST_REDIS_URL not set")
    return url


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards (nothing else is touched)."""
    from redis.asyncio import Redis

    prefix = "hotline-test-" + uuid.uuid4().hex[:10]
    yield prefix
    client = Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + ":*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
