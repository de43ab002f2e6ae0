"""Service-level tests (no Telegram): office hours, the outbox, tickets, rendering."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from sqlalchemy import select, update

from bot import kb_store
from bot.conversation import CitizenInfo, Conversation
from bot.models import Citizen, OutboxMessage, Ticket, utcnow
from bot.office_hours import OfficeHours
from bot.outbox import Limits, OutboxSender, SendResult, enqueue
from bot.replies import Button, Outgoing, Reply
from bot.runtime import Runtime
from bot.tickets import StaffDesk, StaffMember
from handlers.callbacks import pack
from handlers.render import keyboard, split_text, to_requests, utf16_len

pytestmark = pytest.mark.postgres  # the outbox and tickets run again on PostgreSQL (conftest)

SH = ZoneInfo("Asia/Shanghai")
STAFF_CHAT = -100
OUT_OF_SCOPE = "婚姻登记需要带什么材料"
ALICE = StaffMember(1, "李四")
BOB = StaffMember(2, "王五")


def sh(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SH)


# --- fast runtime: seed one database per module, copy it per test ----------------------------


@pytest.fixture
def runtime(seeded_runtime: Runtime) -> Runtime:
    """conftest's ``runtime``, from a copy of the seeded template database (faster)."""
    return seeded_runtime


# --- office hours ------------------------------------------------------------------------------

WEEKDAYS = OfficeHours.parse("Mon-Fri 08:30-12:00,14:30-18:00")


def _makeup_workdays_2026() -> list[dt.date]:
    day, found = dt.date(2026, 1, 1), []
    while day.year == 2026:
        if day.weekday() >= 5 and chinese_calendar.is_workday(day):
            found.append(day)
        day += dt.timedelta(days=1)
    return found


def test_national_day_is_closed() -> None:
    assert dt.date(2026, 10, 1).weekday() == 3  # a Thursday
    assert chinese_calendar.is_holiday(dt.date(2026, 10, 1))
    assert not WEEKDAYS.is_open(sh(2026, 10, 1, 10, 0))


@pytest.mark.parametrize("day", [5, 6, 7])
def test_national_day_week_weekdays_are_closed(day: int) -> None:
    date = dt.date(2026, 10, day)
    assert date.weekday() < 5 and chinese_calendar.is_holiday(date)
    assert not WEEKDAYS.is_open(sh(2026, 10, day, 10, 0))
    assert not WEEKDAYS.is_open(sh(2026, 10, day, 15, 0))


def test_weekend_makeup_workday_is_open_with_monday_hours() -> None:
    makeup = _makeup_workdays_2026()
    assert makeup, "chinesecalendar should know 2026's make-up working days"
    for day in makeup:
        assert WEEKDAYS.is_open(dt.datetime.combine(day, dt.time(10, 0), SH)), day
        assert not WEEKDAYS.is_open(dt.datetime.combine(day, dt.time(12, 30), SH)), day
        assert not WEEKDAYS.is_open(dt.datetime.combine(day, dt.time(19, 0), SH)), day


def test_normal_wednesday_open_in_the_morning_closed_at_lunch() -> None:
    wed = dt.date(2026, 3, 11)
    assert wed.weekday() == 2 and chinese_calendar.is_workday(wed)
    assert WEEKDAYS.is_open(sh(2026, 3, 11, 10, 0))
    assert not WEEKDAYS.is_open(sh(2026, 3, 11, 12, 30))
    assert WEEKDAYS.is_open(sh(2026, 3, 11, 15, 0))
    assert not WEEKDAYS.is_open(sh(2026, 3, 11, 8, 0))
    # A naive or UTC moment is read as UTC: 02:00 UTC is 10:00 in Shanghai.
    assert WEEKDAYS.is_open(dt.datetime(2026, 3, 11, 2, 0))
    assert WEEKDAYS.is_open(dt.datetime(2026, 3, 11, 2, 0, tzinfo=dt.UTC))


def test_four_working_hours_from_friday_afternoon_land_on_monday() -> None:
    start = sh(2026, 3, 13, 16, 0)  # Friday: 2 h left today
    assert start.weekday() == 4
    end = WEEKDAYS.add_working_time(start, 4)
    assert end.astimezone(SH) == sh(2026, 3, 16, 10, 30)  # Monday 08:30 + 2 h
    assert WEEKDAYS.working_hours_between(start, end) == pytest.approx(4.0)


def test_working_time_skips_the_national_day_holiday() -> None:
    start = sh(2026, 9, 30, 16, 0)  # Wednesday before National Day
    end = WEEKDAYS.add_working_time(start, 4)
    assert end.astimezone(SH) == sh(2026, 10, 8, 10, 30)
    assert WEEKDAYS.working_hours_between(start, end) == pytest.approx(4.0)


def test_next_open_after_hours_and_over_a_holiday() -> None:
    assert WEEKDAYS.next_open(sh(2026, 3, 11, 12, 30)).astimezone(SH) == sh(2026, 3, 11, 14, 30)
    assert WEEKDAYS.next_open(sh(2026, 3, 11, 10, 0)).astimezone(SH) == sh(2026, 3, 11, 10, 0)
    assert WEEKDAYS.next_open(sh(2026, 9, 30, 19, 0)).astimezone(SH) == sh(2026, 10, 8, 8, 30)


def test_unknown_year_falls_back_to_weekdays() -> None:
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(dt.date(2030, 1, 2))
    wed, sat = sh(2030, 1, 2, 10, 0), sh(2030, 1, 5, 10, 0)
    assert wed.weekday() == 2 and sat.weekday() == 5
    assert WEEKDAYS.is_open(wed)
    assert not WEEKDAYS.is_open(sat)
    friday = sh(2030, 1, 4, 16, 0)
    assert WEEKDAYS.add_working_time(friday, 4).astimezone(SH) == sh(2030, 1, 7, 10, 30)
    assert WEEKDAYS.next_open(sat).astimezone(SH) == sh(2030, 1, 7, 8, 30)
    assert WEEKDAYS.working_hours_between(friday, sh(2030, 1, 7, 10, 30)) == pytest.approx(4.0)


@pytest.mark.parametrize(
    "text", ["Mon-Fri 25:00-26:00", "Funday 08:00-12:00", "Mon-Fri 12:00-08:00", "", "Mon-Fri"]
)
def test_parse_rejects_bad_office_hours(text: str) -> None:
    with pytest.raises(ValueError):
        OfficeHours.parse(text)


def test_configured_weekend_hours_are_honoured_on_an_ordinary_saturday() -> None:
    hours = OfficeHours.parse("Mon-Sat 09:00-12:00")
    saturday = dt.date(2026, 3, 14)
    assert saturday.weekday() == 5
    assert chinese_calendar.get_holiday_detail(saturday) == (True, None)  # an ordinary weekend, no festival
    assert hours.is_open(sh(2030, 1, 5, 10, 0))  # a Saturday in a year chinesecalendar does not know
    assert hours.is_open(sh(2026, 3, 14, 10, 0))  # an ordinary Saturday in 2026: closed (the bug)


# --- outbox ------------------------------------------------------------------------------------

FAST = Limits(
    global_per_second=10_000,
    private_per_second=10_000,
    private_burst=10_000,
    group_per_minute=600_000,
    group_burst=10_000,
)


class FakeTransport:
    """Records calls; answers from a script (then OK)."""

    def __init__(self, script: list[SendResult] | None = None, delay: float = 0.0) -> None:
        self.script = list(script or [])
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.delay = delay
        self._next_id = 1000

    async def __call__(self, method: str, payload: dict[str, Any]) -> SendResult:
        self.calls.append((method, payload))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.script:
            return self.script.pop(0)
        self._next_id += 1
        return SendResult(True, message_id=self._next_id)

    def texts(self, chat_id: int | None = None) -> list[str]:
        return [p["text"] for _m, p in self.calls if chat_id is None or p["chat_id"] == chat_id]


async def _enqueue_texts(rt: Runtime, items: list[tuple[int, str]]) -> list[int]:
    async with rt.sf() as session:
        rows = [await enqueue(session, chat, "sendMessage", {"text": text}) for chat, text in items]
        await session.commit()
        return [r.id for r in rows]


async def _rows(rt: Runtime) -> dict[int, OutboxMessage]:
    async with rt.sf() as session:
        return {r.id: r for r in await session.scalars(select(OutboxMessage))}


async def _make_all_due(rt: Runtime) -> None:
    async with rt.sf() as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "pending")
            .values(next_attempt_at=utcnow() - dt.timedelta(seconds=1))
        )
        await session.commit()


async def test_outbox_sends_each_chats_messages_in_order(runtime: Runtime) -> None:
    items = [(c, f"{c}-{i}") for i in range(6) for c in (11, 22)]
    await _enqueue_texts(runtime, items)
    transport = FakeTransport()
    sender = OutboxSender(runtime.sf, transport, limits=FAST)
    assert await sender.send_due() == 12
    assert transport.texts(11) == [f"11-{i}" for i in range(6)]
    assert transport.texts(22) == [f"22-{i}" for i in range(6)]
    rows = await _rows(runtime)
    assert {r.status for r in rows.values()} == {"sent"}
    assert all(r.result_message_id for r in rows.values())
    assert await sender.send_due() == 0  # nothing is sent twice


async def test_outbox_keeps_telegrams_per_chat_limits_without_holding_up_other_chats(
    runtime: Runtime,
) -> None:
    # The staff group at its 20-a-minute limit and a citizen at 1 a second must not delay a
    # second citizen's answer: their extra messages are rescheduled, in order, not slept on.
    staff = [(-44, f"card-{i}") for i in range(5)]
    chatty = [(11, f"11-{i}") for i in range(5)]
    await _enqueue_texts(runtime, [*staff, *chatty, (22, "22-0")])
    transport = FakeTransport()
    limits = Limits(global_per_second=1000, private_per_second=1, private_burst=3, group_per_minute=20,
                    group_burst=3)  # fmt: skip
    sender = OutboxSender(runtime.sf, transport, limits=limits)
    started = time.monotonic()
    assert await sender.send_due() == 7
    assert time.monotonic() - started < 1.0  # nobody waited for the group's or 11's limit
    assert transport.texts(22) == ["22-0"]
    assert transport.texts(-44) == ["card-0", "card-1", "card-2"]
    assert transport.texts(11) == ["11-0", "11-1", "11-2"]
    rows = await _rows(runtime)
    later = sorted((r for r in rows.values() if r.status == "pending"), key=lambda r: r.id)
    assert [r.payload["text"] for r in later] == ["card-3", "card-4", "11-3", "11-4"]
    group_next = min(r.next_attempt_at for r in later if r.chat_id == -44)
    assert group_next - utcnow() > dt.timedelta(seconds=2)  # about 3 s: 20 a minute
    assert await sender.send_due() == 0  # not due yet: nothing sent early
    await _make_all_due(runtime)
    await asyncio.sleep(1.1)  # 11's bucket has a token again; the group's has not
    assert await sender.send_due() == 1
    assert transport.texts(11) == ["11-0", "11-1", "11-2", "11-3"]  # still in order


async def test_outbox_retries_a_network_error_without_losing_or_reordering(runtime: Runtime) -> None:
    ids = await _enqueue_texts(runtime, [(11, "first"), (11, "second"), (11, "third")])
    transport = FakeTransport([SendResult(False, error="net")])
    sender = OutboxSender(runtime.sf, transport, limits=FAST)
    assert await sender.send_due() == 0
    assert transport.texts() == ["first"]  # the others wait behind it
    rows = await _rows(runtime)
    assert [rows[i].status for i in ids] == ["pending"] * 3
    assert rows[ids[0]].last_error == "net"
    assert rows[ids[0]].next_attempt_at > utcnow()  # backed off, not due at once
    assert await sender.send_due() == 0  # still backing off
    await _make_all_due(runtime)
    assert await sender.send_due() == 3
    assert transport.texts() == ["first", "first", "second", "third"]
    rows = await _rows(runtime)
    assert [rows[i].status for i in ids] == ["sent"] * 3
    assert rows[ids[0]].attempts == 2


async def test_outbox_honours_retry_after(runtime: Runtime) -> None:
    (row_id,) = await _enqueue_texts(runtime, [(11, "hello")])
    transport = FakeTransport([SendResult(False, retry_after=30, code=429)])
    sender = OutboxSender(runtime.sf, transport, limits=FAST)
    before = utcnow()
    assert await sender.send_due() == 0
    row = (await _rows(runtime))[row_id]
    assert row.status == "pending"
    wait = (row.next_attempt_at - before).total_seconds()
    assert 29 <= wait <= 32
    assert await sender.send_due() == 0  # not retried before the wait is over


async def test_outbox_blocked_chat_is_dead_and_reported(runtime: Runtime) -> None:
    ids = await _enqueue_texts(runtime, [(33, "to blocked"), (44, "to other")])
    seen: list[int] = []

    async def on_blocked(session: Any, chat_id: int) -> None:
        seen.append(chat_id)

    transport = FakeTransport([SendResult(False, blocked=True, code=403, error="blocked")])
    sender = OutboxSender(runtime.sf, transport, on_blocked=on_blocked, limits=FAST)
    assert await sender.send_due() == 1
    rows = await _rows(runtime)
    assert rows[ids[0]].status == "dead"
    assert rows[ids[1]].status == "sent"
    assert seen == [33]
    await _make_all_due(runtime)
    assert await sender.send_due() == 0
    assert len(transport.calls) == 2  # the blocked message is not tried again


async def test_outbox_permanent_error_is_dead_and_does_not_hold_the_chat(runtime: Runtime) -> None:
    ids = await _enqueue_texts(runtime, [(11, "bad"), (11, "good")])
    transport = FakeTransport([SendResult(False, permanent=True, code=400, error="bad request")])
    sender = OutboxSender(runtime.sf, transport, limits=FAST)
    assert await sender.send_due() == 1
    rows = await _rows(runtime)
    assert rows[ids[0]].status == "dead" and rows[ids[0]].last_error == "bad request"
    assert rows[ids[1]].status == "sent"
    await _make_all_due(runtime)
    assert await sender.send_due() == 0
    assert transport.texts() == ["bad", "good"]


async def test_outbox_transport_exception_is_retried_not_lost(runtime: Runtime) -> None:
    (row_id,) = await _enqueue_texts(runtime, [(11, "boom")])

    async def broken(method: str, payload: dict[str, Any]) -> SendResult:
        raise RuntimeError("transport bug")

    assert await OutboxSender(runtime.sf, broken, limits=FAST).send_due() == 0
    assert (await _rows(runtime))[row_id].status == "pending"
    await _make_all_due(runtime)
    transport = FakeTransport()
    assert await OutboxSender(runtime.sf, transport, limits=FAST).send_due() == 1
    assert transport.texts() == ["boom"]


async def test_two_senders_on_one_database_send_each_message_once(runtime: Runtime) -> None:
    items = [(c, f"{c}-{i}") for i in range(10) for c in (11, 22, 33, -44)]
    await _enqueue_texts(runtime, items)
    t1, t2 = FakeTransport(delay=0.001), FakeTransport(delay=0.001)
    # Small batches: a chat whose earlier message is with the other sender waits (order), so with
    # 4 chats a batch of 7 would let the first sender take every chat each time.
    s1 = OutboxSender(runtime.sf, t1, limits=FAST, batch_size=3)
    s2 = OutboxSender(runtime.sf, t2, limits=FAST, batch_size=3)
    for _ in range(20):
        sent = await asyncio.gather(s1.send_due(), s2.send_due())
        if sum(sent) == 0:
            break
    texts = t1.texts() + t2.texts()
    assert sorted(texts) == sorted(t for _c, t in items)  # each exactly once
    assert len(texts) == len(set(texts))
    assert t1.calls and t2.calls  # both senders took part
    rows = await _rows(runtime)
    assert {r.status for r in rows.values()} == {"sent"}
    assert all(r.attempts == 1 for r in rows.values())


# --- tickets -----------------------------------------------------------------------------------


def _services(runtime: Runtime) -> tuple[StaffDesk, Conversation]:
    hours = OfficeHours.parse("Mon-Sun 00:00-24:00")
    desk = StaffDesk(staff_chat_id=STAFF_CHAT, hours=hours, reminder_hours=4.0)
    return desk, Conversation(runtime.knowledge, desk, runtime.settings.bureau_facts())


def _info(uid: int, name: str = "张三") -> CitizenInfo:
    return CitizenInfo("telegram", uid, uid, name)


async def _escalate(runtime: Runtime, conv: Conversation, uid: int = 1001) -> tuple[int, list[Outgoing]]:
    async with runtime.sf() as session:
        citizen = await conv.citizen(session, _info(uid))
        out = await conv.ask(session, citizen, OUT_OF_SCOPE)
        await session.commit()
        ticket = await session.scalar(select(Ticket).where(Ticket.citizen_id == citizen.id))
        assert ticket is not None
        return ticket.id, out


async def test_out_of_scope_question_becomes_a_ticket_in_the_queue(runtime: Runtime) -> None:
    desk, conv = _services(runtime)
    tid, out = await _escalate(runtime, conv)
    to_citizen = [o for o in out if o.chat_id == 1001]
    to_staff = [o for o in out if o.chat_id == STAFF_CHAT]
    assert len(to_citizen) == 1 and f"#{tid}" in to_citizen[0].reply.text
    assert len(to_staff) == 1 and to_staff[0].link_kind == "card" and to_staff[0].ticket_id == tid
    assert OUT_OF_SCOPE in to_staff[0].reply.text
    async with runtime.sf() as session:  # a fresh session: it was committed
        ticket = await session.get(Ticket, tid)
        assert ticket is not None and ticket.status == "open" and ticket.question == OUT_OF_SCOPE
        queue = await desk.queue(session)
    assert f"#{tid}" in queue and OUT_OF_SCOPE in queue
    # A further message joins the same ticket instead of opening another one.
    async with runtime.sf() as session:
        citizen = await conv.citizen(session, _info(1001))
        more = await conv.ask(session, citizen, "我再补充一句")
        await session.commit()
        assert len(list(await session.scalars(select(Ticket)))) == 1
    assert any(o.chat_id == STAFF_CHAT and "我再补充一句" in o.reply.text for o in more)


async def test_two_simultaneous_claims_exactly_one_wins(runtime: Runtime) -> None:
    desk, conv = _services(runtime)
    tid, _out = await _escalate(runtime, conv)

    async def claim(staff: StaffMember) -> str:
        async with runtime.sf() as session:
            text, _items = await desk.claim(session, tid, staff)
            await session.commit()
            return text

    results = await asyncio.gather(claim(ALICE), claim(BOB))
    assert sum("您已认领" in r for r in results) == 1
    loser = next(r for r in results if "您已认领" not in r)
    assert "已由" in loser
    async with runtime.sf() as session:
        ticket = await session.get(Ticket, tid)
        assert ticket.claimed_by in (ALICE.name, BOB.name) and ticket.claimed_by in loser


async def test_staff_reply_reaches_the_citizen_with_the_ticket_number(runtime: Runtime) -> None:
    desk, conv = _services(runtime)
    tid, _out = await _escalate(runtime, conv)
    answer = "请带身份证和户口簿到县民政局婚姻登记处办理。"
    async with runtime.sf() as session:
        ticket = await session.get(Ticket, tid)
        note, out = await desk.reply(session, ticket, ALICE, text=answer)
        await session.commit()
    assert f"#{tid}" in note
    to_citizen = [o for o in out if o.chat_id == 1001]
    assert len(to_citizen) == 1
    rendered = to_requests(to_citizen[0])[0][1]["text"]
    assert f"#{tid}" in rendered and answer in rendered
    card = [o for o in out if o.chat_id == STAFF_CHAT]
    assert card and card[0].edit_card and "已回复" in card[0].reply.text
    async with runtime.sf() as session:
        ticket = await session.get(Ticket, tid)
        assert ticket.status == "answered" and ticket.claimed_by == ALICE.name
        assert answer in await desk.detail(session, tid)


async def test_close_then_rate_only_valid_scores_by_the_owner(runtime: Runtime) -> None:
    desk, conv = _services(runtime)
    tid, _out = await _escalate(runtime, conv)
    async with runtime.sf() as session:
        citizen = await conv.citizen(session, _info(1001))
        early = await conv.rate(session, citizen, tid, 5)
        assert "还在处理中" in early[0].reply.text
        _note, out = await desk.close(session, tid, ALICE)
        await session.commit()
    stars = [o for o in out if o.chat_id == 1001]
    assert stars and len([b for row in stars[0].reply.buttons for b in row]) == 5
    async with runtime.sf() as session:
        citizen = await conv.citizen(session, _info(1001))
        thanks = await conv.rate(session, citizen, tid, 5)
        assert "5" in thanks[0].reply.text
        await session.commit()
    async with runtime.sf() as session:
        citizen = await conv.citizen(session, _info(1001))
        assert await conv.rate(session, citizen, tid, 9) == []
        stranger = await conv.citizen(session, _info(2002, "路人"))
        assert await conv.rate(session, stranger, tid, 1) == []
        await session.commit()
    async with runtime.sf() as session:
        assert (await session.get(Ticket, tid)).rating == 5
        # Reopening puts it back in the queue.
        _note, _out = await desk.reopen(session, tid, BOB)
        await session.commit()
        assert f"#{tid}" in await desk.queue(session)


async def test_draft_entry_from_a_staff_answer_is_not_served(runtime: Runtime) -> None:
    desk, conv = _services(runtime)
    tid, _out = await _escalate(runtime, conv)
    async with runtime.sf() as session:
        note, _items = await desk.draft_entry(session, tid, ALICE)
        assert "还没有" in note  # nothing to draft before a staff answer
        ticket = await session.get(Ticket, tid)
        await desk.reply(session, ticket, ALICE, text="结婚登记请双方本人带身份证、户口簿到场。")
        await session.commit()
    async with runtime.sf() as session:
        note, _items = await desk.draft_entry(session, tid, ALICE)
        await session.commit()
    assert f"ticket-{tid}" in note
    async with runtime.sf() as session:
        history = await kb_store.history(session, f"ticket-{tid}")
    assert [h.state for h in history] == ["draft"]
    assert history[0].origin_ticket_id == tid
    await runtime.knowledge.load()
    result = runtime.knowledge.match(OUT_OF_SCOPE)
    assert result.entry is None or result.entry.id != f"ticket-{tid}"
    assert all(c.entry_id != f"ticket-{tid}" for c in result.candidates)
    assert runtime.knowledge.entry(f"ticket-{tid}") is None


async def test_due_reminders_fire_once_after_the_working_hours(runtime: Runtime) -> None:
    desk, conv = _services(runtime)
    tid, _out = await _escalate(runtime, conv)
    async with runtime.sf() as session:
        created = (await session.get(Ticket, tid)).created_at
    early = desk.hours.add_working_time(created, 1)
    late = desk.hours.add_working_time(created, 5)
    async with runtime.sf() as session:
        assert await desk.due_reminders(session, now=early) == []
        first = await desk.due_reminders(session, now=late)
        await session.commit()
    assert len(first) == 1 and first[0].chat_id == STAFF_CHAT and f"#{tid}" in first[0].reply.text
    async with runtime.sf() as session:
        assert await desk.due_reminders(session, now=late + dt.timedelta(hours=10)) == []


async def test_unreachable_citizen_is_marked_on_the_card(runtime: Runtime) -> None:
    desk, conv = _services(runtime)
    tid, _out = await _escalate(runtime, conv)
    async with runtime.sf() as session:
        out = await desk.unreachable(session, 1001)
        await session.commit()
    edits = [o for o in out if o.edit_card and o.ticket_id == tid]
    assert len(edits) == 1 and "屏蔽" in edits[0].reply.text
    async with runtime.sf() as session:
        citizen = await session.scalar(select(Citizen).where(Citizen.chat_id == 1001))
        assert citizen.unreachable_at is not None
        assert await desk.unreachable(session, 1001) == []  # marked once
        ticket = await session.get(Ticket, tid)
        note, _items = await desk.reply(session, ticket, ALICE, text="您好")
        assert "屏蔽" in note


# --- rendering ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "".join(f"第{i}段：低保申请需要带身份证。😀请到乡镇民政办办理！\n" for i in range(500))[:10_000],
        "长" * 10_000,
        "😀" * 10_000,
        ("低保 apply how. " * 800)[:10_000],
    ],
    ids=["sentences", "no-breaks", "emoji", "ascii"],
)
def test_split_text_respects_the_limit_and_keeps_every_character(text: str) -> None:
    assert len(text) == 10_000
    pieces = split_text(text)
    assert len(pieces) > 1
    assert all(utf16_len(p) <= 3800 for p in pieces)
    assert re.sub(r"\s", "", "".join(pieces)) == re.sub(r"\s", "", text)


def test_to_requests_escapes_user_text() -> None:
    reply = Reply("<script>alert(1)</script> & <b>", header="工单 <#1>", footer="<i>注</i>")
    ((method, payload),) = to_requests(Outgoing(5, reply))
    assert method == "sendMessage" and payload["parse_mode"] == "HTML"
    assert "&lt;script&gt;" in payload["text"] and "<script>" not in payload["text"]
    assert "&amp;" in payload["text"] and "&lt;#1&gt;" in payload["text"]
    long = to_requests(Outgoing(5, Reply("<x>" + "长" * 9000)))
    assert len(long) > 1 and all("<x>" not in p["text"] for _m, p in long)


def test_callback_data_fits_for_a_48_char_entry_id() -> None:
    entry_id = "dibao-" + "x" * 42
    assert len(entry_id) == 48
    reply = Reply(
        "q",
        buttons=(
            (Button("问题" * 40, "answer", (entry_id, 2_000_000_000)),),
            (Button("有帮助", "feedback", (2_000_000_000, 1)), Button("⭐", "rate", (2_000_000_000, 5))),
            (Button("认领", "claim", (2_000_000_000,)),),
        ),
    )
    markup = keyboard(reply)
    assert markup is not None
    for row in markup["inline_keyboard"]:
        for button in row:
            assert len(button["callback_data"].encode()) <= 64
            assert len(button["text"]) <= 60


def test_callback_data_fits_for_the_longest_valid_entry_id() -> None:
    from knowledge.entries import _ID_RE

    assert not _ID_RE.match("a" * 41)
    entry_id = "a" * 40
    assert _ID_RE.match(entry_id)
    assert len(pack(Button("q", "answer", (entry_id, 1))).encode()) <= 64
