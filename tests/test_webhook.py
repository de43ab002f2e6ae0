"""Webhook mode against the fake Bot API: setWebhook on start, the secret token, health routes on
the same server, a clean stop (updates in flight finish, the outbox drains, exit 0)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.app import HotlineApp, create_app
from bot.models import QueryLog
from tests.harness import STAFF_CHAT, app_settings, eventually
from tests.procs import BotProcess, free_port

try:
    from tests.fake_telegram import FakeTelegram
except ImportError:  # pragma: no cover
    from fake_telegram import FakeTelegram

TOKEN = "123456:TEST-TOKEN"
SECRET = "s3cret_Token-42"
CITIZEN = 5001


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as fake:
        yield fake


class Running:
    def __init__(self, app: HotlineApp, task: asyncio.Task[None], stop: asyncio.Event, base: str) -> None:
        self.app, self.task, self.stop, self.base = app, task, stop, base


@pytest.fixture
async def running(server: FakeTelegram, tmp_path: Path) -> AsyncIterator[Running]:
    port = free_port()
    settings = app_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        server.url,
        webhook_url=f"http://127.0.0.1:{port}/tg/hook",
        webhook_secret=SECRET,
        webhook_host="127.0.0.1",
        webhook_port=port,
    )
    app = await create_app(settings)
    app.sender.poll_interval = 0.1
    stop = asyncio.Event()
    task = asyncio.create_task(app.run_webhook(stop))
    await server.wait_for(method="setWebhook", timeout=20)
    try:
        yield Running(app, task, stop, f"http://127.0.0.1:{port}")
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 20)


async def test_set_webhook_on_start_with_secret_and_the_update_types_in_use(
    running: Running, server: FakeTelegram
) -> None:
    call = await server.wait_for(method="setWebhook")
    assert call.params["url"] == running.base + "/tg/hook"
    assert call.params["secret_token"] == SECRET
    assert not call.params.get("drop_pending_updates")
    allowed = call.params["allowed_updates"]
    assert {"message", "callback_query"} <= set(allowed)
    assert set(allowed) == set(running.app.dispatcher.resolve_used_update_types())


async def test_citizen_question_over_webhook_gets_its_answer(running: Running, server: FakeTelegram) -> None:
    assert await server.post_update_to_webhook(server.message(CITIZEN, "低保怎么申请？")) == 200
    answer = await server.wait_for(lambda c: c.chat_id == CITIZEN and "来源" in (c.text or ""), timeout=10)
    assert answer.method == "sendMessage"
    # An escalation reaches the staff group as a card, and the citizen gets the ticket number.
    assert await server.post_update_to_webhook(server.message(CITIZEN + 1, "婚姻登记需要带什么材料")) == 200
    await server.wait_for(lambda c: c.chat_id == CITIZEN + 1 and "工单编号" in (c.text or ""), timeout=10)
    await server.wait_for(lambda c: c.chat_id == STAFF_CHAT and "工单 #" in (c.text or ""), timeout=10)


async def test_wrong_or_missing_secret_gets_401_and_nothing_happens(
    running: Running, server: FakeTelegram
) -> None:
    forged = server.message(CITIZEN, "低保怎么申请？")
    assert await server.post_update_to_webhook(forged, secret="guessed") == 401
    assert await server.post_update_to_webhook(server.message(CITIZEN, "低保"), send_secret=False) == 401
    # Handled synchronously: by the time the genuine update is answered, a forged one would have been.
    assert await server.post_update_to_webhook(server.message(CITIZEN + 1, "低保怎么申请？")) == 200
    await server.wait_for(lambda c: c.chat_id == CITIZEN + 1 and "来源" in (c.text or ""), timeout=10)
    assert running.app.sender is not None
    await running.app.sender.drain(2)
    assert server.sent_to(CITIZEN) == []
    async with running.app.runtime.sf() as session:
        assert await session.scalar(select(func.count()).select_from(QueryLog)) == 1


async def test_health_routes_are_on_the_webhook_server(running: Running, server: FakeTelegram) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(running.base + "/healthz") as r:
            assert r.status == 200
        async with s.get(running.base + "/readyz") as r:
            assert r.status == 200 and (await r.json())["database"] == "ok"
        await server.post_update_to_webhook(server.message(CITIZEN, "低保怎么申请？"))
        async with s.get(running.base + "/metrics") as r:
            body = await r.text()
            assert r.status == 200
            assert 'hotline_updates_total{outcome="answer",type="message"} 1.0' in body


async def test_stop_lets_the_update_in_flight_finish_and_drains_the_outbox(
    running: Running, server: FakeTelegram
) -> None:
    app = running.app
    release = asyncio.Event()
    ask = app.conversation.ask

    async def slow_ask(session: Any, citizen: Any, text: str) -> Any:
        await release.wait()
        return await ask(session, citizen, text)

    app.conversation.ask = slow_ask  # type: ignore[method-assign]
    post = asyncio.create_task(server.post_update_to_webhook(server.message(CITIZEN, "低保怎么申请？")))
    await eventually(lambda: app.in_flight.count == 1)
    running.stop.set()  # as SIGTERM does
    await eventually(lambda: app.health is not None and app.health.stopping)
    with pytest.raises(aiohttp.ClientError):  # no new connections while stopping
        await server.post_update_to_webhook(server.message(CITIZEN + 1, "低保"))
    assert not running.task.done()  # still waiting for the citizen's update
    release.set()
    assert await post == 200
    await asyncio.wait_for(running.task, 20)
    # The answer went out before the server finished stopping: drained, not left in the outbox.
    assert any("来源" in (c.text or "") for c in server.sent_to(CITIZEN))


# --- the process, as deployed -----------------------------------------------------------------


def _env(server: FakeTelegram, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": server.url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "STAFF_CHAT_ID": str(STAFF_CHAT),
        **extra,
    }


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"WEBHOOK_URL": "https://hotline.example.org/tg"}, "WEBHOOK_SECRET"),
        ({"WEBHOOK_URL": "https://hotline.example.org/tg", "WEBHOOK_SECRET": "has spaces"}, "WEBHOOK_SECRET"),
        ({"WEBHOOK_SECRET": SECRET}, "WEBHOOK_URL"),
    ],
)
def test_webhook_mode_without_its_settings_names_the_missing_one(
    server: FakeTelegram,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: dict[str, str],
    named: str,
) -> None:
    import main

    monkeypatch.chdir(tmp_path)  # no .env
    for key in ("WEBHOOK_URL", "WEBHOOK_SECRET"):
        monkeypatch.delenv(key, raising=False)
    for key, value in _env(server, tmp_path, **extra).items():
        monkeypatch.setenv(key, value)
    assert main.main(["run", "--webhook"]) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert not [c for c in server.sent if c.method == "setWebhook"]


async def test_webhook_process_answers_and_exits_0_on_sigterm(server: FakeTelegram, tmp_path: Path) -> None:
    port = free_port()
    env = _env(
        server,
        tmp_path,
        WEBHOOK_URL=f"http://127.0.0.1:{port}/hook",  # WEBHOOK_URL alone selects webhook mode
        WEBHOOK_SECRET=SECRET,
        WEBHOOK_HOST="127.0.0.1",
        WEBHOOK_PORT=str(port),
    )
    async with BotProcess([], env, tmp_path) as bot:
        await bot.wait_http(f"http://127.0.0.1:{port}/readyz")
        await server.wait_for(method="setWebhook", timeout=20)
        assert await server.post_update_to_webhook(server.message(CITIZEN, "低保怎么申请？")) == 200
        await server.wait_for(lambda c: c.chat_id == CITIZEN and "来源" in (c.text or ""), timeout=20)
        assert await bot.terminate() == 0, bot.stderr
    assert server.webhook.get("url")  # left registered: other instances keep serving it
