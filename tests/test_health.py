"""Health, readiness and Prometheus metrics, as a load balancer and Prometheus see them."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from bot.conversation import CitizenInfo, Conversation
from bot.health import Health, start_server
from bot.metrics import Metrics
from bot.models import Ticket
from bot.office_hours import OfficeHours
from bot.runtime import Runtime
from bot.tickets import StaffDesk
from tests.harness import STAFF_CHAT, Harness
from tests.procs import BotProcess, free_port

try:
    from tests.fake_telegram import FakeTelegram
except ImportError:  # pragma: no cover
    from fake_telegram import FakeTelegram

CITIZEN = 5001


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format (None when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


async def serve(health: Health) -> tuple[str, Any]:
    runner = await start_server(health, "127.0.0.1", 0)
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}", runner


class Pinger:
    def __init__(self, ok: bool) -> None:
        self.ok = ok

    async def ping(self, **_kw: Any) -> bool:
        if not self.ok:
            raise ConnectionError("redis down")
        return True


async def test_healthz_and_readyz_when_everything_answers(runtime: Runtime) -> None:
    health = Health(runtime.engine, redis=Pinger(True))
    url, runner = await serve(health)
    try:
        assert await get(url + "/healthz") == (200, '{"status": "alive"}')
        status, body = await get(url + "/readyz")
        assert status == 200 and '"database": "ok"' in body and '"redis": "ok"' in body
        health.stopping = True  # shutting down: the balancer must stop sending here
        assert (await get(url + "/readyz"))[0] == 503
        assert (await get(url + "/healthz"))[0] == 200
    finally:
        await runner.cleanup()


async def test_readyz_is_503_when_the_database_or_redis_does_not_answer(runtime: Runtime) -> None:
    dead_db = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    url, runner = await serve(Health(dead_db))
    try:
        status, body = await get(url + "/readyz")
        assert status == 503 and '"database": "unavailable' in body
        assert "127.0.0.1:1" not in body  # no connection details leak
        assert (await get(url + "/healthz"))[0] == 200  # alive all the same: no restart storm
    finally:
        await runner.cleanup()
        await dead_db.dispose()
    url, runner = await serve(Health(runtime.engine, redis=Pinger(False)))
    try:
        status, body = await get(url + "/readyz")
        assert status == 503 and '"database": "ok"' in body and '"redis": "unavailable' in body
    finally:
        await runner.cleanup()


async def test_registries_are_per_app() -> None:
    a, b = Metrics(), Metrics()
    a.updates.labels("message", "answer").inc()
    assert a.registry is not b.registry
    assert sample((await b.render()).decode(), "hotline_updates_total") is None


async def test_overdue_tickets_count_office_time_only(runtime: Runtime) -> None:
    hours = OfficeHours.parse("Mon-Fri 08:30-12:00,14:30-18:00")
    desk = StaffDesk(staff_chat_id=STAFF_CHAT, hours=hours, reminder_hours=4.0)
    conv = Conversation(runtime.knowledge, desk, runtime.settings.bureau_facts())
    async with runtime.sf() as session:
        for uid in (1, 2):
            citizen = await conv.citizen(session, CitizenInfo("telegram", uid, uid, "张三"))
            await conv.escalate(session, citizen, "婚姻登记需要带什么材料", source="escalate")
        await session.commit()
        first, second = (await session.get(Ticket, 1)), (await session.get(Ticket, 2))
        # Wednesday 2026-03-04: one ticket from 08:30 (5.5 office hours by 16:00), one from 15:00.
        first.created_at = dt.datetime(2026, 3, 4, 0, 30, tzinfo=dt.UTC)
        second.created_at = dt.datetime(2026, 3, 4, 7, 0, tzinfo=dt.UTC)
        await session.commit()
    metrics = Metrics(runtime.sf, desk)
    await metrics.refresh(now=dt.datetime(2026, 3, 4, 8, 0, tzinfo=dt.UTC))  # 16:00 in Shanghai
    text = generate(metrics)
    assert sample(text, "hotline_tickets", status="open") == 2
    assert sample(text, "hotline_tickets_overdue") == 1
    assert sample(text, "hotline_outbox_depth", status="pending") == 0


def generate(metrics: Metrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


# --- the running bot -------------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token="123456:TEST-TOKEN") as fake:
        yield fake


@pytest.fixture
async def h(server: FakeTelegram, tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(server, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def test_metrics_count_what_citizens_and_telegram_did(h: Harness, server: FakeTelegram) -> None:
    app = h.app
    assert app is not None and app.health is not None
    url, runner = await serve(app.health)
    try:
        h.say(CITIZEN, "低保怎么申请？")
        await h.reply_to(CITIZEN, "来源")
        h.say(CITIZEN + 1, "低保")
        await h.reply_to(CITIZEN + 1, "您是想问")
        server.fail_next("sendMessage", status=429, retry_after=1)  # Telegram says slow down, once
        h.say(CITIZEN + 2, "婚姻登记需要带什么材料")
        await h.reply_to(CITIZEN + 2, "工单编号", timeout=10)
        await h.reply_to(STAFF_CHAT, "工单 #1")
        status, text = await get(url + "/metrics")
    finally:
        await runner.cleanup()
    assert status == 200
    assert sample(text, "hotline_updates_total", type="message", outcome="answer") == 1
    assert sample(text, "hotline_updates_total", type="message", outcome="clarify") == 1
    assert sample(text, "hotline_updates_total", type="message", outcome="escalate") == 1
    assert sample(text, "hotline_escalations_total", source="escalate") == 1
    assert sample(text, "hotline_tickets", status="open") == 1
    assert sample(text, "hotline_telegram_api_errors_total", method="sendMessage", code="429") == 1
    assert (sample(text, "hotline_outbox_retries_total") or 0) >= 1
    assert (sample(text, "hotline_outbox_sent_total", method="sendMessage") or 0) >= 4
    assert sample(text, "hotline_handler_seconds_count", type="message") == 3
    assert sample(text, "hotline_outbox_depth", status="pending") is not None


async def test_a_handler_error_counts_as_error(h: Harness) -> None:
    app = h.app
    assert app is not None and app.metrics is not None

    async def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("boom")

    app.conversation.ask = broken  # type: ignore[method-assign]
    h.say(CITIZEN, "低保怎么申请？")
    await h.reply_to(CITIZEN, "抱歉")
    text = (await app.metrics.render()).decode()
    assert sample(text, "hotline_updates_total", type="message", outcome="error") == 1


async def test_polling_bot_serves_health_on_health_port_and_stops_on_sigterm(
    server: FakeTelegram, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "BOT_TOKEN": "123456:TEST-TOKEN",
        "TELEGRAM_API_URL": server.url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "STAFF_CHAT_ID": str(STAFF_CHAT),
        "HEALTH_HOST": "127.0.0.1",
        "HEALTH_PORT": str(port),
    }
    async with BotProcess([], env, tmp_path) as bot:
        await bot.wait_http(f"http://127.0.0.1:{port}/readyz")
        server.push_message(CITIZEN, "低保怎么申请？")
        await server.wait_for(lambda c: c.chat_id == CITIZEN and "来源" in (c.text or ""), timeout=20)
        status, text = await get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and sample(text, "hotline_updates_total", type="message", outcome="answer") == 1
        assert await bot.terminate() == 0, bot.stderr
