"""Runs the real application (Dispatcher, outbox, database) against the fake Bot API over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from bot.app import HotlineApp, create_app
from bot.settings import Settings

try:
    from tests.fake_telegram import FakeTelegram, SentCall
except ImportError:  # pragma: no cover - tests/ on sys.path directly
    from fake_telegram import FakeTelegram, SentCall

TOKEN = "123456:TEST-TOKEN"
STAFF_CHAT = -1001234
STAFF_USER = 900001


def app_settings(db_url: str, api_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bot_token": TOKEN,
        "telegram_api_url": api_url,
        "database_url": db_url,
        "staff_chat_id": STAFF_CHAT,
        "admin_ids": [STAFF_USER],
        "office_hours": "Mon-Sun 00:00-24:00",
        # The fake API has no per-chat limits; the pacing itself is tested in test_services.py.
        "send_rate_per_group_minute": 6000,
        "send_rate_per_chat": 100,
        "report_schedule": "",  # the weekly report has its own tests
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class Harness:
    def __init__(self, server: FakeTelegram, db_url: str, **overrides: Any) -> None:
        self.server = server
        self.db_url = db_url
        self.overrides = overrides
        self.app: HotlineApp | None = None
        self._polling: asyncio.Task[Any] | None = None

    async def start(self) -> HotlineApp:
        settings = app_settings(self.db_url, self.server.url, **self.overrides)
        self.app = await create_app(settings)
        self.app.sender.poll_interval = 0.1
        await self.app.start_workers()
        self._polling = asyncio.create_task(
            self.app.dispatcher.start_polling(
                self.app.bot, handle_signals=False, close_bot_session=False, polling_timeout=1
            )
        )
        return self.app

    async def stop(self) -> None:
        if self.app is None:
            return
        with contextlib.suppress(Exception):
            await self.app.dispatcher.stop_polling()
        if self._polling is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._polling, timeout=5)
        await self.app.close()
        self.app = None

    async def restart(self) -> HotlineApp:
        await self.stop()
        return await self.start()

    # --- acting as people -------------------------------------------------------------

    def say(self, user: int, text: str = "", **kwargs: Any) -> dict[str, Any]:
        return self.server.push_message(user, text, **kwargs)

    def staff_says(
        self, text: str, *, reply_to: int | None = None, user: int = STAFF_USER, **kw: Any
    ) -> dict:
        return self.server.push_message(
            STAFF_CHAT, text, user_id=user, reply_to_message_id=reply_to, first_name="李工", **kw
        )

    def press(self, chat: int, message_id: int, data: str, user: int | None = None) -> dict[str, Any]:
        return self.server.push_callback(chat, message_id, data, user_id=user)

    async def reply_to(
        self,
        chat: int,
        contains: str = "",
        *,
        after: int = 0,
        timeout: float = 8.0,
        method: str | None = None,
    ) -> SentCall:
        """The next message sent to ``chat`` whose text contains ``contains`` (after index ``after``)."""

        def match(c: SentCall) -> bool:
            if c.chat_id != chat or c.method in ("getChatMember", "answerCallbackQuery", "sendChatAction"):
                return False
            if method and c.method != method:
                return False
            if self.server.sent.index(c) < after:
                return False
            return contains in (c.text or "")

        return await self.server.wait_for(match, timeout=timeout)

    def mark(self) -> int:
        return len(self.server.sent)

    def to(self, chat: int, after: int = 0) -> list[SentCall]:
        return [
            c for c in self.server.sent[after:] if c.chat_id == chat and c.method.startswith(("send", "copy"))
        ]


def buttons(call: SentCall) -> list[tuple[str, str]]:
    markup = call.reply_markup or {}
    return [(b["text"], b.get("callback_data", "")) for row in markup.get("inline_keyboard", []) for b in row]


def button(call: SentCall, label_part: str) -> str:
    for text, data in buttons(call):
        if label_part in text:
            return data
    raise AssertionError(f"no button {label_part!r} in {buttons(call)}")


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
