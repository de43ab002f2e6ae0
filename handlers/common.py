"""Small helpers shared by the routers."""

from __future__ import annotations

from aiogram.types import Message, User

from bot.conversation import CitizenInfo


def display_name(user: User | None) -> str:
    if user is None:
        return ""
    return " ".join(p for p in (user.first_name, user.last_name) if p).strip() or (
        user.username or str(user.id)
    )


def citizen_info(message: Message, user: User | None = None) -> CitizenInfo:
    user = user or message.from_user
    assert user is not None
    return CitizenInfo(
        channel="telegram",
        external_id=user.id,
        chat_id=message.chat.id,
        display_name=display_name(user),
        username=user.username,
        language=user.language_code,
    )
