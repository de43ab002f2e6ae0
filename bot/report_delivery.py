"""The weekly report, delivered to the staff group: every Monday 09:00 (``REPORT_SCHEDULE``).

The bureau reports its hotline handling figures every week. Each instance looks once a minute;
the first to find the week due claims it with a ``job_runs`` row in the same transaction as the
outbox messages (a PNG chart and a CSV), so with several instances the staff group gets the
report exactly once, and the outbox makes sure it is sent even across a restart.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import outbox, reports
from bot.i18n import _
from bot.models import JobRun, utcnow
from bot.reports import WeeklyReport
from bot.transport import upload

JOB = "weekly_report"
_DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_SCHEDULE_RE = re.compile(r"^\s*(mon|tue|wed|thu|fri|sat|sun)[a-z]*\s+(\d{1,2}):(\d{2})\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Schedule:
    weekday: int  # 0 = Monday
    at: dt.time
    tz: str = "Asia/Shanghai"

    @classmethod
    def parse(cls, text: str, tz: str = "Asia/Shanghai") -> Schedule:
        """``Mon 09:00`` (day names in English, 24-hour time, in ``tz``)."""
        m = _SCHEDULE_RE.match(text or "")
        if not m:
            raise ValueError(f"expected a day and a time like 'Mon 09:00', got {text!r}")
        hour, minute = int(m.group(2)), int(m.group(3))
        if hour > 23 or minute > 59:
            raise ValueError(f"no such time of day: {text!r}")
        return cls(_DAYS[m.group(1).lower()[:3]], dt.time(hour, minute), tz)

    def week_due(self, now: dt.datetime) -> str | None:
        """The ISO week whose report is due at ``now``: last week, once this week's slot has come.

        A slot missed while every instance was down is caught up later in the same week.
        """
        zone = ZoneInfo(self.tz)
        local = now.astimezone(zone)
        monday = local.date() - dt.timedelta(days=local.weekday())
        slot = dt.datetime.combine(monday + dt.timedelta(days=self.weekday), self.at, zone)
        if local < slot:
            return None
        return reports.iso_week(monday - dt.timedelta(days=7))


def file_names(report: WeeklyReport) -> tuple[str, str]:
    return f"hotline-report-{report.week}.png", f"hotline-report-{report.week}.csv"


def summary(report: WeeklyReport) -> str:
    """The caption: the week's main figures in one short paragraph (Telegram caption ≤ 1024)."""
    t = report.totals
    median = t.median_first_response_seconds
    minutes = "—" if median is None else f"{median / 60:.0f}"
    rating = "—" if t.satisfaction_avg is None else f"{t.satisfaction_avg:.1f}"
    return _(
        "热线周报 {week}（{start} 至 {end}）\n"
        "咨询 {questions} 条，助手直接解答 {bot} 条，转人工 {tickets} 单，其中工作人员已回复 {staff} 单；"
        "首次回复中位 {minutes} 分钟；满意度 {rating}（{ratings} 人评价）。\n"
        "图表见图片，明细见 CSV 文件。",
        week=report.week,
        start=report.start.isoformat(),
        end=report.end.isoformat(),
        questions=t.questions,
        bot=t.answered_by_bot,
        tickets=t.tickets,
        staff=t.answered_by_staff,
        minutes=minutes,
        rating=rating,
        ratings=t.satisfaction_count,
    )


async def build(session: AsyncSession, week: str, tz: str) -> tuple[WeeklyReport, bytes, str]:
    report = await reports.weekly_report(session, week, tz)
    # Drawing takes a good part of a second: in a thread, so citizens are not kept waiting.
    png = await asyncio.to_thread(reports.report_png, report)
    return report, png, reports.report_csv(report)


async def enqueue_report(
    session: AsyncSession, chat_id: int, report: WeeklyReport, png: bytes, csv: str
) -> None:
    """The chart (with the summary as its caption) and the CSV, in the caller's transaction."""
    png_name, csv_name = file_names(report)
    await outbox.enqueue(
        session, chat_id, "sendPhoto", {"photo": upload(png, png_name), "caption": summary(report)[:1024]}
    )
    await outbox.enqueue(
        session,
        chat_id,
        "sendDocument",
        {"document": upload(csv.encode("utf-8"), csv_name), "caption": report.week},
    )


async def deliver_if_due(
    session: AsyncSession, schedule: Schedule, chat_id: int | None, now: dt.datetime | None = None
) -> str | None:
    """Queue last week's report if it is due and nobody has yet; returns the week if this call did.

    The caller's session must be fresh; it is committed (or rolled back) here.
    """
    if chat_id is None:
        return None
    week = schedule.week_due(now or utcnow())
    if week is None or await session.get(JobRun, (JOB, week)) is not None:
        return None
    report, png, csv = await build(session, week, schedule.tz)
    session.add(JobRun(job=JOB, period=week, detail={"chat_id": chat_id}))
    await enqueue_report(session, chat_id, report, png, csv)
    try:
        await session.commit()
    except IntegrityError:  # another instance claimed the week first
        await session.rollback()
        return None
    return week


def write_files(report: WeeklyReport, png: bytes, csv: str, folder: Path) -> tuple[Path, Path]:
    """``main.py report``: the same two files, written to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    png_name, csv_name = file_names(report)
    png_path, csv_path = folder / png_name, folder / csv_name
    png_path.write_bytes(png)
    csv_path.write_text(csv, encoding="utf-8", newline="")
    return png_path, csv_path
