"""Several instances on one database (SQLite, and PostgreSQL when TEST_DATABASE_URL is set): the
outbox sends every message exactly once and skips none; two staff claiming one ticket through
different instances: exactly one wins, the other is told who has it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select, text

from bot.conversation import CitizenInfo, Conversation
from bot.models import OutboxMessage, Ticket
from bot.office_hours import OfficeHours
from bot.outbox import Limits, OutboxSender, SendResult, enqueue
from bot.runtime import Runtime, create_runtime
from bot.settings import Settings
from bot.tickets import StaffDesk, StaffMember

pytestmark = pytest.mark.postgres

FAST = Limits(global_per_second=1e6, private_per_second=1e6, private_burst=1e6, group_per_minute=1e6,
              group_burst=1e6)  # fmt: skip
STAFF_CHAT = -100


class Transport:
    """A fake Bot API transport shared by the instances: records (instance, chat, text)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str]] = []
        self._ids = itertools.count(1000)

    def for_instance(self, name: str) -> Any:
        async def send(method: str, payload: dict[str, Any]) -> SendResult:
            self.calls.append((name, int(payload["chat_id"]), str(payload["text"])))
            await asyncio.sleep(0)  # let the other instance run in between
            return SendResult(True, message_id=next(self._ids))

        return send


@pytest.fixture
async def second(settings: Settings, runtime: Runtime) -> AsyncIterator[Runtime]:
    """Another instance: its own engine and pool on the same database."""
    rt = await create_runtime(settings)
    try:
        yield rt
    finally:
        await rt.close()


async def _enqueue(rt: Runtime, items: list[tuple[int, str]]) -> None:
    async with rt.sf() as session:
        for chat, body in items:
            await enqueue(session, chat, "sendMessage", {"text": body})
        await session.commit()


async def test_two_senders_send_500_messages_each_exactly_once(runtime: Runtime, second: Runtime) -> None:
    chats = [*range(1, 46), -1001, -1002, -1003, -1004, -1005]  # 45 citizens and 5 groups
    items = [(chat, f"{chat}:{i}") for i in range(10) for chat in chats]
    assert len(items) == 500
    await _enqueue(runtime, items)
    transport = Transport()
    senders = [
        OutboxSender(rt.sf, transport.for_instance(name), limits=FAST, batch_size=16)
        for rt, name in ((runtime, "a"), (second, "b"))
    ]
    for _ in range(500):
        sent = await asyncio.gather(*(s.send_due() for s in senders))
        if sum(sent) == 0:
            break
    bodies = [body for _name, _chat, body in transport.calls]
    assert len(bodies) == 500 and set(bodies) == {body for _chat, body in items}  # none twice, none skipped
    assert {name for name, _c, _b in transport.calls} == {"a", "b"}  # both instances took part
    async with runtime.sf() as session:
        rows = list(await session.scalars(select(OutboxMessage)))
    assert len(rows) == 500 and {r.status for r in rows} == {"sent"} and {r.attempts for r in rows} == {1}


async def test_one_chats_messages_keep_their_order_across_two_senders(
    runtime: Runtime, second: Runtime
) -> None:
    await _enqueue(runtime, [(7, f"7:{i}") for i in range(40)] + [(8, f"8:{i}") for i in range(40)])
    transport = Transport()
    senders = [
        OutboxSender(rt.sf, transport.for_instance(name), limits=FAST, batch_size=4)
        for rt, name in ((runtime, "a"), (second, "b"))
    ]
    for _ in range(200):
        if sum(await asyncio.gather(*(s.send_due() for s in senders))) == 0:
            break
    for chat in (7, 8):
        got = [int(body.split(":")[1]) for _n, c, body in transport.calls if c == chat]
        assert got == list(range(40))  # each once, in order, whichever instance sent it


async def test_a_row_locked_by_another_instance_is_skipped_not_waited_for(
    runtime: Runtime, second: Runtime, db_backend: str
) -> None:
    if db_backend != "postgresql":
        pytest.skip("row locks (FOR UPDATE SKIP LOCKED) are PostgreSQL's; SQLite has one writer")
    await _enqueue(runtime, [(1, "held"), (2, "free-1"), (3, "free-2")])
    transport = Transport()
    sender = OutboxSender(second.sf, transport.for_instance("b"), limits=FAST)
    async with runtime.engine.connect() as other:  # another instance in the middle of its claim
        await other.execute(text("SELECT id FROM outbox WHERE chat_id = 1 FOR UPDATE"))
        # Without SKIP LOCKED this would wait for the other transaction; the guard only stops a hang.
        sent = await asyncio.wait_for(sender.send_due(), timeout=30)
        assert sent == 2 and sorted(b for _n, _c, b in transport.calls) == ["free-1", "free-2"]
        await other.rollback()
    assert await sender.send_due() == 1  # released: now it is sent, once
    assert sorted(b for _n, _c, b in transport.calls) == ["free-1", "free-2", "held"]


async def test_two_claims_through_two_instances_exactly_one_wins(runtime: Runtime, second: Runtime) -> None:
    hours = OfficeHours.parse("Mon-Sun 00:00-24:00")
    desk = StaffDesk(staff_chat_id=STAFF_CHAT, hours=hours, reminder_hours=4.0)
    conv = Conversation(runtime.knowledge, desk, runtime.settings.bureau_facts())
    async with runtime.sf() as session:
        citizen = await conv.citizen(session, CitizenInfo("telegram", 1001, 1001, "张三"))
        await conv.escalate(session, citizen, "婚姻登记需要带什么材料", source="escalate")
        await session.commit()
        ticket_id = await session.scalar(select(Ticket.id))
    assert ticket_id is not None
    alice, bob = StaffMember(1, "李四"), StaffMember(2, "王五")
    start = asyncio.Event()

    async def claim(rt: Runtime, staff: StaffMember) -> str:
        async with rt.sf() as session:
            await start.wait()
            told, _out = await desk.claim(session, ticket_id, staff)
            await session.commit()
            return told

    tasks = [asyncio.create_task(claim(runtime, alice)), asyncio.create_task(claim(second, bob))]
    await asyncio.sleep(0)
    start.set()
    results = await asyncio.gather(*tasks)
    winners = [r for r in results if "您已认领" in r]
    assert len(winners) == 1
    loser = next(r for r in results if r not in winners)
    async with runtime.sf() as session:
        ticket = await session.get(Ticket, ticket_id)
    assert ticket is not None and ticket.claimed_by in (alice.name, bob.name)
    assert f"已由 {ticket.claimed_by} 认领" in loser  # the other is told who has it
