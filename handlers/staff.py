"""Hotline staff in their group: ticket cards, replies to citizens, /queue, /ticket, /close, /reopen.

Only the configured staff group reaches these handlers, and a button press is honoured only
if the person who pressed it is a member of that group.
"""

from __future__ import annotations

import asyncio
import time

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message, User
from sqlalchemy.ext.asyncio import AsyncSession

from bot import tickets
from bot.i18n import _
from bot.replies import Outgoing, Reply
from bot.tickets import StaffDesk, StaffMember
from handlers.callbacks import TicketCb
from handlers.common import display_name
from handlers.delivery import Delivery

MEMBER_STATUSES = ("creator", "administrator", "member", "restricted")


class StaffCheck:
    """Is this user a member of the staff group? Asked of Telegram, remembered for five minutes."""

    def __init__(self, staff_chat_id: int | None, ttl: float = 300.0) -> None:
        self.staff_chat_id = staff_chat_id
        self.ttl = ttl
        self._cache: dict[int, tuple[float, bool]] = {}

    async def __call__(self, bot: Bot, user_id: int) -> bool:
        if self.staff_chat_id is None:
            return False
        hit = self._cache.get(user_id)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        try:
            member = await bot.get_chat_member(self.staff_chat_id, user_id)
            ok = member.status in MEMBER_STATUSES
        except Exception:  # unknown user, API trouble: refuse rather than trust
            ok = False
        self._cache[user_id] = (time.monotonic(), ok)
        return ok


def _staff(user: User | None) -> StaffMember:
    assert user is not None
    return StaffMember(id=user.id, name=display_name(user))


def build_router(staff_chat_id: int | None) -> Router:
    router = Router(name="staff")

    # No staff group configured: the router matches nothing. Async filters avoid a thread hop.
    async def in_staff_chat(message: Message) -> bool:
        return staff_chat_id is not None and message.chat.id == staff_chat_id

    async def callback_in_staff_chat(callback: CallbackQuery) -> bool:
        msg = callback.message
        return staff_chat_id is not None and msg is not None and msg.chat.id == staff_chat_id

    async def is_reply(message: Message) -> bool:
        return message.reply_to_message is not None

    router.message.filter(in_staff_chat)
    router.callback_query.filter(callback_in_staff_chat)

    def note(text: str) -> list[Outgoing]:
        return [Outgoing(staff_chat_id, Reply(text))] if staff_chat_id is not None else []

    def ticket_number(command: CommandObject) -> int | None:
        arg = (command.args or "").strip().lstrip("#")
        return int(arg) if arg.isdigit() and len(arg) < 10 else None

    @router.message(Command("queue"))
    async def queue(message: Message, session: AsyncSession, desk: StaffDesk, deliver: Delivery) -> None:
        await deliver(session, note(await desk.queue(session)))

    @router.message(Command("ticket"))
    async def ticket(
        message: Message, command: CommandObject, session: AsyncSession, desk: StaffDesk, deliver: Delivery
    ) -> None:
        number = ticket_number(command)
        text = await desk.detail(session, number) if number else _("用法：/ticket 工单编号，例如 /ticket 12")
        await deliver(session, note(text))

    @router.message(Command("close", "reopen"))
    async def close_or_reopen(
        message: Message, command: CommandObject, session: AsyncSession, desk: StaffDesk, deliver: Delivery
    ) -> None:
        number = ticket_number(command)
        name = command.command
        if number is None:
            usage = _("用法：/{cmd} 工单编号，例如 /{cmd} 12", cmd=name)
            await deliver(session, note(usage))
            return
        action = desk.close if name == "close" else desk.reopen
        text, out = await action(session, number, _staff(message.from_user))
        await deliver(session, [*out, *note(text)])

    @router.message(is_reply)
    async def reply(
        message: Message, bot: Bot, session: AsyncSession, desk: StaffDesk, deliver: Delivery
    ) -> None:
        """A reply to a ticket card or to a forwarded citizen message reaches that citizen."""
        target = message.reply_to_message
        if target is None or target.from_user is None or target.from_user.id != bot.id:
            return
        ticket = await tickets.by_staff_message(session, message.chat.id, target.message_id)
        for _attempt in range(8):
            # A message sent a moment ago may not be linked to its ticket yet.
            if ticket is not None or time.time() - target.date.timestamp() > 10:
                break
            await session.rollback()
            await asyncio.sleep(0.25)
            ticket = await tickets.by_staff_message(session, message.chat.id, target.message_id)
        if ticket is None:
            if message.text and message.text.startswith("/"):
                return
            await deliver(session, note(_("这条消息不属于任何工单：请回复工单卡片或市民转来的消息。")))
            return
        staff = _staff(message.from_user)
        if message.text:
            result, out = await desk.reply(session, ticket, staff, text=message.text)
        elif message.photo or message.document or message.voice or message.video or message.audio:
            kind = (
                "photo"
                if message.photo
                else "document"
                if message.document
                else "voice"
                if message.voice
                else ("video" if message.video else "audio")
            )
            media = (
                message.photo[-1]
                if message.photo
                else (message.document or message.voice or message.video or message.audio)
            )
            result, out = await desk.reply(
                session,
                ticket,
                staff,
                text=message.caption or "",
                kind=kind,
                file_id=getattr(media, "file_id", None),
                copy_from=(message.chat.id, message.message_id),
            )
        else:
            result, out = _("只能转发文字、图片、文件或语音给市民。"), []
        await deliver(session, [*out, *note(result)])

    @router.callback_query(TicketCb.filter())
    async def ticket_button(
        callback: CallbackQuery,
        callback_data: TicketCb,
        bot: Bot,
        session: AsyncSession,
        desk: StaffDesk,
        deliver: Delivery,
        staff_check: StaffCheck,
    ) -> None:
        if not await staff_check(bot, callback.from_user.id):
            await callback.answer(_("只有热线工作人员可以操作工单。"), show_alert=True)
            return
        staff = _staff(callback.from_user)
        if callback_data.action == "claim":
            text, out = await desk.claim(session, callback_data.ticket_id, staff)
        elif callback_data.action == "close":
            text, out = await desk.close(session, callback_data.ticket_id, staff)
        else:
            text, out = await desk.draft_entry(session, callback_data.ticket_id, staff)
        await deliver(session, out)
        await callback.answer(text, show_alert=not out)

    return router
