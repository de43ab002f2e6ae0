"""Middlewares: a database session per update, the user's language, per-citizen flood control."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Message, TelegramObject, Update, User
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.i18n import pick_locale, use_locale
from bot.models import ProcessedUpdate

log = logging.getLogger(__name__)


class DbSessionMiddleware(BaseMiddleware):
    """Opens one session per update and hands it to the handler as ``session``.

    The update's id is added to that session, so it is committed together with whatever the
    handler commits (a reply in the outbox, a ticket). A redelivered update then fails on the
    primary key before anything is sent, and is skipped quietly.
    """

    def __init__(self, sf: async_sessionmaker[AsyncSession]) -> None:
        self.sf = sf

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        update_id = event.update_id if isinstance(event, Update) else None
        async with self.sf() as session:
            data["session"] = session
            if update_id is not None:
                session.add(ProcessedUpdate(update_id=update_id))
            try:
                return await handler(event, data)
            except IntegrityError as exc:
                if "processed_updates" not in str(exc.orig):
                    raise
                log.info("update %s was already handled (redelivered); skipped", update_id)
                return None


class LocaleMiddleware(BaseMiddleware):
    """Chinese by default; English for users whose Telegram speaks English."""

    def __init__(self, default: str) -> None:
        self.default = default

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        locale = pick_locale(user.language_code if user else None, self.default)
        data["locale"] = locale
        with use_locale(locale):
            return await handler(event, data)


class MemoryRateLimiter:
    """Sliding one-minute window per key, in this process (Redis version for several instances)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: dict[int, deque[float]] = {}
        self._warned: dict[int, float] = {}

    async def hit(self, key: int) -> tuple[bool, bool]:
        """(allowed, warn_now): warn once per window when the limit is first passed."""
        now = time.monotonic()
        q = self._hits.setdefault(key, deque())
        while q and now - q[0] > 60:
            q.popleft()
        q.append(now)
        if len(q) <= self.per_minute:
            return True, False
        warned = self._warned.get(key, 0.0)
        if now - warned > 60:
            self._warned[key] = now
            return False, True
        return False, False


class FloodMiddleware(BaseMiddleware):
    """More than N messages a minute from one citizen: one gentle notice, nothing more processed."""

    def __init__(self, limiter: Any) -> None:
        self.limiter = limiter

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if not isinstance(event, Message) or event.chat.type != "private" or event.from_user is None:
            return await handler(event, data)
        allowed, warn = await self.limiter.hit(event.from_user.id)
        if allowed:
            return await handler(event, data)
        from handlers.common import citizen_info

        session, conversation = data["session"], data["conversation"]
        citizen = await conversation.citizen(session, citizen_info(event))
        await data["deliver"](session, await conversation.flooded(session, citizen, event.text or "", warn))
        return None
