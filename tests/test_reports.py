"""Reports (bot/reports.py): statistics, gaps and the weekly report, on rows at known times."""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from bot import reports
from bot.models import Citizen, QueryLog, Ticket
from bot.runtime import Runtime

SH = ZoneInfo("Asia/Shanghai")
WEEK = "2026-W47"  # Monday 2026-11-16 … Sunday 2026-11-22, Asia/Shanghai


def sh(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SH)


async def _citizen(session: AsyncSession, n: int = 1) -> Citizen:
    c = Citizen(channel="telegram", external_id=1000 + n, chat_id=1000 + n, display_name=f"市民{n}")
    session.add(c)
    await session.flush()
    return c


def _q(
    at: dt.datetime,
    question: str,
    outcome: str,
    entry_id: str | None = None,
    feedback: str | None = None,
    ticket_id: int | None = None,
) -> QueryLog:
    return QueryLog(
        at=at, question=question, outcome=outcome, entry_id=entry_id, feedback=feedback, ticket_id=ticket_id
    )


def _ticket(
    citizen: Citizen,
    created: dt.datetime,
    *,
    wait_minutes: float | None = None,
    rating: int | None = None,
    topic: str | None = None,
) -> Ticket:
    return Ticket(
        citizen_id=citizen.id,
        question="测试工单",
        created_at=created,
        first_response_at=created + dt.timedelta(minutes=wait_minutes) if wait_minutes is not None else None,
        answered_by="李四" if wait_minutes is not None else None,
        status="closed" if rating else "open",
        rating=rating,
        topic=topic,
    )


async def seed(runtime: Runtime) -> None:
    """Citizen questions and tickets around the week 2026-W47 (also usable to draw a sample chart)."""
    async with runtime.sf() as session:
        c = await _citizen(session)
        session.add_all(
            [
                # Sunday 23:59 in Shanghai is the previous week; Monday 00:00 is this week.
                _q(sh(2026, 11, 15, 23, 59), "低保怎么申请", "answer", "dibao-apply"),
                _q(sh(2026, 11, 16, 0, 0), "低保怎么申请", "answer", "dibao-apply", feedback="helpful"),
                _q(sh(2026, 11, 16, 9, 0), "低保咋申请", "answer", "dibao-apply", feedback="not_helpful"),
                _q(sh(2026, 11, 16, 9, 5), "你好", "answer", "hanxuan-greeting"),
                _q(sh(2026, 11, 16, 9, 6), "刷屏", "flood"),
                # A clarification the citizen resolved by choosing (pick logged as its own answer row).
                _q(sh(2026, 11, 17, 10, 0), "低保的事", "clarify", "dibao-apply"),
                _q(sh(2026, 11, 17, 10, 1), "低保怎么申请", "answer", "dibao-apply"),
                _q(sh(2026, 11, 17, 11, 0), "救助的事情", "clarify"),
                _q(sh(2026, 11, 17, 11, 1), "😀😀", "clarify"),  # junk: no gap
                _q(sh(2026, 11, 17, 11, 2), "〔已按本人要求删除〕", "clarify"),  # erased: counted, not shown
                _q(sh(2026, 11, 18, 9, 0), "请问残疾人补贴怎么领", "escalate"),
                _q(sh(2026, 11, 19, 9, 0), "残疾人补贴怎么领", "escalate"),
                _q(sh(2026, 11, 20, 9, 0), "残疾人补贴怎么领取", "escalate"),
                _q(sh(2026, 11, 22, 23, 59), "婚姻登记要带什么", "escalate"),
                _q(sh(2026, 11, 23, 0, 0), "下一周的问题", "escalate"),
                # Tickets: opened Monday and Wednesday; first replies after 10, 30 and 120 minutes.
                _ticket(c, sh(2026, 11, 16, 9, 0), wait_minutes=10, rating=5, topic="低保"),
                _ticket(c, sh(2026, 11, 18, 9, 0), wait_minutes=30, rating=3),
                _ticket(c, sh(2026, 11, 18, 15, 0), wait_minutes=120),
                _ticket(c, sh(2026, 11, 18, 16, 0)),  # nobody answered yet
                _ticket(c, sh(2026, 11, 15, 23, 0), wait_minutes=1, rating=1),  # previous week
            ]
        )
        await session.commit()


@pytest.fixture
async def seeded(runtime: Runtime) -> Runtime:
    await seed(runtime)
    return runtime


async def test_stats_count_what_the_bureau_reports(seeded: Runtime) -> None:
    async with seeded.sf() as session:
        s = await reports.stats(session, sh(2026, 11, 16), sh(2026, 11, 23))
    # 2 direct answers + 1 pick after a clarification; 3 unresolved clarifications; 4 escalations.
    assert (s.answered_by_bot, s.clarified, s.escalated) == (3, 4, 4)
    assert s.questions == 3 + 3 + 4
    assert s.greetings == 1  # greetings and flood are not questions
    assert (s.helpful, s.not_helpful) == (1, 1)
    assert (s.tickets, s.answered_by_staff) == (4, 3)
    assert s.median_first_response_seconds == 30 * 60
    assert (s.satisfaction_avg, s.satisfaction_count) == (4.0, 2)


async def test_weekly_report_uses_shanghai_days(seeded: Runtime) -> None:
    async with seeded.sf() as session:
        r = await reports.weekly_report(session, WEEK)
    assert (r.start, r.end) == (dt.date(2026, 11, 16), dt.date(2026, 11, 22))
    assert [d.date for d in r.days] == [dt.date(2026, 11, 16) + dt.timedelta(days=i) for i in range(7)]
    by_day = {d.date.day: d for d in r.days}
    assert by_day[16].questions == 2  # 00:00 Monday counts; Sunday 23:59 of the week before does not
    assert by_day[16].answered_by_bot == 2 and by_day[16].tickets == 1
    assert by_day[22].escalated == 1  # Sunday 23:59 is still this week
    assert by_day[18].tickets == 3 and by_day[18].answered_by_staff == 2
    assert by_day[18].median_first_response_seconds == 75 * 60
    assert by_day[21].questions == 0 and by_day[21].median_first_response_seconds is None
    assert r.totals.questions == sum(d.questions for d in r.days) == 10
    assert r.totals.tickets == 4
    assert r.top_topics[0] == reports.TopicCount("低保", 3)
    assert r.unanswered[0].count == 3 and "残疾人补贴" in r.unanswered[0].question


async def test_gaps_group_similar_questions(seeded: Runtime) -> None:
    async with seeded.sf() as session:
        week = await reports.gaps(session, days=7, now=sh(2026, 11, 23, 8))
        two_days = await reports.gaps(session, days=2, now=sh(2026, 11, 23, 8))
    first = week[0]
    assert first.count == 3 and first.kinds == {"escalate": 3}
    assert set(first.examples) == {"请问残疾人补贴怎么领", "残疾人补贴怎么领", "残疾人补贴怎么领取"}
    questions = {g.question: g for g in week}
    assert questions["低保咋申请"].kinds == {"not_helpful": 1}
    assert questions["低保咋申请"].entry_ids == ("dibao-apply",)
    assert questions["低保的事"].kinds == {"clarify": 1}  # chosen after asking back: a paraphrase to add
    assert "救助的事情" in questions and "婚姻登记要带什么" in questions
    assert not any("😀" in g.question or "删除" in g.question for g in week)
    assert {g.question for g in two_days} == {"婚姻登记要带什么", "下一周的问题"}


async def test_weekly_report_csv_and_png(seeded: Runtime) -> None:
    async with seeded.sf() as session:
        r = await reports.weekly_report(session, WEEK)
    text = reports.report_csv(r)
    assert text.startswith("\ufeff")  # Excel reads the Chinese correctly
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0][1] == WEEK
    assert rows[1][0] == "日期"
    assert [row[0] for row in rows[2:9]] == [f"2026-11-{d}" for d in range(16, 23)]
    assert rows[9][0] == "合计" and rows[9][1] == "10" and rows[9][5] == "4"
    assert ["低保", "3"] in rows
    png = reports.report_png(r)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


async def test_bad_week_is_refused(runtime: Runtime) -> None:
    async with runtime.sf() as session:
        with pytest.raises(ValueError):
            await reports.weekly_report(session, "2026-47")
        with pytest.raises(ValueError):
            await reports.weekly_report(session, "2026-W54")
        empty = await reports.weekly_report(session, "2020-W53")
    assert empty.totals.questions == 0 and empty.unanswered == []
    assert reports.iso_week(sh(2026, 11, 16, 0, 30)) == WEEK
    assert reports.iso_week(dt.datetime(2026, 11, 15, 16, 30, tzinfo=dt.UTC)) == WEEK
