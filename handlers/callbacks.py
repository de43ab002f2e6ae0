"""Callback data of every inline button (aiogram's CallbackData: packed, parsed, size-checked)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData

from bot.replies import Button


class TopicCb(CallbackData, prefix="t"):
    code: str


class AnswerCb(CallbackData, prefix="a"):
    entry_id: str
    query_id: int = 0


class FeedbackCb(CallbackData, prefix="f"):
    query_id: int
    helpful: int


class ClarifyNoneCb(CallbackData, prefix="n"):
    query_id: int


class RateCb(CallbackData, prefix="r"):
    ticket_id: int
    score: int


class ForgetCb(CallbackData, prefix="p"):
    confirm: int  # 1 erase the citizen's data, 0 keep it


class TicketCb(CallbackData, prefix="k"):
    action: str  # claim | close | draft
    ticket_id: int


def pack(button: Button) -> str:
    """A service's abstract button → Telegram callback data (≤ 64 bytes, checked by aiogram)."""
    a, args = button.action, button.args
    if a == "packed":  # already packed by its own CallbackData class (the admin keyboards)
        return str(args[0])
    if a == "topic":
        return TopicCb(code=str(args[0])).pack()
    if a == "answer":
        return AnswerCb(entry_id=str(args[0]), query_id=int(args[1]) if len(args) > 1 else 0).pack()
    if a == "feedback":
        return FeedbackCb(query_id=int(args[0]), helpful=int(args[1])).pack()
    if a == "clarify_none":
        return ClarifyNoneCb(query_id=int(args[0])).pack()
    if a == "rate":
        return RateCb(ticket_id=int(args[0]), score=int(args[1])).pack()
    if a == "forget":
        return ForgetCb(confirm=int(args[0])).pack()
    if a in ("claim", "close", "draft"):
        return TicketCb(action=a, ticket_id=int(args[0])).pack()
    raise ValueError(f"no callback data for action {a!r}")


def unpack(data: CallbackData) -> Button:
    """Parsed citizen callback data → the service's abstract button (inverse of ``pack``)."""
    if isinstance(data, TopicCb):
        return Button("", "topic", (data.code,))
    if isinstance(data, AnswerCb):
        return Button("", "answer", (data.entry_id, data.query_id))
    if isinstance(data, FeedbackCb):
        return Button("", "feedback", (data.query_id, data.helpful))
    if isinstance(data, ClarifyNoneCb):
        return Button("", "clarify_none", (data.query_id,))
    if isinstance(data, RateCb):
        return Button("", "rate", (data.ticket_id, data.score))
    if isinstance(data, ForgetCb):
        return Button("", "forget", (data.confirm,))
    raise ValueError(f"not a citizen button: {data!r}")
