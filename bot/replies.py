"""What services say, as plain data: the Telegram and terminal adapters render it.

Text here is plain (never HTML); the Telegram renderer escapes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Button:
    label: str
    action: str  # answer | topic | feedback | clarify_none | rate | forget | claim | close | draft | human
    args: tuple[str | int, ...] = ()


@dataclass(frozen=True)
class Reply:
    text: str
    header: str | None = None  # shown in bold above the text
    footer: str | None = None  # shown in italics below the text
    buttons: tuple[tuple[Button, ...], ...] = ()


@dataclass(frozen=True)
class Outgoing:
    """A message for one chat: a reply, a copy of a media message, an edit of a ticket card, or the
    deletion of one of our messages."""

    chat_id: int
    reply: Reply | None = None
    copy_from: tuple[int, int] | None = None  # (from_chat_id, message_id) for photos, documents, voice
    caption: str | None = None
    ticket_id: int | None = None
    link_kind: str | None = None  # card | forward: staff may reply to the sent message
    edit_card: bool = False
    citizen_id: int | None = None
    meta: dict[str, object] = field(default_factory=dict)
    delete_message_id: int | None = None  # delete this message of ours in ``chat_id`` (erasure)


def rows(*buttons: Button, per_row: int = 1) -> tuple[tuple[Button, ...], ...]:
    items = list(buttons)
    return tuple(tuple(items[i : i + per_row]) for i in range(0, len(items), per_row))
