"""Database engine, sessions and migrations (SQLAlchemy 2 async + Alembic)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bot import sqlite_inline

MIGRATIONS = Path(__file__).parent / "migrations"


def create_engine(url: str) -> AsyncEngine:
    """An async engine; for SQLite the folder is created and WAL + foreign keys are on."""
    parsed = make_url(url)
    kwargs: dict[str, object] = {}
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        if db and db != ":memory:":
            # Statements run on the event loop, not in aiosqlite's thread (see sqlite_inline).
            kwargs["async_creator"] = sqlite_inline.connector(db, uri=db.startswith("file:"))
        else:
            kwargs["connect_args"] = {"timeout": 30}
        # One connection: SQLite allows one writer anyway, and waiting for the pool is an
        # asyncio wait, whereas waiting on SQLite's lock sleeps in a thread (seconds under load).
        kwargs.update(pool_size=1, max_overflow=0, pool_timeout=60)
    else:
        kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # Inline connections wait for another process's lock in asyncio (sqlite_inline).
            busy_ms = sqlite_inline.LOCK_POLL_MS if "async_creator" in kwargs else 30000
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.execute("PRAGMA synchronous=NORMAL")  # WAL keeps it safe; a fsync per commit is not needed
            cur.close()

    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def _alembic_config(connection: Connection | None = None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection), revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema up to date (Alembic migrations, the only way tables are made)."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Several instances may start at once: one migrates, the others wait.
            from sqlalchemy import text

            await conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
        await conn.run_sync(_upgrade, revision)


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)
