"""SQLite for the async engine without a thread hop per call.

SQLAlchemy's ``aiosqlite`` dialect sends every DB-API call (cursor, execute, fetch, close,
commit) to aiosqlite's worker thread and back: about 20 thread hops per citizen message, which
was most of the bot's time per update (benchmarks/bench_bot.py). A statement on the local SQLite
file takes microseconds, less than one hop, so this connection runs ``sqlite3`` directly on the
event loop and plugs into the same dialect through ``create_async_engine(async_creator=...)``.

The one thing that could stall the loop is another process holding SQLite's write lock (a CLI
import, the web panel in its own process). So SQLite's own busy wait is kept short and the wait
for the lock happens here, with ``asyncio.sleep``, up to ``busy_seconds``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

LOCK_POLL_MS = 20  # SQLite's own busy wait per attempt; beyond it we yield to the event loop


def _locked(exc: sqlite3.OperationalError) -> bool:
    msg = str(exc).lower()
    return "locked" in msg or "busy" in msg


async def _retry_locked(call: Callable[[], Any], busy_seconds: float) -> Any:
    deadline = time.monotonic() + busy_seconds
    delay = 0.005
    while True:
        try:
            return call()
        except sqlite3.OperationalError as exc:
            if not _locked(exc) or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)


class InlineCursor:
    """The subset of aiosqlite's cursor that SQLAlchemy's adapter uses."""

    def __init__(self, conn: InlineConnection) -> None:
        self._conn = conn
        self._cursor = conn._connection.cursor()

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> InlineCursor:
        await _retry_locked(lambda: self._cursor.execute(sql, parameters), self._conn.busy_seconds)
        return self

    async def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> InlineCursor:
        rows = list(seq)  # a generator could not be replayed after a busy retry
        await _retry_locked(lambda: self._cursor.executemany(sql, rows), self._conn.busy_seconds)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class _Immediate:
    """Stands in for aiosqlite's request queue (used by the dialect's isolation-level setter)."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:  # handed to the awaiting caller, as aiosqlite does
            future.set_exception(exc)


class InlineConnection:
    """The subset of ``aiosqlite.Connection`` that SQLAlchemy's aiosqlite dialect uses."""

    def __init__(self, connection: sqlite3.Connection, busy_seconds: float) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._conn = connection
        self._tx = _Immediate()
        self.busy_seconds = busy_seconds

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self)

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> InlineCursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        await _retry_locked(self._conn.commit, self.busy_seconds)

    async def rollback(self) -> None:
        self._conn.rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def close(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()


def connector(database: str, *, busy_seconds: float = 30.0, uri: bool = False) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine``: opens the file on the event loop thread."""

    async def connect() -> InlineConnection:
        conn = sqlite3.connect(
            database,
            timeout=LOCK_POLL_MS / 1000,
            isolation_level="",  # DB-API implicit transactions, as the dialect expects
            check_same_thread=False,  # created and used on the loop thread; closed by the pool
            uri=uri,
        )
        return InlineConnection(conn, busy_seconds)

    return connect
