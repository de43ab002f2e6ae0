"""Shared fixtures: a fresh database per test, and the backend matrix.

Every test that uses ``db_url`` (directly or through ``settings`` / ``runtime``) runs on SQLite.
A module or test marked ``@pytest.mark.postgres`` runs again on PostgreSQL when
``TEST_DATABASE_URL`` is set (``.ci/run`` sets it when the server answers): each such test gets
its own database, copied from a template that was migrated and seeded once per session, and
dropped afterwards. Redis tests use ``redis_url`` / ``redis_prefix`` and are skipped without
``TEST_REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.runtime import Runtime, create_runtime
from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PG_ENV = "TEST_DATABASE_URL"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "postgres: also run on PostgreSQL (own database per test) when TEST_DATABASE_URL is set"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_backend" not in metafunc.fixturenames:
        return
    if os.environ.get(PG_ENV) and metafunc.definition.get_closest_marker("postgres"):
        metafunc.parametrize("db_backend", ["sqlite", "postgresql"])


@pytest.fixture
def db_backend() -> str:
    """"sqlite", or "postgresql" for the second run of a test marked ``postgres``."""
    return "sqlite"


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def _with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def _pg_admin(url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    """A migrated, seeded PostgreSQL database that tests copy (CREATE DATABASE … TEMPLATE)."""
    url = os.environ.get(PG_ENV)
    if not url:
        yield None
        return
    name = "hotline_tpl_" + uuid.uuid4().hex[:10]

    async def build() -> None:
        await _pg_admin(url, f'CREATE DATABASE "{name}"')
        settings = Settings(_env_file=None, database_url=_with_database(url, name), bot_token=None)  # type: ignore[call-arg]
        rt = await create_runtime(settings)
        await rt.close()  # no connection may stay open on a template

    asyncio.run(build())
    try:
        yield name
    finally:
        asyncio.run(_pg_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def db_url(db_backend: str, tmp_path: Path, pg_template: str | None) -> AsyncIterator[str]:
    if db_backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'hotline.db'}"
        return
    url = os.environ[PG_ENV]
    assert pg_template is not None
    name = "hotline_t_" + uuid.uuid4().hex[:10]
    await _pg_admin(url, f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    try:
        yield _with_database(url, name)
    finally:
        # FORCE: a connection a test left open must not keep the database alive.
        await _pg_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


@pytest.fixture(scope="session")
def seeded_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated, seeded SQLite database per session, for ``seeded_runtime`` to copy."""
    path = tmp_path_factory.mktemp("template") / "hotline.db"

    async def build() -> None:
        rt = await create_runtime(
            Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{path}", bot_token=None)  # type: ignore[call-arg]
        )
        await rt.close()

    asyncio.run(build())
    return path


@pytest.fixture
async def seeded_runtime(settings: Settings, seeded_sqlite: Path, tmp_path: Path) -> AsyncIterator[Runtime]:
    """Like ``runtime``, from a copy of the seeded template (seeding each test is slow); a module
    uses it with ``runtime = seeded_runtime``-style override. PostgreSQL copies its own template."""
    for suffix in ("", "-wal", "-shm"):
        src = seeded_sqlite.with_name(seeded_sqlite.name + suffix)
        if src.exists():
            shutil.copy(src, tmp_path / ("hotline.db" + suffix))
    rt = await create_runtime(settings)
    try:
        yield rt
    finally:
        await rt.close()


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
