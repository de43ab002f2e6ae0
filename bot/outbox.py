"""The persistent outbox: every outgoing message is a row first, then sent and retried.

``enqueue`` runs inside the caller's transaction, so a message exists only if what it talks
about (a ticket, a reply) was committed with it. ``OutboxSender`` claims due rows, sends them
through a transport (Telegram, or a test double), honours 429 ``retry_after``, backs off on
network errors and 5xx, marks a chat that blocked the bot, and keeps each chat's messages
in order and within Telegram's rate limits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.models import MessageLink, OutboxMessage, Ticket, utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
_WAITING = "waiting for an earlier message"
_CARD_PENDING = "ticket card not sent yet"
LOCK_SECONDS = 60


@dataclass(frozen=True)
class SendResult:
    ok: bool
    message_id: int | None = None
    retry_after: float | None = None  # Telegram said 429: wait this long
    blocked: bool = False  # 403: the user blocked the bot
    permanent: bool = False  # a request Telegram will never accept (400)
    error: str = ""
    code: int | None = None


Transport = Callable[[str, dict[str, Any]], Awaitable[SendResult]]
BlockedHook = Callable[[AsyncSession, int], Awaitable[None]]
SentHook = Callable[[str, SendResult], None]


async def enqueue(
    session: AsyncSession,
    chat_id: int,
    method: str,
    payload: dict[str, Any],
    *,
    ticket_id: int | None = None,
    link_kind: str | None = None,
    citizen_id: int | None = None,
) -> OutboxMessage:
    """Add a message to the outbox in the caller's transaction (sent after commit)."""
    row = OutboxMessage(
        chat_id=chat_id,
        method=method,
        payload={**payload, "chat_id": chat_id},
        ticket_id=ticket_id,
        link_kind=link_kind,
        citizen_id=citizen_id,
        next_attempt_at=utcnow(),
    )
    session.add(row)
    return row


async def depth(session: AsyncSession) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.status.in_(("pending", "sending")))
        )
        or 0
    )


class _Bucket:
    """Token bucket: ``rate`` tokens a second, up to ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def reserve(self) -> float:
        """Take a token now; returns how long to wait before using it (0 if free)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1  # below zero: later senders wait behind this reservation
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def cancel(self) -> None:
        self.tokens += 1


@dataclass
class Limits:
    global_per_second: float = 30.0
    private_per_second: float = 1.0
    private_burst: float = 3.0
    group_per_minute: float = 20.0
    group_burst: float = 3.0
    max_wait: float = 3.0  # longer waits are rescheduled instead of slept
    # A chat at its own limit (the staff group at 20 a minute) is rescheduled after this much,
    # so it never holds up the other chats' messages in the same batch.
    chat_max_wait: float = 0.2


@dataclass
class _Sent:
    """Messages of the current batch that were sent and are not recorded yet."""

    rows: list[tuple[OutboxMessage, SendResult]] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, row: OutboxMessage, result: SendResult) -> None:
        self.rows.append((row, result))
        self.ready.set()


@dataclass
class _Outcome:
    row_id: int
    chat_id: int
    result: SendResult
    ticket_id: int | None
    link_kind: str | None
    attempts: int


@dataclass
class OutboxSender:
    sf: async_sessionmaker[AsyncSession]
    transport: Transport
    on_blocked: BlockedHook | None = None
    on_result: SentHook | None = None
    limits: Limits = field(default_factory=Limits)
    batch_size: int = 64
    poll_interval: float = 0.5
    # Claimed rows stay with this sender this long; after that another instance takes them over.
    lock_seconds: float = LOCK_SECONDS
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _global: _Bucket | None = None
    _chats: dict[int, _Bucket] = field(default_factory=dict)
    _postgres: bool | None = None
    retries: int = 0
    _passes: int = 0  # send_due passes under way (the background loop's, and drain's)

    def wake(self) -> None:
        """Something was committed to the outbox: look now rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Send forever until ``stop`` is set."""
        while not stop.is_set():
            try:
                sent = await self.send_due()
            except Exception:  # the database may be briefly away; keep the loop alive
                log.exception("outbox pass failed")
                sent = 0
            if sent == 0:
                self._wake.clear()
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait(
                    {waiter, stopper}, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED
                )
                waiter.cancel()
                stopper.cancel()

    async def drain(self, timeout: float = 10.0) -> None:
        """Send everything that is due now (tests and one-shot commands)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.send_due():
                continue
            if not self._passes:
                return
            # The background loop's pass has the due messages: done when it is.
            await asyncio.sleep(0.01)

    async def _claim(self) -> list[OutboxMessage]:
        now = utcnow()
        async with self.sf() as session, session.begin():
            if self._postgres is None:
                self._postgres = session.bind.dialect.name == "postgresql"
            due = or_(
                (OutboxMessage.status == "pending") & (OutboxMessage.next_attempt_at <= now),
                # A sender that died mid-send leaves rows locked; take them over after a while.
                (OutboxMessage.status == "sending") & (OutboxMessage.locked_until < now),
            )
            query = select(OutboxMessage).where(due).order_by(OutboxMessage.id).limit(self.batch_size)
            if self._postgres:
                query = query.with_for_update(skip_locked=True)
            rows = list((await session.scalars(query)).all())
            if not rows:
                return []
            # Several instances: a chat whose earlier message is with another sender (or locked in
            # another claim right now, so skipped above) waits, so its messages keep their order.
            ids = [r.id for r in rows]
            elsewhere = await session.execute(
                select(OutboxMessage.chat_id, func.min(OutboxMessage.id))
                .where(
                    OutboxMessage.chat_id.in_({r.chat_id for r in rows}),
                    OutboxMessage.status.in_(("pending", "sending")),
                    OutboxMessage.id.not_in(ids),
                )
                .group_by(OutboxMessage.chat_id)
            )
            first_elsewhere = {chat: first for chat, first in elsewhere}
            rows = [r for r in rows if r.id < first_elsewhere.get(r.chat_id, r.id + 1)]
            if not rows:
                return []
            ids = [r.id for r in rows]
            claimed = await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids), due)
                .values(status="sending", locked_until=now + dt.timedelta(seconds=self.lock_seconds))
                .returning(OutboxMessage.id)
                # The loaded rows' status is not read again: no need to sync the identity map.
                .execution_options(synchronize_session=False)
            )
            got = {r[0] for r in claimed}
            return [r for r in rows if r.id in got]

    def _bucket(self, chat_id: int) -> _Bucket:
        b = self._chats.get(chat_id)
        if b is None:
            lim = self.limits
            b = (
                _Bucket(lim.group_per_minute / 60, lim.group_burst)
                if chat_id < 0
                else _Bucket(lim.private_per_second, lim.private_burst)
            )
            if len(self._chats) > 50_000:
                self._chats.clear()
            self._chats[chat_id] = b
        return b

    async def _send_chat(self, rows: list[OutboxMessage], sent: _Sent) -> list[_Outcome]:
        """One chat's messages, in order; stop at the first one that must wait."""
        if self._global is None:
            self._global = _Bucket(self.limits.global_per_second, self.limits.global_per_second)
        outcomes: list[_Outcome] = []
        for i, row in enumerate(rows):
            chat = self._bucket(row.chat_id)
            chat_wait = chat.reserve()
            wait = max(chat_wait, self._global.reserve())
            if wait > self.limits.max_wait or chat_wait > self.limits.chat_max_wait:
                chat.cancel()
                self._global.cancel()
                res = SendResult(False, retry_after=wait, error="rate limited here")
                outcomes.extend(
                    _Outcome(r.id, r.chat_id, res, r.ticket_id, r.link_kind, r.attempts) for r in rows[i:]
                )
                break
            if wait:
                await asyncio.sleep(wait)
            try:
                result = await self.transport(row.method, dict(row.payload))
            except Exception as exc:  # a transport bug must not lose the message
                log.exception("outbox transport failed for message %s", row.id)
                result = SendResult(False, error=repr(exc))
            if self.on_result:
                self.on_result(row.method, result)
            if result.ok:
                sent.add(row, result)
            outcomes.append(
                _Outcome(row.id, row.chat_id, result, row.ticket_id, row.link_kind, row.attempts + 1)
            )
            if not result.ok and not result.permanent and not result.blocked:
                # Keep the chat's order: the rest waits for this one.
                later = SendResult(False, retry_after=0.0, error=_WAITING)
                outcomes.extend(
                    _Outcome(r.id, r.chat_id, later, r.ticket_id, r.link_kind, r.attempts)
                    for r in rows[i + 1 :]
                )
                break
        return outcomes

    async def _record_sent(self, sending: asyncio.Future[Any], sent: _Sent) -> None:
        """Record sent messages while the rest of the batch is still being sent, all that finished
        meanwhile in one transaction (group commit). So an instance that dies mid-batch leaves
        only what it had not sent yet for another to take over (a batch recorded at its end was
        sent twice), and staff may reply to a card or a copy at once."""
        while True:
            if not sent.rows:
                if sending.done():
                    return
                waiter = asyncio.ensure_future(sent.ready.wait())
                await asyncio.wait({sending, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                sent.ready.clear()
                continue
            batch, sent.rows = sent.rows, []
            await self._mark_sent(batch)

    async def _mark_sent(self, batch: list[tuple[OutboxMessage, SendResult]]) -> None:
        table = OutboxMessage.__table__
        now = utcnow()
        async with self.sf() as session, session.begin():
            await session.execute(
                update(table)
                .where(table.c.id == bindparam("row_id"))
                .values(
                    status="sent",
                    sent_at=now,
                    last_error=None,
                    locked_until=None,
                    result_message_id=bindparam("message_id"),
                    attempts=bindparam("tries"),
                ),
                [{"row_id": r.id, "message_id": res.message_id, "tries": r.attempts + 1} for r, res in batch],
            )
            for row, res in batch:
                if not (row.ticket_id and row.link_kind and res.message_id):
                    continue
                chat_id, message_id, ticket_id = row.chat_id, res.message_id, row.ticket_id
                kind = row.link_kind
                await session.merge(
                    MessageLink(chat_id=chat_id, message_id=message_id, ticket_id=ticket_id, kind=kind)
                )
                if kind == "card":
                    await session.execute(
                        update(Ticket)
                        .where(Ticket.id == ticket_id)
                        .values(card_chat_id=chat_id, card_message_id=message_id)
                    )

    async def _card_ids(self, ticket_ids: set[int]) -> dict[int, tuple[int, int]]:
        if not ticket_ids:
            return {}
        async with self.sf() as session:
            found = await session.execute(
                select(Ticket.id, Ticket.card_chat_id, Ticket.card_message_id).where(
                    Ticket.id.in_(ticket_ids), Ticket.card_message_id.is_not(None)
                )
            )
            return {tid: (int(chat), int(msg)) for tid, chat, msg in found}

    async def send_due(self) -> int:
        """One pass: claim due messages, send them, record what happened. Returns how many were sent."""
        self._passes += 1
        try:
            return await self._send_due()
        finally:
            self._passes -= 1

    async def _send_due(self) -> int:
        rows = await self._claim()
        if not rows:
            return 0
        outcomes: list[_Outcome] = []
        by_chat: dict[int, list[OutboxMessage]] = {}
        cards = await self._card_ids(
            {int(r.payload["ticket_card"]) for r in rows if r.payload.get("ticket_card")}
        )
        for r in rows:
            ticket_card = r.payload.get("ticket_card")
            if ticket_card:
                ids = cards.get(int(ticket_card))
                if ids is None:
                    # The card itself is not sent yet: edit it a little later.
                    wait = SendResult(False, retry_after=1.0, error=_CARD_PENDING)
                    outcomes.append(_Outcome(r.id, r.chat_id, wait, None, None, r.attempts))
                    continue
                payload = {k: v for k, v in r.payload.items() if k != "ticket_card"}
                r.payload = {**payload, "chat_id": ids[0], "message_id": ids[1]}
            by_chat.setdefault(r.chat_id, []).append(r)
        sent = _Sent()
        sending = asyncio.gather(*(self._send_chat(v, sent) for v in by_chat.values()))
        try:
            await self._record_sent(sending, sent)
        except Exception:
            await asyncio.gather(sending, return_exceptions=True)  # no send left running unwatched
            raise
        results = sending.result()
        outcomes += [o for chat in results for o in chat]
        await self._record(outcomes)
        return sum(1 for o in outcomes if o.result.ok)

    async def _record(self, outcomes: list[_Outcome]) -> None:
        """What became of the messages not sent (sent ones were recorded as they went)."""
        outcomes = [o for o in outcomes if not o.result.ok]
        if not outcomes:
            return
        now = utcnow()
        holds: dict[int, tuple[int, dt.datetime]] = {}
        async with self.sf() as session, session.begin():
            blocked: set[int] = set()
            # One query for the whole batch (a round trip per row was the sender's main cost).
            found = await session.scalars(
                select(OutboxMessage).where(OutboxMessage.id.in_([o.row_id for o in outcomes]))
            )
            rows = {r.id: r for r in found}
            for o in outcomes:
                row = rows.get(o.row_id)
                if row is None:
                    continue
                res = o.result
                row.attempts = o.attempts
                row.locked_until = None
                row.last_error = (res.error or "")[:500]
                if res.blocked:
                    row.status = "dead"
                    blocked.add(o.chat_id)
                elif res.permanent or o.attempts >= MAX_ATTEMPTS:
                    row.status = "dead"
                    log.error("outbox message %s given up: %s", row.id, res.error)
                elif res.error == _WAITING and o.chat_id in holds:
                    row.status, row.attempts = "pending", o.attempts
                    row.next_attempt_at = holds[o.chat_id][1]
                else:
                    if res.retry_after is None:
                        # Exponential backoff with jitter: 1, 2, 4 … 300 s.
                        delay = min(300.0, 2 ** max(0, o.attempts - 1)) * (0.8 + 0.4 * random.random())
                        self.retries += 1
                    else:
                        delay = res.retry_after
                        self.retries += res.retry_after > 0
                    row.status = "pending"
                    row.next_attempt_at = now + dt.timedelta(seconds=delay)
                    if res.error != _CARD_PENDING:  # a card edit may overtake; a message may not
                        holds.setdefault(o.chat_id, (row.id, row.next_attempt_at))
            # Messages of a waiting chat that were not in this batch wait too: order is kept.
            for chat_id, (first_id, until) in holds.items():
                await session.execute(
                    update(OutboxMessage)
                    .where(
                        OutboxMessage.chat_id == chat_id,
                        OutboxMessage.status == "pending",
                        OutboxMessage.id > first_id,
                        OutboxMessage.next_attempt_at < until,
                    )
                    .values(next_attempt_at=until)
                )
            if self.on_blocked:
                for chat_id in blocked:
                    await self.on_blocked(session, chat_id)
