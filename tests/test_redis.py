"""Redis shared by several instances: FSM storage and per-chat isolation, the flood limit counted
across instances, and knowledge announcements. Skipped without TEST_REDIS_URL."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.redis import RedisStorage
from redis.asyncio import Redis

from bot import kb_store
from bot.app import HotlineApp, create_app
from bot.redis_support import KnowledgeNotifier, RedisRateLimiter, event_isolation, fsm_storage
from bot.runtime import create_runtime
from bot.settings import Settings
from handlers.middlewares import MemoryRateLimiter
from tests.harness import app_settings, eventually
from tests.procs import free_port, post_update

try:
    from tests.fake_telegram import FakeTelegram
except ImportError:  # pragma: no cover
    from fake_telegram import FakeTelegram

pytestmark = pytest.mark.postgres  # the tests with a database run again on PostgreSQL (conftest)

SECRET = "redis-test-secret"
CITIZEN = 5001


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[tuple[Redis, Redis]]:
    """Two clients, as two instances have."""
    a, b = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        yield a, b
    finally:
        await a.aclose()
        await b.aclose()


# --- flood limiter -----------------------------------------------------------------------------


async def _pattern(limiter: Any, key: int, n: int) -> list[tuple[bool, bool]]:
    return [await limiter.hit(key) for _ in range(n)]


async def test_redis_limiter_behaves_like_the_memory_one(
    clients: tuple[Redis, Redis], redis_prefix: str
) -> None:
    redis_limiter = RedisRateLimiter(clients[0], 3, redis_prefix)
    expected = await _pattern(MemoryRateLimiter(3), 7, 6)
    assert expected == [(True, False)] * 3 + [(False, True), (False, False), (False, False)]
    assert await _pattern(redis_limiter, 7, 6) == expected
    assert await redis_limiter.hit(8) == (True, False)  # another citizen is not affected


async def test_flood_limit_is_counted_across_instances(
    clients: tuple[Redis, Redis], redis_prefix: str
) -> None:
    a, b = (RedisRateLimiter(c, 4, redis_prefix) for c in clients)
    results = [await (a if i % 2 else b).hit(42) for i in range(6)]
    assert [allowed for allowed, _ in results] == [True] * 4 + [False] * 2
    assert [warn for _, warn in results].count(True) == 1  # one notice, whichever instance


async def test_limiter_lets_citizens_through_when_redis_is_away(redis_prefix: str) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        assert await RedisRateLimiter(dead, 1, redis_prefix).hit(1) == (True, False)
    finally:
        await dead.aclose()


# --- FSM storage and isolation -----------------------------------------------------------------


async def test_fsm_state_set_on_one_instance_is_seen_on_the_other(
    clients: tuple[Redis, Redis], redis_prefix: str
) -> None:
    a, b = (fsm_storage(c, redis_prefix) for c in clients)
    assert isinstance(a, RedisStorage)
    key = StorageKey(bot_id=1, chat_id=-100, user_id=900001)
    await a.set_state(key, "Edit:answer")
    await a.set_data(key, {"entry": "dibao-apply"})
    assert await b.get_state(key) == "Edit:answer"
    assert await b.get_data(key) == {"entry": "dibao-apply"}
    await a.close()  # the dispatcher closing its storage leaves the shared client usable
    assert await clients[0].ping()


async def test_one_update_at_a_time_per_chat_across_instances(
    clients: tuple[Redis, Redis], redis_prefix: str
) -> None:
    a, b = (event_isolation(c, redis_prefix) for c in clients)
    key = StorageKey(bot_id=1, chat_id=CITIZEN, user_id=CITIZEN)
    order: list[str] = []
    a_inside = asyncio.Event()

    async def on_b() -> None:
        await a_inside.wait()
        async with b.lock(key):
            order.append("b")

    task = asyncio.create_task(on_b())
    async with a.lock(key):
        a_inside.set()
        order.append("a in")
        for _ in range(5):  # give b every chance to get in while a holds the chat
            await asyncio.sleep(0.05)
        order.append("a out")
    await task
    assert order == ["a in", "a out", "b"]


# --- knowledge announcements -------------------------------------------------------------------


def _settings(db_url: str, redis_url: str, prefix: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=db_url, redis_url=redis_url, redis_prefix=prefix
    )


async def test_a_publish_on_one_instance_is_served_by_the_other_at_once(
    db_url: str, redis_url: str, redis_prefix: str
) -> None:
    a = await create_runtime(_settings(db_url, redis_url, redis_prefix))
    b = await create_runtime(_settings(db_url, redis_url, redis_prefix))
    assert b.notifier is not None
    subscribed = asyncio.Event()
    listener = asyncio.create_task(
        b.notifier.listen(lambda: b.knowledge.refresh_if_changed(announce=False), subscribed)
    )
    try:
        await subscribed.wait()
        entry = a.knowledge.match("低保怎么申请").entry
        assert entry is not None
        async with a.sf() as session:
            changed = dataclasses.replace(entry, answer="新的答复：请到乡镇人民政府申请。")
            await kb_store.add_revision(session, changed, author="admin", note="test", state="published")
            await session.commit()
        # What an admin handler or the web panel does after publishing; b runs no poller here.
        assert await a.knowledge.refresh_if_changed()
        await eventually(lambda: b.knowledge.version == a.knowledge.version)
        assert b.knowledge.match("低保怎么申请").entry.answer.startswith("新的答复")
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await a.close()
        await b.close()


async def test_the_listener_survives_redis_going_away(redis_prefix: str) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    calls: list[int] = []

    async def refresh() -> None:
        calls.append(1)

    listener = asyncio.create_task(KnowledgeNotifier(dead, redis_prefix).listen(refresh))
    await asyncio.sleep(0.5)
    assert not listener.done()  # retrying, not crashed
    listener.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await listener
    await dead.aclose()
    await KnowledgeNotifier(dead, redis_prefix).publish(3)  # best effort: no exception


# --- two bot instances in webhook mode ---------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token="123456:TEST-TOKEN") as fake:
        yield fake


class Instance:
    def __init__(self, app: HotlineApp, base: str, task: asyncio.Task[None], stop: asyncio.Event) -> None:
        self.app, self.base, self.task, self.stop = app, base, task, stop


@pytest.fixture
async def two(
    server: FakeTelegram, db_url: str, redis_url: str, redis_prefix: str
) -> AsyncIterator[list[Instance]]:
    instances: list[Instance] = []
    for _ in range(2):
        port = free_port()
        settings = app_settings(
            db_url,
            server.url,
            webhook_url=f"http://127.0.0.1:{port}/hook",
            webhook_secret=SECRET,
            webhook_host="127.0.0.1",
            webhook_port=port,
            redis_url=redis_url,
            redis_prefix=redis_prefix,
            flood_messages_per_minute=3,
            kb_refresh_seconds=3600,  # only the announcement can refresh within the test
        )
        app = await create_app(settings)
        app.sender.poll_interval = 0.1
        stop = asyncio.Event()
        task = asyncio.create_task(app.run_webhook(stop))
        instances.append(Instance(app, f"http://127.0.0.1:{port}/hook", task, stop))
        await server.wait_for(method="setWebhook", timeout=20)
        server.sent.clear()
    try:
        yield instances
    finally:
        for inst in instances:
            inst.stop.set()
        for inst in instances:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(inst.task, 20)


async def test_two_instances_share_the_flood_limit_and_knowledge_changes(
    two: list[Instance], server: FakeTelegram
) -> None:
    ids = itertools.count(1)
    async with aiohttp.ClientSession() as http:
        for i in range(5):  # alternating instances, as a balancer would
            update = {"update_id": next(ids), **server.message(CITIZEN, f"低保怎么申请？{i}")}
            assert await post_update(http, two[i % 2].base, update, SECRET) == 200
        await eventually(lambda: len(server.sent_to(CITIZEN, "sendMessage")) >= 4, 10)
        for inst in two:
            await inst.app.sender.drain(2)
        texts = [c.text or "" for c in server.sent_to(CITIZEN, "sendMessage")]
        assert len(texts) == 4 and sum("太快" in t for t in texts) == 1  # 3 answers, one notice

        # An admin publishes on instance 0; instance 1 answers with the new text straight away.
        a, b = two[0].app, two[1].app
        entry = a.runtime.knowledge.match("低保怎么申请").entry
        assert entry is not None
        async with a.runtime.sf() as session:
            changed = dataclasses.replace(entry, answer="新的答复：请到乡镇人民政府申请。")
            await kb_store.add_revision(session, changed, author="admin", note="test", state="published")
            await session.commit()
        await a.runtime.knowledge.refresh_if_changed()
        await eventually(lambda: b.runtime.knowledge.version == a.runtime.knowledge.version)
        update = {"update_id": next(ids), **server.message(CITIZEN + 1, "低保怎么申请？")}
        assert await post_update(http, two[1].base, update, SECRET) == 200
        reply = await server.wait_for(
            lambda c: c.chat_id == CITIZEN + 1 and "来源" in (c.text or ""), timeout=10
        )
        assert "新的答复" in (reply.text or "")
