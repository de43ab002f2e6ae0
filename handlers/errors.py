"""Any handler error: logged with the update id, and the person gets an apology, never silence."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.types import ErrorEvent
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.i18n import _, pick_locale, use_locale
from bot.replies import Outgoing, Reply
from handlers.delivery import Delivery

log = logging.getLogger("hotline.errors")


def _chat_and_lang(event: ErrorEvent) -> tuple[int | None, str | None]:
    upd = event.update
    if upd.message:
        user = upd.message.from_user
        return upd.message.chat.id, user.language_code if user else None
    if upd.callback_query and upd.callback_query.message:
        return upd.callback_query.message.chat.id, upd.callback_query.from_user.language_code
    return None, None


async def on_error(
    event: ErrorEvent, bot: Bot, sf: async_sessionmaker[AsyncSession], deliver: Delivery, settings_locale: str
) -> bool:
    log.error("update %s failed: %r", event.update.update_id, event.exception, exc_info=event.exception)
    chat_id, lang = _chat_and_lang(event)
    if chat_id is None:
        return True
    with use_locale(pick_locale(lang, settings_locale)):
        text = _("抱歉，系统刚才出了点问题，请稍后把这条消息再发一次。")
    try:
        async with sf() as session:
            await deliver(session, [Outgoing(chat_id, Reply(text))])
    except Exception:  # the database may be what failed: say sorry directly
        try:
            await bot.send_message(chat_id, text)
        except Exception:
            log.exception("could not apologise to chat %s", chat_id)
    return True


def build_router() -> Router:
    router = Router(name="errors")
    router.errors.register(on_error)
    return router
