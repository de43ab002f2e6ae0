"""The weekly report reaches the staff group once a week, from whichever instance gets there first."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot import report_delivery
from bot.models import JobRun, OutboxMessage, QueryLog, utcnow
from bot.report_delivery import Schedule
from bot.runtime import Runtime

try:
    from tests.harness import STAFF_CHAT, Harness
except ImportError:  # pragma: no cover
    from harness import STAFF_CHAT, Harness

ROOT = Path(__file__).resolve().parent.parent
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
pytestmark = pytest.mark.postgres


def test_schedule_is_monday_nine_in_shanghai_for_the_week_before() -> None:
    s = Schedule.parse("Mon 09:00")
    assert s.week_due(dt.datetime(2026, 11, 23, 8, 59, tzinfo=SHANGHAI)) is None  # W48 Monday, too early
    assert s.week_due(dt.datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)) == "2026-W47"
    assert s.week_due(dt.datetime(2026, 11, 29, 23, 0, tzinfo=SHANGHAI)) == "2026-W47"  # caught up Sunday
    # 00:30 UTC on Monday is 08:30 in Shanghai: not yet.
    assert s.week_due(dt.datetime(2026, 11, 23, 0, 30, tzinfo=dt.UTC)) is None
    assert s.week_due(dt.datetime(2026, 1, 5, 9, 0, tzinfo=SHANGHAI)) == "2026-W01"
    assert Schedule.parse("friday 17:30").weekday == 4
    for bad in ("", "Mon", "Mon 25:00", "Someday 09:00"):
        with pytest.raises(ValueError):
            Schedule.parse(bad)


async def test_several_instances_queue_the_report_exactly_once(runtime: Runtime) -> None:
    async with runtime.sf() as session:  # something to report: a question in W47
        session.add(
            QueryLog(question="低保怎么申请", outcome="answer", entry_id="dibao-apply", score=0.9,
                     at=dt.datetime(2026, 11, 18, 3, 0, tzinfo=dt.UTC))
        )  # fmt: skip
        await session.commit()
    schedule = Schedule.parse("Mon 09:00")
    now = dt.datetime(2026, 11, 23, 9, 1, tzinfo=SHANGHAI)

    async def instance() -> str | None:
        async with runtime.sf() as session:
            return await report_delivery.deliver_if_due(session, schedule, STAFF_CHAT, now)

    results = await asyncio.gather(*(instance() for _ in range(4)))
    assert sorted(r for r in results if r) == ["2026-W47"]
    # Later passes in the same week do nothing; before the slot nothing is due.
    assert await instance() is None
    async with runtime.sf() as session:
        early = dt.datetime(2026, 11, 30, 8, 0, tzinfo=SHANGHAI)
        assert await report_delivery.deliver_if_due(session, schedule, STAFF_CHAT, early) is None
        rows = list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        assert [r.method for r in rows] == ["sendPhoto", "sendDocument"]
        assert "热线周报 2026-W47" in rows[0].payload["caption"]
        assert "咨询 1 条" in rows[0].payload["caption"]
        assert rows[1].payload["document"]["filename"] == "hotline-report-2026-W47.csv"
        assert await session.scalar(select(func.count()).select_from(JobRun)) == 1


async def test_staff_group_receives_chart_and_csv(tmp_path: Path) -> None:
    from tests.fake_telegram import FakeTelegram

    async with FakeTelegram(token="123456:TEST-TOKEN") as server:
        # Due as soon as the bot starts: the slot was at the start of this week.
        local = utcnow().astimezone(SHANGHAI)
        h = Harness(server, f"sqlite+aiosqlite:///{tmp_path}/r.db",
                    report_schedule=f"{local.strftime('%a')} 00:00")  # fmt: skip
        await h.start()
        try:
            photo = await server.wait_for(method="sendPhoto", timeout=15)
            doc = await server.wait_for(method="sendDocument", timeout=15)
        finally:
            await h.stop()
        assert photo.chat_id == STAFF_CHAT and "热线周报" in (photo.text or "")
        csv_file = next(f for f in server.files.values() if f.file_name.endswith(".csv"))
        assert "2026" in csv_file.content.decode("utf-8-sig").splitlines()[0]
        assert csv_file.content.decode("utf-8-sig").splitlines()[1].startswith("日期,")
        assert doc.chat_id == STAFF_CHAT
        assert len([c for c in server.sent if c.method == "sendPhoto"]) == 1


def test_report_command_writes_png_and_csv(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/c.db", "PATH": "/usr/bin:/bin"}
    out = str(tmp_path / "out")
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "report", "--week", "2026-W47", "--out", out],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    png = tmp_path / "out" / "hotline-report-2026-W47.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "out" / "hotline-report-2026-W47.csv").stat().st_size > 0
    assert "2026-11-16" in done.stdout
    bad = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "report", "--week", "47"],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 1 and "2026-W47" in bad.stderr
