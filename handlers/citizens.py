"""Citizens in private chat: questions, topic menu, clarifications, tickets, ratings."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.conversation import HUMAN_WORDS, Conversation
from handlers.callbacks import AnswerCb, ClarifyNoneCb, FeedbackCb, ForgetCb, RateCb, TopicCb, unpack
from handlers.common import citizen_info
from handlers.delivery import Delivery

FORWARDABLE = ("photo", "document", "voice", "video", "audio")


# Plain async filters: aiogram runs synchronous (magic) filters in a thread per update.
async def in_private(message: Message) -> bool:
    return message.chat.type == "private"


async def callback_in_private(callback: CallbackQuery) -> bool:
    return callback.message is not None and callback.message.chat.type == "private"


async def has_text(message: Message) -> bool:
    return message.text is not None


async def is_human_request(message: Message) -> bool:
    """人工 / 转人工 typed as a message (async, so aiogram need not use a thread)."""
    return bool(message.text) and message.text.strip() in HUMAN_WORDS


class HumanRequest(StatesGroup):
    waiting_question = State()


async def start(
    message: Message, session: AsyncSession, conversation: Conversation, deliver: Delivery
) -> None:
    citizen = await conversation.citizen(session, citizen_info(message))
    await deliver(session, conversation.welcome(citizen))


async def cancel(
    message: Message, state: FSMContext, session: AsyncSession, conversation: Conversation, deliver: Delivery
) -> None:
    await state.clear()
    citizen = await conversation.citizen(session, citizen_info(message))
    await deliver(session, conversation.welcome(citizen))


async def human(
    message: Message, state: FSMContext, session: AsyncSession, conversation: Conversation, deliver: Delivery
) -> None:
    citizen = await conversation.citizen(session, citizen_info(message))
    out = await conversation.human(session, citizen)
    if not out:
        await state.set_state(HumanRequest.waiting_question)
        out = conversation.ask_what_to_forward(citizen)
    await deliver(session, out)


async def my_tickets(
    message: Message, session: AsyncSession, conversation: Conversation, deliver: Delivery
) -> None:
    citizen = await conversation.citizen(session, citizen_info(message))
    await deliver(session, await conversation.my_tickets(session, citizen))


async def privacy(
    message: Message, session: AsyncSession, conversation: Conversation, deliver: Delivery
) -> None:
    """/privacy: what is stored, why, for how long (stores nothing about the asker)."""
    await deliver(session, conversation.privacy(message.chat.id))


async def forget(
    message: Message, state: FSMContext, session: AsyncSession, conversation: Conversation, deliver: Delivery
) -> None:
    """/forget: ask for a confirmation; the 确认删除 button erases (Conversation.press)."""
    await state.clear()
    citizen = await conversation.citizen(session, citizen_info(message))
    await deliver(session, await conversation.forget_prompt(session, citizen))


async def human_question(
    message: Message, state: FSMContext, session: AsyncSession, conversation: Conversation, deliver: Delivery
) -> None:
    await state.clear()
    citizen = await conversation.citizen(session, citizen_info(message))
    await deliver(session, await conversation.escalate(session, citizen, message.text or "", source="human"))


async def question(
    message: Message, session: AsyncSession, conversation: Conversation, deliver: Delivery
) -> None:
    citizen = await conversation.citizen(session, citizen_info(message))
    await deliver(session, await conversation.ask(session, citizen, message.text or ""))


async def other_content(
    message: Message, session: AsyncSession, conversation: Conversation, deliver: Delivery
) -> None:
    """Photos, files, voice join an open ticket; stickers, locations and the like get a polite request."""
    citizen = await conversation.citizen(session, citizen_info(message))
    kind = message.content_type if isinstance(message.content_type, str) else str(message.content_type)
    kind = kind.split(".")[-1].lower()
    file_id = None
    if message.photo:
        file_id = message.photo[-1].file_id
    elif message.document:
        file_id = message.document.file_id
    elif message.voice:
        file_id = message.voice.file_id
    elif message.video:
        file_id = message.video.file_id
    elif message.audio:
        file_id = message.audio.file_id
    if kind not in FORWARDABLE:
        out = await conversation.media(session, citizen, kind=kind, caption="", file_id=None, copy_from=None)
    else:
        out = await conversation.media(
            session,
            citizen,
            kind=kind,
            caption=message.caption or "",
            file_id=file_id,
            copy_from=(message.chat.id, message.message_id),
        )
    await deliver(session, out)


async def button(
    callback: CallbackQuery,
    callback_data: CallbackData,
    session: AsyncSession,
    conversation: Conversation,
    deliver: Delivery,
) -> None:
    """Any citizen button: topic, candidate question, feedback, none-of-these, rating, erasure."""
    await callback.answer()
    assert callback.message is not None
    info = citizen_info(callback.message, callback.from_user)  # type: ignore[arg-type]
    citizen = await conversation.citizen(session, info)
    await deliver(session, await conversation.press(session, citizen, unpack(callback_data)))


def build_router() -> Router:
    """Private chats with citizens. A new Router per app, so several apps can live in one process."""
    router = Router(name="citizens")
    router.message.filter(in_private)
    router.callback_query.filter(callback_in_private)
    router.message.register(start, CommandStart())
    router.message.register(start, Command("help"))
    router.message.register(cancel, Command("cancel"))
    router.message.register(human, Command("human"))
    router.message.register(human, is_human_request)
    router.message.register(my_tickets, Command("mytickets"))
    router.message.register(privacy, Command("privacy"))
    router.message.register(forget, Command("forget"))
    router.message.register(human_question, StateFilter(HumanRequest.waiting_question), has_text)
    router.message.register(question, has_text)
    router.message.register(other_content)
    router.callback_query.register(button, TopicCb.filter())
    router.callback_query.register(button, AnswerCb.filter())
    router.callback_query.register(button, FeedbackCb.filter())
    router.callback_query.register(button, ClarifyNoneCb.filter())
    router.callback_query.register(button, RateCb.filter())
    router.callback_query.register(button, ForgetCb.filter())
    return router
