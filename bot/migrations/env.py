"""Alembic environment: runs on a connection handed over by bot.db.upgrade, or on DATABASE_URL."""

from __future__ import annotations

import asyncio

from alembic import context

from bot.models import Base

target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from bot.db import create_engine
    from bot.settings import Settings

    async def go() -> None:
        engine = create_engine(Settings().database_url)
        async with engine.begin() as conn:
            await conn.run_sync(_run)
        await engine.dispose()

    asyncio.run(go())


run_migrations_online()
