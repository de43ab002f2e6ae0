"""Hands services' outgoing messages to the persistent outbox, in the update's transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot import outbox
from bot.outbox import OutboxSender
from bot.replies import Outgoing
from handlers.render import to_requests


class Delivery:
    def __init__(self, sender: OutboxSender | None) -> None:
        self.sender = sender

    async def __call__(self, session: AsyncSession, items: list[Outgoing]) -> None:
        """Queue ``items`` and commit everything the update changed; then wake the sender."""
        await self.enqueue(session, items)
        await session.commit()
        if items and self.sender is not None:
            self.sender.wake()

    async def enqueue(self, session: AsyncSession, items: list[Outgoing]) -> None:
        """Queue ``items`` in the caller's transaction (the caller commits)."""
        for item in items:
            for method, payload in to_requests(item):
                await outbox.enqueue(
                    session,
                    item.chat_id,
                    method,
                    payload,
                    ticket_id=item.ticket_id if item.link_kind else None,
                    link_kind=item.link_kind,
                    citizen_id=item.citizen_id,
                )
